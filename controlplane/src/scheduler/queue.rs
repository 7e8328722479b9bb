//! The scheduling queue (kube-scheduler's `SchedulingQueue`, without priorities): pods
//! waiting for a decision, each queued once however many events arrive for it; pods that fit
//! nowhere, parked until the cluster changes or their retry period ends; and pods whose bind
//! failed, waiting out a short backoff.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};

use tokio::time::Instant;

/// Pending pods by `namespace/name`.
#[derive(Debug, Default)]
pub struct Queue {
    /// Pods to decide, in arrival order; may hold keys no longer in `queued` (skipped).
    active: VecDeque<String>,
    queued: HashSet<String>,
    unschedulable: HashSet<String>,
    backoff: BinaryHeap<Reverse<(Instant, String)>>,
}

impl Queue {
    /// Queues `key` for a decision unless it already is.
    pub fn add(&mut self, key: String) {
        self.unschedulable.remove(&key);
        if self.queued.insert(key.clone()) {
            self.active.push_back(key);
        }
    }

    /// The next pod to decide.
    pub fn pop(&mut self) -> Option<String> {
        while let Some(key) = self.active.pop_front() {
            if self.queued.remove(&key) {
                return Some(key);
            }
        }
        None
    }

    /// Whether some pod waits for a decision.
    pub fn has_active(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Parks `key`, which fits no node now.
    pub fn park(&mut self, key: String) {
        if !self.queued.contains(&key) {
            self.unschedulable.insert(key);
        }
    }

    /// Moves every parked pod back to the active queue: something changed that may make
    /// them fit (or their retry period is over).
    pub fn retry_unschedulable(&mut self) {
        for key in std::mem::take(&mut self.unschedulable) {
            self.add(key);
        }
    }

    /// How many pods are parked.
    pub fn unschedulable_len(&self) -> usize {
        self.unschedulable.len()
    }

    /// Retries `key` at `at`.
    pub fn backoff(&mut self, key: String, at: Instant) {
        self.backoff.push(Reverse((at, key)));
    }

    /// When the next backoff ends.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _))| *at)
    }

    /// Queues every pod whose backoff has ended by `now`.
    pub fn release_backoff(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.backoff.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, key))) = self.backoff.pop() {
                self.add(key);
            }
        }
    }

    /// Drops `key` wherever it waits (bound elsewhere, deleted); a backoff entry stays and
    /// finds nothing to do.
    pub fn forget(&mut self, key: &str) {
        self.queued.remove(key);
        self.unschedulable.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_queued_once() {
        let mut q = Queue::default();
        q.add("a".into());
        q.add("b".into());
        q.add("a".into());
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn parked_pods_return_on_retry() {
        let mut q = Queue::default();
        q.park("a".into());
        assert!(!q.has_active());
        q.retry_unschedulable();
        assert_eq!(q.pop().as_deref(), Some("a"));
        assert_eq!(q.unschedulable_len(), 0);
    }

    #[test]
    fn forgotten_pods_are_skipped() {
        let mut q = Queue::default();
        q.add("a".into());
        q.add("b".into());
        q.forget("a");
        assert_eq!(q.pop().as_deref(), Some("b"));
        assert!(!q.has_active());
    }

    #[test]
    fn backoff_releases_in_time_order() {
        let mut q = Queue::default();
        let now = Instant::now();
        q.backoff("late".into(), now + std::time::Duration::from_secs(2));
        q.backoff("soon".into(), now + std::time::Duration::from_secs(1));
        assert_eq!(
            q.next_backoff(),
            Some(now + std::time::Duration::from_secs(1))
        );
        q.release_backoff(now + std::time::Duration::from_secs(1));
        assert_eq!(q.pop().as_deref(), Some("soon"));
        assert_eq!(q.pop(), None);
    }
}
