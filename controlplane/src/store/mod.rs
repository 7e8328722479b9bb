//! The store: where every API object lives, and the source of `resourceVersion`.
//!
//! [`Store`] is the seam between the API server and durable storage. Keys are strings in the
//! kube-apiserver layout (`/registry/{group}/{resource}/{namespace}/{name}`), values are the
//! objects' JSON. Every write gets the next global [`Revision`], which is also the object's
//! `metadata.resourceVersion`; conditional writes are compare-and-swap on it.
//!
//! Backends: [`redb::RedbStore`] (the default, one file) and [`memory::MemoryStore`] (tests). Both
//! are a [`local::LocalStore`]: an in-memory index that serves reads and watches, in front of a
//! [`local::Durability`] that makes each batch of writes durable before anyone sees it (group
//! commit: many concurrent writers share one fsync). An etcd backend will implement [`Store`]
//! directly.

pub mod local;
pub mod memory;
pub mod redb;
mod watch;

use std::sync::Arc;

use serde_json::Value;

pub use watch::Watch;

/// The store's global revision counter; an object's `resourceVersion` is the revision of the
/// write that last changed it.
pub type Revision = u64;

/// An object as stored, with the revision that last modified it.
#[derive(Clone, Debug)]
pub struct Versioned {
    /// The object's JSON, with `metadata.resourceVersion` already set to `revision`.
    pub value: Arc<Value>,
    /// The revision of the write that produced this value.
    pub revision: Revision,
}

/// One write, applied atomically and in order with every other write.
#[derive(Clone, Debug)]
pub enum Write {
    /// Creates `key`; fails with [`Error::AlreadyExists`] if it is present.
    Create {
        /// The object's key.
        key: String,
        /// The object.
        value: Value,
    },
    /// Replaces `key`; with `expected`, only if its revision is still that one.
    Update {
        /// The object's key.
        key: String,
        /// The new object.
        value: Value,
        /// Compare-and-swap precondition on the current revision.
        expected: Option<Revision>,
    },
    /// Removes `key`; with `expected`, only if its revision is still that one.
    Delete {
        /// The object's key.
        key: String,
        /// Compare-and-swap precondition on the current revision.
        expected: Option<Revision>,
    },
}

impl Write {
    /// The key this write touches.
    pub fn key(&self) -> &str {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }
}

/// What happened to a key, as delivered to watchers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was removed.
    Deleted,
}

/// A change to one key, published after it is durable.
#[derive(Clone, Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The key that changed.
    pub key: String,
    /// The new object; for deletions the last state, stamped with the deletion revision.
    pub object: Arc<Value>,
    /// The object before this change (for filtered watches that must notice a match ending).
    pub previous: Option<Arc<Value>>,
    /// The revision of this change.
    pub revision: Revision,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A create found the key present.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The existing key.
        key: String,
    },
    /// A compare-and-swap precondition failed.
    #[error("key {key} is at revision {actual}, not {expected}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the writer expected.
        expected: Revision,
        /// The revision the key is at.
        actual: Revision,
    },
    /// A watch asked for history the store no longer keeps.
    #[error("revision {requested} is older than the oldest kept, {oldest}")]
    Gone {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision a watch can still resume from.
        oldest: Revision,
    },
    /// The backend failed (I/O, corruption); the write was not applied.
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
}

/// The contract between the API server and storage. See the module docs.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, Error>;
    /// Reads every key starting with `prefix`, sorted, from one consistent snapshot, and the
    /// revision of that snapshot.
    async fn list(&self, prefix: &str) -> Result<(Vec<Versioned>, Revision), Error>;
    /// Applies one write once it is durable; returns the revision it got.
    async fn write(&self, write: Write) -> Result<Versioned, Error>;
    /// Streams every change to keys under `prefix` after revision `after`.
    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, Error>;
    /// The newest revision.
    fn revision(&self) -> Revision;
}

/// Stamps `metadata.resourceVersion` with `revision`, as every stored object carries it.
pub fn stamp_revision(value: &mut Value, revision: Revision) {
    if let Some(obj) = value.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(
                "resourceVersion".into(),
                Value::String(revision.to_string()),
            );
        }
    }
}

#[cfg(test)]
mod tests;
