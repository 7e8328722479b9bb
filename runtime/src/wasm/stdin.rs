//! A container's stdin: a pipe the host writes into (an exec or attach session, a terminal's
//! line discipline) and the guest reads from, as `wasi:cli/stdin` (preview 2) or fd 0
//! (preview 1).
//!
//! Every handle the guest opens shares one buffer, as wasmtime-wasi's `StdinStream` contract
//! asks. Reads never block the executor: an empty pipe reports "nothing yet" and its pollable
//! wakes when the host writes or closes. The pipe counts what the guest has consumed, so a
//! terminal can tell whether a guest is reading at all (Ctrl-C falls back to a kill when it
//! is not).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdinStream};
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

/// The host end and the guest end of a container's stdin.
#[derive(Clone)]
pub struct StdinPipe(Arc<Shared>);

struct Shared {
    state: Mutex<State>,
    terminal: bool,
}

#[derive(Default)]
struct State {
    buffer: VecDeque<u8>,
    closed: bool,
    consumed: u64,
    wakers: Vec<Waker>,
}

impl StdinPipe {
    /// An empty, open pipe; `terminal` is what the guest's `isatty(0)` says.
    pub fn new(terminal: bool) -> StdinPipe {
        StdinPipe(Arc::new(Shared {
            state: Mutex::default(),
            terminal,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands bytes to the guest (ignored once closed).
    pub fn write(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let wakers = {
            let mut state = self.state();
            if state.closed {
                return;
            }
            state.buffer.extend(bytes);
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// End of input: the guest reads what is buffered, then EOF.
    pub fn close(&self) {
        let wakers = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether [`StdinPipe::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// How many bytes the guest has read so far.
    pub fn consumed(&self) -> u64 {
        self.state().consumed
    }

    /// Bytes written and not yet read.
    pub fn pending(&self) -> usize {
        self.state().buffer.len()
    }

    /// Takes up to `size` bytes: `Some(empty)` when nothing is there yet, `None` at EOF.
    fn take(&self, size: usize) -> Option<Vec<u8>> {
        let mut state = self.state();
        if state.buffer.is_empty() {
            return if state.closed { None } else { Some(Vec::new()) };
        }
        let n = size.min(state.buffer.len());
        let bytes: Vec<u8> = state.buffer.drain(..n).collect();
        state.consumed += n as u64;
        Some(bytes)
    }

    /// Ready when there is something to read or the pipe is closed.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state();
        if !state.buffer.is_empty() || state.closed {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl IsTerminal for StdinPipe {
    fn is_terminal(&self) -> bool {
        self.0.terminal
    }
}

impl StdinStream for StdinPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for StdinPipe {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
    }
}

impl InputStream for StdinPipe {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.take(size) {
            Some(bytes) => Ok(Bytes::from(bytes)),
            None => Err(StreamError::Closed),
        }
    }
}

impl tokio::io::AsyncRead for StdinPipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            match self.take(buf.remaining()) {
                None => return Poll::Ready(Ok(())),
                Some(bytes) if !bytes.is_empty() => {
                    buf.put_slice(&bytes);
                    return Poll::Ready(Ok(()));
                }
                Some(_) => {
                    if self.poll_ready(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn the_guest_reads_what_the_host_wrote_then_eof() {
        let pipe = StdinPipe::new(false);
        let mut guest = pipe.clone();
        assert_eq!(InputStream::read(&mut guest, 10).unwrap(), Bytes::new());
        let reader = tokio::spawn({
            let mut guest = pipe.clone();
            async move {
                let mut all = Vec::new();
                guest.read_to_end(&mut all).await.unwrap();
                all
            }
        });
        tokio::task::yield_now().await;
        pipe.write(b"hello ");
        pipe.write(b"world\n");
        pipe.close();
        assert_eq!(reader.await.unwrap(), b"hello world\n");
        assert_eq!(pipe.consumed(), 12);
        assert!(matches!(
            InputStream::read(&mut guest, 1),
            Err(StreamError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_pollable_wakes_on_write() {
        let pipe = StdinPipe::new(true);
        assert!(pipe.is_terminal());
        let mut guest = pipe.clone();
        let waiter = tokio::spawn(async move {
            guest.ready().await;
            InputStream::read(&mut guest, 1).unwrap()
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        pipe.write(b"\x03");
        assert_eq!(waiter.await.unwrap(), Bytes::from_static(b"\x03"));
        assert_eq!(pipe.pending(), 0);
    }
}
