//! Whole SPDY sessions in memory: a test client speaking frames over `tokio::io::duplex` to
//! [`spdy::serve`], which forwards to real TCP listeners on 127.0.0.1.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::net::TcpListener;

use super::frame::{DEFAULT_WINDOW, Decoder, Encoder, FLAG_FIN, Frame, status};
use super::headers::Headers;
use super::{Target, query_ports, spdy};
use crate::wasm::PodNetwork;

/// A target whose "pod" is this host's 127.0.0.1.
fn target() -> Target {
    Target {
        namespace: "ns".into(),
        pod: "p".into(),
        network: PodNetwork {
            pod_ip: Ipv4Addr::LOCALHOST,
            allow_external: false,
            map_low_ports: false,
        },
    }
}

/// The client end of a session, with its own compression contexts.
struct Client {
    io: DuplexStream,
    encoder: Encoder,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    /// Starts a session over a pipe of `pipe` bytes.
    fn start(pipe: usize) -> Client {
        let (client, server) = tokio::io::duplex(pipe);
        tokio::spawn(spdy::serve(server, target()));
        Client {
            io: client,
            encoder: Encoder::default(),
            decoder: Decoder::default(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.encoder.encode(&frame, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next frame; `None` when the server closed the pipe. Fails after 10 s.
    async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(frame);
                }
                self.buf.reserve(64 * 1024);
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("a frame within 10 s")
    }

    /// Opens a stream of `kind` for `port` in request `request`.
    async fn open(&mut self, id: u32, kind: &str, port: u16, request: Option<&str>) {
        let mut pairs = vec![
            ("streamtype".to_string(), kind.to_string()),
            ("port".to_string(), port.to_string()),
        ];
        if let Some(request) = request {
            pairs.push(("requestid".into(), request.into()));
        }
        self.send(Frame::SynStream {
            stream: id,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: Headers(pairs),
        })
        .await;
    }

    /// Opens a pair as client-go does: error stream, its half-close, then the data stream.
    async fn open_pair(&mut self, error: u32, port: u16, request: &str) {
        self.open(error, "error", port, Some(request)).await;
        self.data(error, b"", FLAG_FIN).await;
        self.open(error + 2, "data", port, Some(request)).await;
    }

    async fn data(&mut self, stream: u32, data: &[u8], flags: u8) {
        self.send(Frame::Data {
            stream,
            flags,
            data: Bytes::copy_from_slice(data),
        })
        .await;
    }
}

/// What arrived per stream until both of a pair's streams were finished.
#[derive(Default, Debug)]
struct Received {
    replies: Vec<u32>,
    data: Vec<u8>,
    error: Vec<u8>,
    window_updates: usize,
}

/// Reads until the error and data streams have both ended (FIN), answering nothing.
async fn collect(client: &mut Client, error: u32, data: u32) -> Received {
    let mut got = Received::default();
    let (mut error_done, mut data_done) = (false, false);
    while !(error_done && data_done) {
        match client.recv().await.expect("the session ended early") {
            Frame::SynReply { stream, .. } => got.replies.push(stream),
            Frame::Data {
                stream,
                flags,
                data: bytes,
            } => {
                if stream == error {
                    got.error.extend_from_slice(&bytes);
                    error_done |= flags & FLAG_FIN != 0;
                } else if stream == data {
                    got.data.extend_from_slice(&bytes);
                    data_done |= flags & FLAG_FIN != 0;
                }
            }
            Frame::WindowUpdate { .. } => got.window_updates += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

/// A pod port that answers each connection with `reply(request)` after the client's EOF.
async fn pod(reply: fn(Vec<u8>) -> Vec<u8>) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let _ = socket.read_to_end(&mut request).await;
                let _ = socket.write_all(&reply(request)).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn forwards_one_connection_both_ways_and_ends_both_streams() {
    let port = pod(|request| [b"got: ".as_slice(), &request].concat()).await;
    let mut client = Client::start(64 * 1024);
    client.open_pair(1, port, "0").await;
    client.data(3, b"hello", 0).await;
    client.data(3, b" pod", FLAG_FIN).await;
    let got = collect(&mut client, 1, 3).await;
    assert_eq!(got.replies, [1, 3]);
    assert_eq!(got.data, b"got: hello pod");
    assert!(
        got.error.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&got.error)
    );
}

#[tokio::test]
async fn a_closed_port_is_reported_on_the_error_stream() {
    let closed = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut client = Client::start(64 * 1024);
    client.open_pair(1, closed, "7").await;
    let got = collect(&mut client, 1, 3).await;
    let error = String::from_utf8(got.error).unwrap();
    assert!(
        error.starts_with(&format!(
            "error forwarding port {closed} to pod ns/p, uid : "
        )),
        "{error}"
    );
    assert!(error.contains("refused"), "{error}");
    assert!(got.data.is_empty());
}

#[tokio::test]
async fn pairs_by_request_id_and_by_stream_id_for_old_clients() {
    let port = pod(|request| request.to_ascii_uppercase()).await;
    let mut client = Client::start(64 * 1024);
    // Two requests opened before either finishes, their streams interleaved.
    client.open(1, "error", port, Some("a")).await;
    client.open(3, "error", port, Some("b")).await;
    client.open(5, "data", port, Some("b")).await;
    client.open(7, "data", port, Some("a")).await;
    client.data(7, b"first", FLAG_FIN).await;
    client.data(5, b"second", FLAG_FIN).await;
    let mut data = std::collections::HashMap::<u32, Vec<u8>>::new();
    let mut ended = 0;
    while ended < 4 {
        if let Some(Frame::Data {
            stream,
            flags,
            data: bytes,
        }) = client.recv().await
        {
            data.entry(stream).or_default().extend_from_slice(&bytes);
            ended += usize::from(flags & FLAG_FIN != 0);
        }
    }
    assert_eq!(data[&7], b"FIRST");
    assert_eq!(data[&5], b"SECOND");
    // Without requestID the data stream belongs to the error stream just before it.
    client.open(9, "error", port, None).await;
    client.open(11, "data", port, None).await;
    client.data(11, b"legacy", FLAG_FIN).await;
    let got = collect(&mut client, 9, 11).await;
    assert_eq!(got.data, b"LEGACY");
}

#[tokio::test]
async fn large_downloads_finish_without_window_updates() {
    // client-go's spdystream never sends WINDOW_UPDATE: 4 MiB must still come through.
    const SIZE: usize = 4 << 20;
    let port = pod(|_| (0..SIZE).map(|i| (i % 253) as u8).collect()).await;
    let mut client = Client::start(64 * 1024);
    client.open_pair(1, port, "0").await;
    client.data(3, b"", FLAG_FIN).await;
    let got = collect(&mut client, 1, 3).await;
    assert_eq!(got.data.len(), SIZE);
    assert!(
        got.data
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 253) as u8)
    );
}

#[tokio::test]
async fn a_peer_that_keeps_windows_is_never_overrun() {
    const SIZE: usize = 1 << 20;
    let port = pod(|_| vec![7u8; SIZE]).await;
    let mut client = Client::start(64 * 1024);
    client.open_pair(1, port, "0").await;
    // Showing it keeps windows: a first (tiny) update for the stream and the session.
    client
        .send(Frame::WindowUpdate {
            stream: 3,
            delta: 1,
        })
        .await;
    client
        .send(Frame::WindowUpdate {
            stream: 0,
            delta: 1,
        })
        .await;
    client.data(3, b"", FLAG_FIN).await;
    let window = i64::from(DEFAULT_WINDOW) + 1;
    let (mut stream_window, mut session_window) = (window, window);
    let mut received = 0usize;
    let mut error_done = false;
    let mut data_done = false;
    while !(error_done && data_done) {
        match client.recv().await.expect("frames") {
            Frame::Data {
                stream: 3,
                flags,
                data,
            } => {
                stream_window -= data.len() as i64;
                session_window -= data.len() as i64;
                assert!(
                    stream_window >= 0 && session_window >= 0,
                    "overrun at {received}"
                );
                received += data.len();
                data_done |= flags & FLAG_FIN != 0;
                // Give back what was read, as a well-behaved client does.
                if !data.is_empty() {
                    let delta = data.len() as u32;
                    client.send(Frame::WindowUpdate { stream: 3, delta }).await;
                    client.send(Frame::WindowUpdate { stream: 0, delta }).await;
                    stream_window += i64::from(delta);
                    session_window += i64::from(delta);
                }
            }
            Frame::Data {
                stream: 1, flags, ..
            } => error_done |= flags & FLAG_FIN != 0,
            _ => {}
        }
    }
    assert_eq!(received, SIZE);
}

#[tokio::test]
async fn uploads_past_the_window_reach_the_pod_and_are_acknowledged() {
    const SIZE: usize = 1 << 20;
    let port = pod(|request| request.len().to_string().into_bytes()).await;
    let mut client = Client::start(4 << 20);
    client.open_pair(1, port, "0").await;
    // No waiting for windows here either (spdystream does not): 1 MiB in 16 KiB frames.
    let chunk = vec![1u8; 16 * 1024];
    for _ in 0..SIZE / chunk.len() {
        client.data(3, &chunk, 0).await;
    }
    client.data(3, b"", FLAG_FIN).await;
    let got = collect(&mut client, 1, 3).await;
    assert_eq!(got.data, SIZE.to_string().as_bytes());
    assert!(got.window_updates >= 2, "{got:?}");
}

#[tokio::test]
async fn answers_pings_and_refuses_bad_streams() {
    let mut client = Client::start(64 * 1024);
    client.send(Frame::Ping { id: 1 }).await;
    assert_eq!(client.recv().await, Some(Frame::Ping { id: 1 }));
    client.open(1, "data", 0, Some("0")).await;
    assert_eq!(
        client.recv().await,
        Some(Frame::RstStream {
            stream: 1,
            status: status::REFUSED_STREAM
        })
    );
    client.open(3, "bogus", 80, Some("0")).await;
    assert_eq!(
        client.recv().await,
        Some(Frame::RstStream {
            stream: 3,
            status: status::REFUSED_STREAM
        })
    );
    client
        .send(Frame::SynStream {
            stream: 5,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: Headers(vec![("streamtype".into(), "error".into())]),
        })
        .await;
    assert!(matches!(
        client.recv().await,
        Some(Frame::RstStream { stream: 5, .. })
    ));
    // A second error stream for one request is refused too.
    client.open(7, "error", 80, Some("r")).await;
    assert!(matches!(
        client.recv().await,
        Some(Frame::SynReply { stream: 7, .. })
    ));
    client.open(9, "error", 80, Some("r")).await;
    assert!(matches!(
        client.recv().await,
        Some(Frame::RstStream { stream: 9, .. })
    ));
    // Going backwards in stream ids is a protocol error: GOAWAY, then the end.
    client.open(3, "error", 80, Some("x")).await;
    assert!(matches!(
        client.recv().await,
        Some(Frame::GoAway {
            status: status::PROTOCOL_ERROR,
            ..
        })
    ));
    assert_eq!(client.recv().await, None);
}

#[tokio::test]
async fn garbage_ends_the_session_with_goaway() {
    let mut client = Client::start(64 * 1024);
    // A control bit, then a version no SPDY has.
    client.send_raw(b"\xff\xff\x00\x01\x00\x00\x00\x00").await;
    assert!(matches!(client.recv().await, Some(Frame::GoAway { .. })));
    assert_eq!(client.recv().await, None);
}

#[tokio::test]
async fn a_reset_data_stream_still_ends_the_error_stream() {
    // kubectl resets the data stream once the pod's side ended, then waits for the error
    // stream to end: the pair must finish on the reset even though the client never
    // half-closed the data stream.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(b"bye").await.unwrap();
        // Keeps reading: the pod never closes by itself.
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink).await;
    });
    let mut client = Client::start(64 * 1024);
    client.open_pair(1, port, "0").await;
    loop {
        if let Some(Frame::Data {
            stream: 3, data, ..
        }) = client.recv().await
            && &data[..] == b"bye"
        {
            break;
        }
    }
    client
        .send(Frame::RstStream {
            stream: 3,
            status: status::CANCEL,
        })
        .await;
    loop {
        if let Some(Frame::Data {
            stream: 1, flags, ..
        }) = client.recv().await
            && flags & FLAG_FIN != 0
        {
            break;
        }
    }
    // And the pod's connection was closed.
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn reads_ports_from_both_query_forms() {
    assert_eq!(query_ports("ports=80,9090").unwrap(), [80, 9090]);
    assert_eq!(query_ports("port=80&port=81&x=1").unwrap(), [80, 81]);
    assert_eq!(query_ports("ports=80%2C443").unwrap(), [80, 443]);
    assert!(query_ports("").unwrap_err().contains("required"));
    assert!(query_ports("ports=0").unwrap_err().contains("must be > 0"));
    assert!(
        query_ports("ports=http")
            .unwrap_err()
            .contains("unable to parse")
    );
    assert!(
        query_ports("ports=")
            .unwrap_err()
            .contains("cannot be empty")
    );
}
