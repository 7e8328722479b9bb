//! Where a container's stdout and stderr go.
//!
//! The runtime only needs "accept these bytes": an [`OutputSink`]. The node agent's log
//! store implements it (files with bounded open fds, a tail for `logs -f`); [`LogFile`],
//! [`MemorySink`] and [`Discard`] cover simple cases and tests. [`SinkStream`] adapts a sink
//! to wasmtime-wasi's `StdoutStream` for both preview 2 and preview 1 guests.

use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Receives a container's output as the guest writes it.
///
/// Called from the thread running the guest: an implementation should not block for long
/// (append to a file or a buffer). An error is reported to the guest as a failed write.
/// A sink that forwards to a slower consumer (an exec session's WebSocket) bounds what it
/// holds with [`OutputSink::room`] and [`OutputSink::writable`]: a preview 2 guest then
/// waits in its write, as a process writing to a full pipe does.
pub trait OutputSink: Send + Sync + 'static {
    /// Takes the next chunk of output.
    fn write(&self, bytes: &[u8]) -> std::io::Result<()>;

    /// How many bytes the sink takes now; 0 makes the guest wait for
    /// [`OutputSink::writable`]. Unbounded by default.
    fn room(&self) -> usize {
        usize::MAX
    }

    /// Resolves once [`OutputSink::room`] is above 0 again.
    fn writable(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Throws output away.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl OutputSink for Discard {
    fn write(&self, _bytes: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends output to a file, kept open for the container's life.
#[derive(Debug)]
pub struct LogFile {
    file: File,
}

impl LogFile {
    /// Opens (creating if needed) `path` for appending.
    pub fn append(path: &Path) -> std::io::Result<LogFile> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(LogFile { file })
    }
}

impl OutputSink for LogFile {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        (&self.file).write_all(bytes)
    }
}

/// Collects output in memory, up to a cap (the rest is dropped). Meant for tests and short
/// commands such as exec probes.
#[derive(Debug)]
pub struct MemorySink {
    buf: Mutex<Vec<u8>>,
    cap: usize,
}

impl MemorySink {
    /// A sink keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Arc<MemorySink> {
        Arc::new(MemorySink {
            buf: Mutex::new(Vec::new()),
            cap,
        })
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything written so far, as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents()).into_owned()
    }
}

impl OutputSink for MemorySink {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        Ok(())
    }
}

/// How much a guest may write in one go before it must check again.
const WRITE_BUDGET: usize = 64 * 1024;

/// An [`OutputSink`] as wasmtime-wasi's stdout/stderr stream; `terminal` is what the
/// guest's `isatty` says.
#[derive(Clone)]
pub(crate) struct SinkStream(Arc<dyn OutputSink>, bool);

impl SinkStream {
    pub(crate) fn new(sink: Arc<dyn OutputSink>, terminal: bool) -> SinkStream {
        SinkStream(sink, terminal)
    }
}

impl IsTerminal for SinkStream {
    fn is_terminal(&self) -> bool {
        self.1
    }
}

impl StdoutStream for SinkStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for SinkStream {
    async fn ready(&mut self) {
        self.0.writable().await;
    }
}

impl OutputStream for SinkStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0
            .write(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(self.0.room().min(WRITE_BUDGET))
    }
}

impl tokio::io::AsyncWrite for SinkStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.0.write(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
