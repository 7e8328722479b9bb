//! One SPDY/3.1 port-forward connection, as the kubelet serves it: the client opens streams,
//! the node answers each with SYN_REPLY, pairs an error stream and a data stream by their
//! `requestID`, connects to the pair's `port` of the pod and copies both ways (`forward.rs`,
//! within the windows of `flow.rs`).
//!
//! One task reads frames (this module's `Connection`), one writes them (`write_frames`,
//! fed by a bounded channel so a slow client slows the pod's reads), and each pair runs in a
//! task of its own, joined before the connection ends.
//!
//! Flow control: this side advertises the default 64 KiB window per stream and for the
//! session, and sends WINDOW_UPDATEs as data is written to the pod. What the client sends is
//! counted against the peer's windows, but only waited for once the peer shows it keeps them
//! (a WINDOW_UPDATE or an initial window in SETTINGS): client-go's spdystream never sends a
//! WINDOW_UPDATE, and waiting for one would stall every transfer at 64 KiB.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Target;
use super::flow::Flow;
use super::forward::forward;
use super::frame::{self, DEFAULT_WINDOW, Decoder, Encoder, FLAG_FIN, Frame, status};
use super::headers::Headers;

/// Frames queued for the writer.
const OUTGOING: usize = 256;
/// The most streams open at once on one connection.
const MAX_STREAMS: usize = 512;
/// How long the first stream of a pair waits for the second (the kubelet's
/// `streamCreationTimeout`).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest DATA frame sent: what one read of the pod's socket gives.
pub(super) const CHUNK: usize = 32 * 1024;

/// Client data queued for the pod, with the receive window it takes up.
pub(super) type Chunk = (Bytes, OwnedSemaphorePermit);

/// What a stream carries (the `streamType` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Data,
}

/// What the reader keeps of an open stream.
struct Open {
    kind: Kind,
    /// Where its data goes; `None` once the client half-closed it.
    data: Option<mpsc::UnboundedSender<Chunk>>,
    /// This side's receive window: the data queued for the pod holds its permits.
    credit: Arc<Semaphore>,
    /// Cancelled when the client resets it.
    reset: CancellationToken,
    /// Whether its pair's forward task runs.
    forwarding: bool,
}

/// One stream of a pair, before the pair is complete.
pub(super) struct Half {
    /// The stream.
    pub(super) id: u32,
    /// Its `port` header.
    pub(super) port: u16,
    /// The client's data, queued for the pod.
    pub(super) data: mpsc::UnboundedReceiver<Chunk>,
    /// This side's receive window for it.
    pub(super) credit: Arc<Semaphore>,
    /// Cancelled when the client resets it.
    pub(super) reset: CancellationToken,
}

/// A request whose two streams have not both arrived.
struct Pending {
    since: Instant,
    error: Option<Half>,
    data: Option<Half>,
}

/// What every forward task shares with the connection.
pub(super) struct Shared {
    /// The pod.
    pub(super) target: Target,
    /// Frames to the client.
    pub(super) out: mpsc::Sender<Frame>,
    /// Both directions' windows.
    pub(super) flow: Flow,
    /// Cancelled when the connection ends.
    pub(super) closed: CancellationToken,
}

/// Serves one SPDY connection until the client closes it (or it breaks).
pub async fn serve<S>(io: S, target: Target)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (out, queued) = mpsc::channel(OUTGOING);
    let closed = CancellationToken::new();
    let shared = Arc::new(Shared {
        target,
        out,
        flow: Flow::default(),
        closed: closed.clone(),
    });
    let connection = Connection {
        shared,
        streams: HashMap::new(),
        pending: HashMap::new(),
        last_stream: 0,
        going_away: false,
        forwards: JoinSet::new(),
    };
    tokio::join!(connection.run(reader), write_frames(writer, queued, closed));
}

/// Writes queued frames, batching what is ready, until every sender is gone or the socket
/// fails (which ends the connection).
async fn write_frames<W>(
    mut writer: W,
    mut queued: mpsc::Receiver<Frame>,
    closed: CancellationToken,
) where
    W: AsyncWrite + Unpin,
{
    let mut encoder = Encoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(frame) = queued.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            if let Err(e) = encoder.encode(&frame, &mut buf) {
                tracing::debug!(error = %e, "port-forward frame not encoded");
            }
            if buf.len() < 64 * 1024 {
                next = queued.try_recv().ok();
            }
        }
        if writer.write_all(&buf).await.is_err() || writer.flush().await.is_err() {
            closed.cancel();
            return;
        }
        buf.clear();
    }
    let _ = writer.shutdown().await;
}

/// The reader's side of a connection.
struct Connection {
    shared: Arc<Shared>,
    streams: HashMap<u32, Open>,
    pending: HashMap<String, Pending>,
    last_stream: u32,
    going_away: bool,
    forwards: JoinSet<(u32, u32)>,
}

/// The connection cannot go on: GOAWAY with this status.
struct Fatal(u32);

impl Connection {
    async fn run<R: AsyncRead + Unpin>(mut self, mut reader: R) {
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        'read: loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if let Err(Fatal(status)) = self.handle(frame).await {
                            self.go_away(status).await;
                            break 'read;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "port-forward connection sent an invalid frame");
                        self.go_away(status::PROTOCOL_ERROR).await;
                        break 'read;
                    }
                }
            }
            buf.reserve(CHUNK);
            tokio::select! {
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                },
                Some(done) = self.forwards.join_next(), if !self.forwards.is_empty() => {
                    if let Ok((error, data)) = done {
                        self.finished(error);
                        self.finished(data);
                    }
                }
                _ = tick.tick() => self.expire().await,
                () = self.shared.closed.cancelled() => break,
            }
        }
        self.shared.closed.cancel();
        self.streams.clear();
        while self.forwards.join_next().await.is_some() {}
    }

    async fn send(&self, frame: Frame) {
        // A closed writer means the connection is ending; the read loop sees that.
        let _ = self.shared.out.send(frame).await;
    }

    async fn reset(&self, stream: u32, status: u32) {
        self.send(Frame::RstStream { stream, status }).await;
    }

    async fn go_away(&self, status: u32) {
        self.send(Frame::GoAway {
            last_good: self.last_stream,
            status,
        })
        .await;
    }

    /// A pair's task ended: its streams are closed.
    fn finished(&mut self, id: u32) {
        self.streams.remove(&id);
        self.shared.flow.close(id);
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), Fatal> {
        match frame {
            Frame::SynStream {
                stream,
                flags,
                headers,
                ..
            } => self.open(stream, flags, &headers).await?,
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                self.data(stream, data).await;
                if flags & FLAG_FIN != 0 {
                    self.half_close(stream);
                }
            }
            Frame::Headers { stream, flags, .. } if flags & FLAG_FIN != 0 => {
                self.half_close(stream)
            }
            Frame::RstStream { stream, .. } => {
                if let Some(open) = self.streams.remove(&stream) {
                    open.reset.cancel();
                    open.credit.close();
                }
                self.shared.flow.close(stream);
            }
            Frame::Settings { entries, .. } => {
                for (_, id, value) in entries {
                    if id == frame::SETTINGS_INITIAL_WINDOW_SIZE {
                        self.shared.flow.set_initial(value);
                    }
                }
            }
            // Odd pings are the client's; even ones would answer ours, and there are none.
            Frame::Ping { id } if id % 2 == 1 => self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => self.going_away = true,
            // A window grown past 2^31 - 1 is the peer's flow-control error.
            Frame::WindowUpdate { stream, delta } => {
                match (self.shared.flow.grant(stream, delta), stream) {
                    (true, _) => {}
                    (false, 0) => return Err(Fatal(status::FLOW_CONTROL_ERROR)),
                    (false, _) => self.reset(stream, status::FLOW_CONTROL_ERROR).await,
                }
            }
            // SYN_REPLY (this side opens no streams), plain HEADERS, NOOP, CREDENTIAL.
            _ => {}
        }
        Ok(())
    }

    /// A SYN_STREAM: checked as the kubelet checks it, answered, and paired.
    async fn open(&mut self, id: u32, flags: u8, headers: &Headers) -> Result<(), Fatal> {
        // Client streams are odd and increasing; anything else is a broken client.
        if id.is_multiple_of(2) || id <= self.last_stream {
            if self.streams.contains_key(&id) {
                self.reset(id, status::STREAM_IN_USE).await;
                return Ok(());
            }
            return Err(Fatal(status::PROTOCOL_ERROR));
        }
        self.last_stream = id;
        if self.going_away || self.streams.len() >= MAX_STREAMS {
            self.reset(id, status::REFUSED_STREAM).await;
            return Ok(());
        }
        let (kind, port) = match stream_headers(headers) {
            Ok(found) => found,
            Err(message) => {
                tracing::debug!(stream = id, %message, "port-forward stream rejected");
                self.reset(id, status::REFUSED_STREAM).await;
                return Ok(());
            }
        };
        let request = request_id(headers, kind, id);
        let slot_taken = self.pending.get(&request).is_some_and(|p| match kind {
            Kind::Error => p.error.is_some(),
            Kind::Data => p.data.is_some(),
        });
        if slot_taken {
            tracing::debug!(stream = id, %request, "port-forward request has this stream already");
            self.reset(id, status::REFUSED_STREAM).await;
            return Ok(());
        }
        self.send(Frame::SynReply {
            stream: id,
            flags: 0,
            headers: Headers::default(),
        })
        .await;
        let (sender, receiver) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(DEFAULT_WINDOW as usize));
        let reset = CancellationToken::new();
        self.shared.flow.open(id);
        self.streams.insert(
            id,
            Open {
                kind,
                data: (flags & FLAG_FIN == 0).then_some(sender),
                credit: credit.clone(),
                reset: reset.clone(),
                forwarding: false,
            },
        );
        let half = Half {
            id,
            port,
            data: receiver,
            credit,
            reset,
        };
        let pending = self.pending.entry(request.clone()).or_insert(Pending {
            since: Instant::now(),
            error: None,
            data: None,
        });
        match kind {
            Kind::Error => pending.error = Some(half),
            Kind::Data => pending.data = Some(half),
        }
        if pending.error.is_some() && pending.data.is_some() {
            let Some(Pending {
                error: Some(error),
                data: Some(data),
                ..
            }) = self.pending.remove(&request)
            else {
                return Ok(());
            };
            for id in [error.id, data.id] {
                if let Some(open) = self.streams.get_mut(&id) {
                    open.forwarding = true;
                }
            }
            let shared = self.shared.clone();
            self.forwards.spawn(forward(shared, error, data));
        }
        Ok(())
    }

    /// Client data: queued for the pod on a data stream, acknowledged and dropped otherwise.
    async fn data(&mut self, id: u32, data: Bytes) {
        let len = data.len();
        if len == 0 {
            return;
        }
        let Some(open) = self.streams.get(&id) else {
            // A stream already closed here: only the session window counts it.
            self.acknowledge(None, len).await;
            return;
        };
        let (Kind::Data, Some(sender)) = (open.kind, &open.data) else {
            self.acknowledge(Some(id), len).await;
            return;
        };
        let want = len.min(DEFAULT_WINDOW as usize) as u32;
        // Before the pair is complete nothing drains the window, so a client that overruns
        // it is refused rather than waited for.
        let permit = if open.forwarding {
            let credit = open.credit.clone();
            tokio::select! {
                permit = credit.acquire_many_owned(want) => permit.ok(),
                () = self.shared.closed.cancelled() => None,
            }
        } else {
            match open.credit.clone().try_acquire_many_owned(want) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.reset(id, status::FLOW_CONTROL_ERROR).await;
                    if let Some(open) = self.streams.remove(&id) {
                        open.reset.cancel();
                    }
                    return;
                }
            }
        };
        match permit {
            Some(permit) => {
                if let Err(mpsc::error::SendError((data, _))) = sender.send((data, permit)) {
                    // The pod side is gone: nothing will acknowledge this.
                    self.acknowledge(Some(id), data.len()).await;
                }
            }
            None => self.acknowledge(Some(id), len).await,
        }
    }

    /// Gives back window for data that will not reach the pod.
    async fn acknowledge(&self, stream: Option<u32>, len: usize) {
        for update in self.shared.flow.consumed(stream, len) {
            self.send(update).await;
        }
    }

    /// The client's half of a stream ended.
    fn half_close(&mut self, id: u32) {
        if let Some(open) = self.streams.get_mut(&id) {
            open.data = None;
        }
    }

    /// Pairs whose second stream never came: reported on the error stream, as the kubelet
    /// does, and both ended.
    async fn expire(&mut self) {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= PAIR_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for request in expired {
            let Some(pending) = self.pending.remove(&request) else {
                continue;
            };
            if let Some(error) = pending.error {
                let message = format!("timed out waiting for the data stream of request {request}");
                self.send(Frame::Data {
                    stream: error.id,
                    flags: FLAG_FIN,
                    data: Bytes::from(message),
                })
                .await;
                self.finished(error.id);
            }
            if let Some(data) = pending.data {
                self.reset(data.id, status::CANCEL).await;
                self.finished(data.id);
            }
        }
    }
}

/// The stream type and port of a new stream, or why it is refused (the kubelet's checks).
fn stream_headers(headers: &Headers) -> Result<(Kind, u16), String> {
    let port = headers
        .get("port")
        .filter(|p| !p.is_empty())
        .ok_or("\"port\" header is required")?;
    let port = match port.parse::<u16>() {
        Ok(0) => return Err(format!("port {port:?} must be > 0")),
        Ok(port) => port,
        Err(e) => return Err(format!("unable to parse {port:?} as a port: {e}")),
    };
    let kind = match headers.get("streamtype") {
        Some("error") => Kind::Error,
        Some("data") => Kind::Data,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("\"streamType\" header is required".into()),
    };
    Ok((kind, port))
}

/// The request a stream belongs to: its `requestID`, or for clients too old to send one, the
/// kubelet's guess (the error stream's id; a data stream follows its error stream).
fn request_id(headers: &Headers, kind: Kind, id: u32) -> String {
    match headers.get("requestid").filter(|r| !r.is_empty()) {
        Some(request) => request.to_string(),
        None => match kind {
            Kind::Error => id.to_string(),
            Kind::Data => id.saturating_sub(2).to_string(),
        },
    }
}
