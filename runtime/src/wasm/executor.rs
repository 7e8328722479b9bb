//! The node's guest executor: the tokio runtime every container instance of one node runs
//! on, with one worker thread per core of `--node-cpu` (at least one). Guests yield at
//! every epoch tick according to their CPU share (`cpu.rs`), so on a node with one core two
//! spinning containers share that core by their `requests.cpu`, whatever the host has.

use tokio::runtime::{Builder, Handle, Runtime};

/// A tokio runtime for guests, shut down in the background when dropped (it may be dropped
/// from async code, where a blocking shutdown would panic).
#[derive(Debug)]
pub struct GuestExecutor {
    runtime: Option<Runtime>,
    handle: Handle,
    threads: usize,
}

impl GuestExecutor {
    /// An executor with enough threads for `cpu_millis` of CPU (rounded up to whole cores).
    pub fn new(cpu_millis: u64) -> std::io::Result<GuestExecutor> {
        let threads = usize::try_from(cpu_millis.div_ceil(1000))
            .unwrap_or(1)
            .clamp(1, 1024);
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wasm-guest")
            // Check timers and sockets before every task poll, not every 61st: a guest's poll
            // lasts up to its CPU slice, so the default would leave a sleeping or waiting
            // guest unwoken for seconds while others spin.
            .event_interval(1)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(GuestExecutor {
            runtime: Some(runtime),
            handle,
            threads,
        })
    }

    /// Where to spawn guests.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Its worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for GuestExecutor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_per_started_core() {
        assert_eq!(GuestExecutor::new(500).unwrap().threads(), 1);
        assert_eq!(GuestExecutor::new(1000).unwrap().threads(), 1);
        assert_eq!(GuestExecutor::new(2500).unwrap().threads(), 3);
    }

    #[tokio::test]
    async fn dropping_inside_async_code_does_not_panic() {
        let ex = GuestExecutor::new(1000).unwrap();
        let n = ex.handle().spawn(async { 7 }).await.unwrap();
        assert_eq!(n, 7);
        drop(ex);
    }
}
