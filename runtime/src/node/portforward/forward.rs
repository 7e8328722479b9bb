//! One forwarded connection of a SPDY session: a pair's data stream to and from the pod's
//! port, and the error stream that reports a failure and ends last (kubectl waits for it).

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use super::frame::{DEFAULT_WINDOW, FLAG_FIN, Frame};
use super::spdy::{CHUNK, Half, Shared};

/// Runs one forwarded connection: connects to the pod, copies both ways until both are done
/// (or the client resets the data stream), then ends the error stream. Returns the streams.
pub(super) async fn forward(shared: Arc<Shared>, error: Half, data: Half) -> (u32, u32) {
    let ids = (error.id, data.id);
    let port = data.port;
    let connected = tokio::select! {
        connected = shared.target.connect(port) => connected,
        () = shared.closed.cancelled() => return ids,
        () = data.reset.cancelled() => return ids,
    };
    let stream = match connected {
        Ok(stream) => stream,
        Err(message) => {
            tracing::info!(pod = %shared.target.pod, namespace = %shared.target.namespace, %message, "port-forward failed");
            let message = Bytes::from(message);
            send_data(&shared, error.id, message, FLAG_FIN, &error.reset).await;
            send_data(&shared, data.id, Bytes::new(), FLAG_FIN, &data.reset).await;
            return ids;
        }
    };
    tracing::debug!(pod = %shared.target.pod, port, stream = data.id, "port-forward connected");
    let (mut from_pod, mut to_pod) = stream.into_split();
    let Half {
        id,
        data: mut queued,
        credit,
        reset,
        ..
    } = data;
    let client_to_pod = async {
        let mut unacked = 0usize;
        while let Some((chunk, permit)) = queued.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                break;
            }
            drop(permit);
            unacked += chunk.len();
            // Batched: a peer that keeps windows gets them back before it runs dry.
            if unacked >= DEFAULT_WINDOW as usize / 4 || queued.is_empty() {
                for update in shared.flow.consumed(Some(id), unacked) {
                    let _ = shared.out.send(update).await;
                }
                unacked = 0;
            }
        }
        credit.close();
        let _ = to_pod.shutdown().await;
    };
    let pod_to_client = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut sent = 0;
            while sent < n {
                let granted = shared.flow.reserve(id, n - sent).await;
                let chunk = Bytes::copy_from_slice(&buf[sent..sent + granted]);
                if shared.out.send(data_frame(id, chunk, 0)).await.is_err() {
                    return;
                }
                sent += granted;
            }
        }
        let _ = shared
            .out
            .send(data_frame(id, Bytes::new(), FLAG_FIN))
            .await;
    };
    tokio::select! {
        _ = async { tokio::join!(client_to_pod, pod_to_client) } => {}
        () = reset.cancelled() => {}
        () = shared.closed.cancelled() => return ids,
    }
    send_data(&shared, error.id, Bytes::new(), FLAG_FIN, &error.reset).await;
    ids
}

fn data_frame(stream: u32, data: Bytes, flags: u8) -> Frame {
    Frame::Data {
        stream,
        flags,
        data,
    }
}

/// Sends `data` on a stream within its window, `flags` on the last frame, unless the client
/// reset the stream.
async fn send_data(
    shared: &Shared,
    stream: u32,
    mut data: Bytes,
    flags: u8,
    reset: &CancellationToken,
) {
    let send = async {
        while !data.is_empty() {
            let granted = shared.flow.reserve(stream, data.len().min(CHUNK)).await;
            let chunk = data.split_to(granted);
            let last = if data.is_empty() { flags } else { 0 };
            if shared
                .out
                .send(data_frame(stream, chunk, last))
                .await
                .is_err()
            {
                return;
            }
            if data.is_empty() {
                return;
            }
        }
        // Nothing to send but the flags: an empty frame, which no window limits.
        let _ = shared.out.send(data_frame(stream, data, flags)).await;
    };
    tokio::select! {
        () = send => {}
        () = reset.cancelled() => {}
        () = shared.closed.cancelled() => {}
    }
}
