//! Writes a controller made that its pod cache has not shown yet, per owner uid (the
//! ReplicaSet, DaemonSet and Job controllers' "expectations", as kube-controller-manager keeps
//! them): until the reflector has seen every pod created and every deletion, a reconcile on
//! the lagging cache would create or delete again.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};

/// How long an expectation may stay unmet before the controller acts anyway.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Unseen writes per owner uid.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    created: HashSet<String>,
    deleted: HashSet<String>,
    since: Instant,
}

impl Expectations {
    /// Remembers pods created and deleted for `owner`.
    pub fn expect(&self, owner: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(owner.to_string()).or_insert_with(|| Pending {
            created: HashSet::new(),
            deleted: HashSet::new(),
            since: Instant::now(),
        });
        entry.created.extend(created);
        entry.deleted.extend(deleted);
        entry.since = Instant::now();
    }

    /// Whether the cache shows every write made for `owner` (or they are too old to wait for).
    pub fn satisfied(&self, owner: &str, namespace: &str, pods: &Store<Pod>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = pending.get_mut(owner) else {
            return true;
        };
        let lookup = |name: &str| pods.get(&ObjectRef::new(name).within(namespace));
        entry.created.retain(|name| lookup(name).is_none());
        entry
            .deleted
            .retain(|name| lookup(name).is_some_and(|p| p.metadata.deletion_timestamp.is_none()));
        if (entry.created.is_empty() && entry.deleted.is_empty()) || entry.since.elapsed() > TIMEOUT
        {
            pending.remove(owner);
            return true;
        }
        false
    }
}
