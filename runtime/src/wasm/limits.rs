//! Memory limits of one container, and the signal that marks it `OOMKilled`.
//!
//! `limits.memory` becomes [`StoreLimits::memory_size`] with `trap_on_grow_failure(true)`:
//! by default a refused `memory.grow` just returns -1 and the guest decides what to do (Rust
//! aborts with a generic trap), so the trap text cannot tell an OOM from any other abort.
//! [`ContainerLimiter`] wraps the store limits and records that a grow was denied; that flag,
//! not the trap message, is what turns the exit into 137 `OOMKilled` (ARCHITECTURE D9).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Live resource usage of one container, readable while it runs (for the node's summary
/// API, `/metrics/resource`, `kubectl top` and the HPA).
///
/// Every instance of the container adds to it: the main instance, each `wasi:http` request's
/// instance and each `kubectl exec` (as a process exec'd into a container is in its cgroup).
#[derive(Debug, Default)]
pub struct Usage {
    memory_bytes: AtomicU64,
    memory_peak: AtomicU64,
    cpu_nanos: AtomicU64,
    rx_bytes: AtomicU64,
    tx_bytes: AtomicU64,
    instances: AtomicU64,
}

impl Usage {
    /// CPU time the container has used so far: the guest threads' CPU time inside its
    /// polls (`CLOCK_THREAD_CPUTIME_ID`, see `cpu.rs`).
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn add_cpu(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Bytes of linear memory (all memories of its live instances) the container holds.
    /// Wasm memories only grow: this falls only when an instance ends.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }

    /// The most linear memory the container has held at once (cgroup v2's `memory.peak`).
    pub fn memory_peak(&self) -> u64 {
        self.memory_peak.load(Ordering::Relaxed)
    }

    /// Bytes the container received on its sockets (TCP streams and UDP datagrams).
    pub fn rx_bytes(&self) -> u64 {
        self.rx_bytes.load(Ordering::Relaxed)
    }

    /// Bytes the container sent on its sockets.
    pub fn tx_bytes(&self) -> u64 {
        self.tx_bytes.load(Ordering::Relaxed)
    }

    /// Wasm instances of the container alive now (its main instance, execs, requests).
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    pub(crate) fn add_rx(&self, n: usize) {
        self.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_tx(&self, n: usize) {
        self.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The store's [`ResourceLimiter`]: enforces the memory limit and remembers denials.
pub(crate) struct ContainerLimiter {
    inner: StoreLimits,
    limit: u64,
    denied: bool,
    usage: Arc<Usage>,
    /// What this instance added to `usage.memory_bytes`, taken back when it ends.
    grown: u64,
}

impl ContainerLimiter {
    /// A limiter allowing `limit` bytes per linear memory.
    pub(crate) fn new(limit: u64, usage: Arc<Usage>) -> ContainerLimiter {
        let inner = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limit).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        usage.instances.fetch_add(1, Ordering::Relaxed);
        ContainerLimiter {
            inner,
            limit,
            denied: false,
            usage,
            grown: 0,
        }
    }

    /// Whether a memory grow was refused: the container ran out of its memory limit.
    pub(crate) fn oom(&self) -> bool {
        self.denied
    }

    /// The limit in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

impl Drop for ContainerLimiter {
    /// The instance (its store) is gone, and its linear memory with it.
    fn drop(&mut self) {
        self.usage
            .memory_bytes
            .fetch_sub(self.grown, Ordering::Relaxed);
        self.usage.instances.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ResourceLimiter for ContainerLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.inner.memory_growing(current, desired, maximum);
        match verdict {
            Ok(true) => {
                let grown = desired.saturating_sub(current) as u64;
                self.grown += grown;
                let now = self.usage.memory_bytes.fetch_add(grown, Ordering::Relaxed) + grown;
                self.usage.memory_peak.fetch_max(now, Ordering::Relaxed);
            }
            Ok(false) | Err(_) => self.denied = true,
        }
        verdict
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // Allowed by us but refused by the pool (its slot size) or the OS: still out of memory.
        self.denied = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_grow_marks_oom_and_traps() {
        let usage = Arc::new(Usage::default());
        let mut l = ContainerLimiter::new(32 << 20, usage.clone());
        assert!(l.memory_growing(0, 16 << 20, None).unwrap());
        assert_eq!(usage.memory_bytes(), 16 << 20);
        assert!(!l.oom());
        assert!(
            l.memory_growing(16 << 20, 48 << 20, None).is_err(),
            "trap_on_grow_failure"
        );
        assert!(l.oom());
        assert_eq!(usage.memory_bytes(), 16 << 20);
        // A second instance of the same container (an exec, a wasi:http request) adds to
        // it; each takes its own memory back when it ends.
        let mut other = ContainerLimiter::new(32 << 20, usage.clone());
        assert!(other.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(usage.memory_bytes(), 17 << 20);
        assert_eq!(usage.instances(), 2);
        drop(l);
        assert_eq!(usage.memory_bytes(), 1 << 20);
        drop(other);
        assert_eq!(usage.memory_bytes(), 0);
    }

    #[test]
    fn failed_grow_after_approval_is_oom_too() {
        let mut l = ContainerLimiter::new(1 << 30, Arc::default());
        assert!(
            l.memory_grow_failed(wasmtime::format_err!("pool slot full"))
                .is_err()
        );
        assert!(l.oom());
    }
}
