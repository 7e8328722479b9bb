//! SPDY tunnelled in WebSocket (`SPDY/3.1+portforward.k8s.io`, client-go's
//! `TunnelingConnection`): the binary messages, in order, are the SPDY byte stream, cut
//! wherever the sender flushed. Here they are joined back into a byte stream through an
//! in-memory pipe that `spdy.rs` serves like a socket; what it writes goes back as binary
//! messages.

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Target, spdy};

/// What the pipe between the WebSocket and the SPDY session buffers each way.
const PIPE: usize = 256 * 1024;
/// The most one message carries.
const MESSAGE: usize = 32 * 1024;

/// Serves one tunnelled SPDY connection until either side ends it.
pub async fn serve(socket: WebSocket, target: Target) {
    let (session_side, tunnel_side) = tokio::io::duplex(PIPE);
    let (mut from_session, mut to_session) = tokio::io::split(tunnel_side);
    let (mut sink, mut stream) = socket.split();
    let inbound = async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Binary(bytes)) => {
                    if to_session.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                // client-go sends binary only; anything else ends the tunnel, as there.
                Ok(Message::Text(_)) | Ok(Message::Close(_)) | Err(_) => break,
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            }
        }
        let _ = to_session.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; MESSAGE];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
            }
        }
        let close = CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    };
    let session = async {
        spdy::serve(session_side, target).await;
    };
    // The client closing ends the session (its reads see EOF), which ends the outbound copy;
    // the session ending (the client's GOAWAY, a protocol error) closes the WebSocket.
    let both = async { tokio::join!(session, outbound) };
    tokio::pin!(both, inbound);
    let mut inbound_done = false;
    loop {
        tokio::select! {
            _ = &mut both => break,
            () = &mut inbound, if !inbound_done => inbound_done = true,
        }
    }
}
