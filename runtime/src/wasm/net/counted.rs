//! Network bytes per container, counted in the socket layer (the wasm counterpart of the
//! `rx_bytes`/`tx_bytes` cAdvisor reads from a pod's network namespace).
//!
//! wasmtime-wasi hands a connected TCP socket's streams to the guest as boxed
//! `wasi:io/streams` resources (`DynInputStream`, `DynOutputStream`). After `finish-connect`
//! and `accept`, the shadowed TCP layer swaps each boxed stream in the resource table for a
//! [`Counted`] wrapper around it: the guest keeps the same handles, and every byte a `read`
//! returns or a `write` accepts lands in the container's [`Usage`]. UDP datagrams are counted
//! where the shadowed `send`/`receive` pass them through (udp.rs).

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::{Resource, ResourceTable, ResourceTableError};
use wasmtime_wasi::p2::pipe::{ClosedInputStream, ClosedOutputStream};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable, StreamResult,
};

use crate::wasm::Usage;

/// A stream whose bytes are added to a container's usage.
pub(crate) struct Counted<S> {
    inner: S,
    usage: Arc<Usage>,
}

#[async_trait::async_trait]
impl Pollable for Counted<DynInputStream> {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl InputStream for Counted<DynInputStream> {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let bytes = self.inner.read(size)?;
        self.usage.add_rx(bytes.len());
        Ok(bytes)
    }

    fn skip(&mut self, nelem: usize) -> StreamResult<usize> {
        let n = self.inner.skip(nelem)?;
        self.usage.add_rx(n);
        Ok(n)
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[async_trait::async_trait]
impl Pollable for Counted<DynOutputStream> {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl OutputStream for Counted<DynOutputStream> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let n = bytes.len();
        self.inner.write(bytes)?;
        self.usage.add_tx(n);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// Wraps a connection's two streams, in place: the resources keep their handles (and their
/// parent, the socket).
pub(crate) fn count_streams(
    table: &mut ResourceTable,
    input: &Resource<DynInputStream>,
    output: &Resource<DynOutputStream>,
    usage: &Arc<Usage>,
) -> Result<(), ResourceTableError> {
    let slot = table.get_mut(input)?;
    let inner = std::mem::replace(slot, Box::new(ClosedInputStream));
    *slot = Box::new(Counted {
        inner,
        usage: usage.clone(),
    });
    let slot = table.get_mut(output)?;
    let inner = std::mem::replace(slot, Box::new(ClosedOutputStream));
    *slot = Box::new(Counted {
        inner,
        usage: usage.clone(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

    #[test]
    fn reads_and_writes_are_counted_through_the_same_handles() {
        let mut table = ResourceTable::new();
        let input: DynInputStream = Box::new(MemoryInputPipe::new("hello world"));
        let sink = MemoryOutputPipe::new(1024);
        let output: DynOutputStream = Box::new(sink.clone());
        let input = table.push(input).unwrap();
        let output = table.push(output).unwrap();
        let usage = Arc::new(Usage::default());
        count_streams(&mut table, &input, &output, &usage).unwrap();

        let read = table.get_mut(&input).unwrap().read(5).unwrap();
        assert_eq!(&read[..], b"hello");
        assert_eq!(table.get_mut(&input).unwrap().skip(3).unwrap(), 3);
        let out = table.get_mut(&output).unwrap();
        assert!(out.check_write().unwrap() >= 4);
        out.write(Bytes::from_static(b"abcd")).unwrap();
        assert_eq!((usage.rx_bytes(), usage.tx_bytes()), (8, 4));
        assert_eq!(&sink.contents()[..], b"abcd");
    }
}
