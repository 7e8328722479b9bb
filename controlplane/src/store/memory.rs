//! [`MemoryStore`]: a [`LocalStore`] that keeps nothing on disk, for unit tests.

use std::collections::BTreeMap;

use super::local::{Change, DEFAULT_HISTORY, Durability, LocalStore};
use super::{Error, Revision, Versioned};

/// Durability that forgets everything when the process ends.
pub struct Volatile;

impl Durability for Volatile {
    fn load(&mut self) -> Result<(BTreeMap<String, Versioned>, Revision), Error> {
        Ok((BTreeMap::new(), 1))
    }
    fn commit(&mut self, _changes: &[Change<'_>], _revision: Revision) -> Result<(), Error> {
        Ok(())
    }
}

/// A store that lives only in memory.
pub struct MemoryStore;

impl MemoryStore {
    /// Opens an empty in-memory store.
    #[allow(
        clippy::new_ret_no_self,
        reason = "a MemoryStore is a LocalStore over Volatile"
    )]
    pub fn new() -> LocalStore {
        // Opening a Volatile store cannot fail: load is infallible and the thread always starts
        // on a healthy system; a failure to spawn a thread is not recoverable anyway.
        LocalStore::open(Volatile, DEFAULT_HISTORY).expect("start in-memory store")
    }
}
