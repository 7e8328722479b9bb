//! The WebSocket side of an exec or attach session (`stream.rs` has the endpoints): the
//! channel framing, a writer task with bounded output (a slow client makes the guest wait, as
//! a full pipe would), and the client's keys through the terminal's line discipline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::attach::Attachable;
use super::terminal::{Terminal, onlcr};
use crate::wasm::{Discard, OutputSink, StdinPipe};

/// Channel 0: stdin, from the client.
pub(super) const STDIN: u8 = 0;
/// Channel 1: stdout.
pub(super) const STDOUT: u8 = 1;
/// Channel 2: stderr.
pub(super) const STDERR: u8 = 2;
/// Channel 3: the final status.
const STATUS: u8 = 3;
/// Channel 4: the terminal size, from the client.
const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes a channel.
const CLOSE: u8 = 255;

/// How long a guest has to read a Ctrl-C before its instance is killed.
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

/// The echo of an attached terminal goes to every session, not to the log.
pub(super) struct Echo(pub(super) Arc<Attachable>);

impl OutputSink for Echo {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.broadcast(bytes);
        Ok(())
    }
}

/// Where a session's keys go.
pub(super) struct Input {
    /// Where the keys go, if the client sends stdin.
    pub(super) pipe: Option<StdinPipe>,
    /// The line discipline, with a terminal.
    pub(super) terminal: Option<Arc<Mutex<Terminal>>>,
    /// Where the terminal's echo goes.
    pub(super) echo: Arc<dyn OutputSink>,
    /// For an exec: how to kill the instance when Ctrl-C is not read, and the flag saying so.
    pub(super) kill: Option<(CancellationToken, Arc<Mutex<bool>>)>,
}

impl Input {
    /// Handles one stdin message; `false` once input has ended.
    fn keys(&self, bytes: &[u8]) -> bool {
        let Some(pipe) = &self.pipe else {
            return true;
        };
        let Some(terminal) = &self.terminal else {
            pipe.write(bytes);
            return true;
        };
        let fed = terminal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feed(bytes);
        let _ = self.echo.write(&fed.echo);
        pipe.write(&fed.deliver);
        if fed.interrupt
            && let Some((stop, interrupted)) = self.kill.clone()
        {
            // The guest has this long to read everything sent so far, the 0x03 included.
            let target = pipe.consumed() + pipe.pending() as u64;
            let pipe = pipe.clone();
            tokio::spawn(async move {
                tokio::time::sleep(INTERRUPT_GRACE).await;
                if pipe.consumed() < target {
                    *interrupted.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    stop.cancel();
                }
            });
        }
        if fed.eof {
            pipe.close();
            return false;
        }
        true
    }

    fn resize(&self, message: &[u8]) {
        if let Some(terminal) = &self.terminal {
            terminal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .resize(message);
        }
    }

    fn close(&self) {
        if let Some(pipe) = &self.pipe {
            pipe.close();
        }
    }
}

/// The most output a session holds for a slow client; beyond it the guest's writes wait.
const BACKLOG_LIMIT: usize = 1 << 20;

/// Output queued for a session's client and not sent yet.
#[derive(Default)]
struct Backlog {
    bytes: AtomicUsize,
    /// The client is gone: output is dropped, writes never wait.
    gone: AtomicBool,
    sent: Notify,
}

impl Backlog {
    fn room(&self) -> usize {
        if self.gone.load(Ordering::SeqCst) {
            return usize::MAX;
        }
        BACKLOG_LIMIT.saturating_sub(self.bytes.load(Ordering::SeqCst))
    }

    async fn writable(&self) {
        loop {
            let sent = self.sent.notified();
            if self.room() > 0 {
                return;
            }
            sent.await;
        }
    }

    fn sent(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::SeqCst);
        self.sent.notify_waiters();
    }

    fn close(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.sent.notify_waiters();
    }
}

/// One WebSocket session: a writer task fed through a channel, and the reading half.
pub(super) struct Session {
    outgoing: mpsc::UnboundedSender<Message>,
    backlog: Arc<Backlog>,
    incoming: Mutex<Option<futures::stream::SplitStream<WebSocket>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    v5: bool,
}

/// Output on one channel of a session.
struct ChannelSink {
    channel: u8,
    tty: bool,
    outgoing: mpsc::UnboundedSender<Message>,
    backlog: Arc<Backlog>,
}

impl OutputSink for ChannelSink {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let body = if self.tty {
            onlcr(bytes)
        } else {
            bytes.to_vec()
        };
        let mut message = Vec::with_capacity(body.len() + 1);
        message.push(self.channel);
        message.extend(body);
        // A session that went away drops output, as a closed terminal does.
        self.backlog
            .bytes
            .fetch_add(message.len(), Ordering::SeqCst);
        if self.outgoing.send(Message::Binary(message.into())).is_err() {
            self.backlog.close();
        }
        Ok(())
    }

    fn room(&self) -> usize {
        self.backlog.room()
    }

    fn writable(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.backlog.writable())
    }
}

impl Session {
    pub(super) fn new(socket: WebSocket, v5: bool) -> Arc<Session> {
        let (mut sink, stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        let backlog = Arc::new(Backlog::default());
        let sent = backlog.clone();
        let writer = tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                let close = matches!(message, Message::Close(_));
                let len = match &message {
                    Message::Binary(data) => data.len(),
                    _ => 0,
                };
                let failed = sink.send(message).await.is_err();
                sent.sent(len);
                if failed || close {
                    break;
                }
            }
            sent.close();
        });
        Arc::new(Session {
            outgoing,
            backlog,
            incoming: Mutex::new(Some(stream)),
            writer: Mutex::new(Some(writer)),
            v5,
        })
    }

    /// A sink for `channel`, or one that drops output the client did not ask for.
    pub(super) fn sink(&self, channel: u8, wanted: bool, tty: bool) -> Arc<dyn OutputSink> {
        if !wanted {
            return Arc::new(Discard);
        }
        Arc::new(ChannelSink {
            channel,
            tty,
            outgoing: self.outgoing.clone(),
            backlog: self.backlog.clone(),
        })
    }

    fn take_incoming(&self) -> Option<futures::stream::SplitStream<WebSocket>> {
        self.incoming
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Reads the client's messages until it goes away, then cancels `stop`. An exec's stdin
    /// ends with its client (`ends_input`); a container's stdin outlives an attach session.
    pub(super) async fn read(
        self: Arc<Self>,
        input: Input,
        stop: CancellationToken,
        ends_input: bool,
    ) {
        let Some(mut incoming) = self.take_incoming() else {
            return;
        };
        while let Some(Ok(message)) = incoming.next().await {
            match message {
                Message::Binary(data) => self.dispatch(&input, &data),
                // The Python client sends text it was given as a text message.
                Message::Text(text) => self.dispatch(&input, text.as_bytes()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        if ends_input {
            input.close();
        }
        stop.cancel();
    }

    fn dispatch(&self, input: &Input, data: &[u8]) {
        let Some((&channel, body)) = data.split_first() else {
            return;
        };
        match channel {
            STDIN => {
                input.keys(body);
            }
            RESIZE => input.resize(body),
            CLOSE if self.v5 && body.first() == Some(&STDIN) => input.close(),
            _ => {}
        }
    }

    /// Sends the final status and closes the session once everything before it is sent.
    pub(super) async fn finish(&self, status: serde_json::Value) {
        let mut message = vec![STATUS];
        message.extend(serde_json::to_vec(&status).unwrap_or_default());
        self.backlog
            .bytes
            .fetch_add(message.len(), Ordering::SeqCst);
        let _ = self.outgoing.send(Message::Binary(message.into()));
        // A normal closure: kubectl reads it as the end of every stream.
        let _ = self.outgoing.send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })));
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_client_makes_the_guest_wait_and_a_gone_one_does_not() {
        let (outgoing, mut queue) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let sink = ChannelSink {
            channel: STDOUT,
            tty: false,
            outgoing,
            backlog: backlog.clone(),
        };
        let chunk = vec![b'x'; 64 * 1024];
        while sink.room() > 0 {
            sink.write(&chunk).unwrap();
        }
        let wait = tokio::time::timeout(Duration::from_millis(50), sink.writable());
        assert!(wait.await.is_err(), "a full backlog makes writers wait");
        // The writer task sends one message: room again.
        let Some(Message::Binary(sent)) = queue.recv().await else {
            panic!("a message was queued")
        };
        backlog.sent(sent.len());
        assert!(sink.room() > 0);
        tokio::time::timeout(Duration::from_secs(1), sink.writable())
            .await
            .unwrap();
        // The client went away: output is dropped and nobody waits.
        drop(queue);
        sink.write(&chunk).unwrap();
        assert_eq!(sink.room(), usize::MAX);
    }
}
