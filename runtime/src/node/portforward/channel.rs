//! Port-forward over WebSocket channels (`v4.channel.k8s.io`, the kubelet's
//! `handleWebSocketStreams`): the ports come in the query, port `i` has data channel `2i`
//! and error channel `2i+1`, and every binary message starts with its channel byte.
//!
//! The node first sends each channel its port number (two bytes, little-endian), then
//! connects to every port of the pod at once. Client data on a data channel goes to the pod;
//! the pod's goes back on it; a failed connect is a text message on the error channel. A port
//! is done when the pod closes its side, and the WebSocket closes when every port is done (or
//! when the client closes it). There is no half-close: the protocol has no way to say it.

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::{BufMut as _, Bytes, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Target;

/// Messages queued for the client.
const OUTGOING: usize = 64;
/// Client messages queued per port.
const INCOMING: usize = 16;
/// The most one message carries.
const CHUNK: usize = 32 * 1024;

/// A message on `channel`.
fn message(channel: u8, payload: &[u8]) -> Message {
    let mut bytes = BytesMut::with_capacity(payload.len() + 1);
    bytes.put_u8(channel);
    bytes.put_slice(payload);
    Message::Binary(bytes.freeze())
}

/// Serves one channel session for `ports` (at most 128) until every port is done.
pub async fn serve(socket: WebSocket, ports: Vec<u16>, target: Target) {
    let (mut sink, mut stream) = socket.split();
    for (i, port) in ports.iter().enumerate() {
        let data = (2 * i) as u8;
        for channel in [data, data + 1] {
            if sink
                .send(message(channel, &port.to_le_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let (out, mut queued) = mpsc::channel::<Message>(OUTGOING);
    let gone = CancellationToken::new();
    let mut inputs = Vec::with_capacity(ports.len());
    let mut forwards = Vec::with_capacity(ports.len());
    for (i, port) in ports.iter().enumerate() {
        let (input, received) = mpsc::channel(INCOMING);
        inputs.push(input);
        forwards.push(forward(
            (2 * i) as u8,
            *port,
            received,
            out.clone(),
            &target,
            gone.clone(),
        ));
    }
    drop(out);
    let writer = async {
        while let Some(message) = queued.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let close = CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    };
    let reader = async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Binary(mut bytes)) if bytes.len() > 1 => {
                    let channel = bytes[0] as usize;
                    let payload = bytes.split_off(1);
                    // Only data channels carry client bytes; the rest is ignored, as the
                    // kubelet ignores writes to its error channels.
                    if channel.is_multiple_of(2)
                        && let Some(input) = inputs.get(channel / 2)
                    {
                        let _ = input.send(payload).await;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let work = async { tokio::join!(futures::future::join_all(forwards), writer) };
    tokio::pin!(work, reader);
    tokio::select! {
        _ = &mut work => return,
        () = &mut reader => {}
    }
    // The client left: stop every port.
    gone.cancel();
    work.await;
}

/// One port: connect, then copy both ways until the pod's side ends or the client leaves.
async fn forward(
    data: u8,
    port: u16,
    mut input: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Message>,
    target: &Target,
    gone: CancellationToken,
) {
    let connected = tokio::select! {
        connected = target.connect(port) => connected,
        () = gone.cancelled() => return,
    };
    let stream = match connected {
        Ok(stream) => stream,
        Err(text) => {
            tracing::info!(pod = %target.pod, namespace = %target.namespace, message = %text, "port-forward failed");
            let _ = out.send(message(data + 1, text.as_bytes())).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = stream.into_split();
    let client_to_pod = async {
        while let Some(bytes) = input.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let pod_to_client = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.send(message(data, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::pin!(client_to_pod, pod_to_client);
    let mut client_done = false;
    loop {
        tokio::select! {
            () = &mut pod_to_client => break,
            () = &mut client_to_pod, if !client_done => client_done = true,
            () = gone.cancelled() => break,
        }
    }
}
