//! [`RedbStore`]: the default backend, one redb file under the data dir.
//!
//! Two tables: `objects` maps a key to `(revision, JSON)`, `meta` holds the global revision (so
//! it never goes backwards, even after the newest object is deleted). Each batch from the
//! writer is one write transaction committed with `Durability::Immediate`: one fsync per batch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::local::{Change, DEFAULT_HISTORY, Durability, LocalStore};
use super::{Error, Revision, Versioned};

const OBJECTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// The redb file behind a [`LocalStore`].
pub struct RedbDurability {
    db: Database,
}

fn backend(what: &str) -> impl FnOnce(redb::Error) -> Error + '_ {
    move |e| Error::Backend(format!("{what}: {e}"))
}

impl Durability for RedbDurability {
    fn load(&mut self) -> Result<(BTreeMap<String, Versioned>, Revision), Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| backend("begin read")(e.into()))?;
        let mut objects = BTreeMap::new();
        let mut revision = 1;
        match txn.open_table(OBJECTS) {
            Ok(table) => {
                for row in table
                    .iter()
                    .map_err(|e| backend("scan objects")(e.into()))?
                {
                    let (k, v) = row.map_err(|e| backend("read object")(e.into()))?;
                    let (rev, bytes) = v.value();
                    let value = serde_json::from_slice(bytes).map_err(|e| {
                        Error::Backend(format!("object {} is not JSON: {e}", k.value()))
                    })?;
                    revision = revision.max(rev);
                    objects.insert(
                        k.value().to_string(),
                        Versioned {
                            value: Arc::new(value),
                            revision: rev,
                        },
                    );
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(backend("open objects")(e.into())),
        }
        match txn.open_table(META) {
            Ok(table) => {
                if let Some(r) = table
                    .get(REVISION)
                    .map_err(|e| backend("read revision")(e.into()))?
                {
                    revision = revision.max(r.value());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(backend("open meta")(e.into())),
        }
        Ok((objects, revision))
    }

    fn commit(&mut self, changes: &[Change<'_>], revision: Revision) -> Result<(), Error> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend("begin write")(e.into()))?;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(|e| backend("open objects")(e.into()))?;
            for (key, value) in changes {
                match value {
                    Some(v) => {
                        let rev = v
                            .pointer("/metadata/resourceVersion")
                            .and_then(|r| r.as_str())
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(revision);
                        let bytes = serde_json::to_vec(v)
                            .map_err(|e| Error::Backend(format!("encode {key}: {e}")))?;
                        objects
                            .insert(*key, (rev, bytes.as_slice()))
                            .map_err(|e| backend("insert")(e.into()))?;
                    }
                    None => {
                        objects
                            .remove(*key)
                            .map_err(|e| backend("remove")(e.into()))?;
                    }
                }
            }
            let mut meta = txn
                .open_table(META)
                .map_err(|e| backend("open meta")(e.into()))?;
            meta.insert(REVISION, revision)
                .map_err(|e| backend("write revision")(e.into()))?;
        }
        txn.commit().map_err(|e| backend("commit")(e.into()))
    }
}

/// The redb-backed store.
pub struct RedbStore;

impl RedbStore {
    /// Opens (or creates) the store file at `path`.
    #[allow(
        clippy::new_ret_no_self,
        reason = "a RedbStore is a LocalStore over redb"
    )]
    pub fn open(path: &Path) -> Result<LocalStore, Error> {
        let db = Database::create(path)
            .map_err(|e| Error::Backend(format!("open {}: {e}", path.display())))?;
        LocalStore::open(RedbDurability { db }, DEFAULT_HISTORY)
    }
}
