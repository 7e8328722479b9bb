//! [`LocalStore`]: the in-memory index, watch history and group-commit writer shared by the
//! embedded backends.
//!
//! Reads never touch the disk: the whole keyspace lives in a `BTreeMap` of shared JSON values
//! (an edge cluster's objects fit in memory many times over). Writes go to one writer thread
//! that takes every request waiting in its queue, checks their preconditions in order, hands
//! the batch to the [`Durability`] (one transaction, one fsync), and only then makes the batch
//! visible and publishes its events. So a write is acknowledged only once it is durable, and
//! 64 concurrent writers cost about one fsync, not 64.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::watch::Watch;
use super::{Error, Event, EventType, Revision, Store, Versioned, Write, stamp_revision};

/// How many past events a watch can resume from before it gets `410 Gone`.
pub const DEFAULT_HISTORY: usize = 10_000;
/// The most writes committed in one batch.
const MAX_BATCH: usize = 512;

/// One change in a batch handed to [`Durability::commit`]: the key and its new value, or `None`
/// for a deletion.
pub type Change<'a> = (&'a str, Option<&'a Value>);

/// Where a [`LocalStore`] keeps its data durably.
pub trait Durability: Send + 'static {
    /// Loads every object and the last revision at start.
    fn load(&mut self) -> Result<(BTreeMap<String, Versioned>, Revision), Error>;
    /// Makes one batch durable, atomically, ending at `revision`.
    fn commit(&mut self, changes: &[Change<'_>], revision: Revision) -> Result<(), Error>;
}

struct State {
    objects: BTreeMap<String, Versioned>,
    revision: Revision,
    history: VecDeque<Arc<Event>>,
    /// The oldest revision a watch may resume after.
    oldest: Revision,
    history_limit: usize,
    events: broadcast::Sender<Arc<Event>>,
}

type Request = (Write, oneshot::Sender<Result<Versioned, Error>>);

/// An in-memory index in front of a [`Durability`]. See the module docs.
pub struct LocalStore {
    state: Arc<Mutex<State>>,
    writer: mpsc::UnboundedSender<Request>,
}

impl LocalStore {
    /// Loads `durability` and starts the writer thread.
    pub fn open<D: Durability>(mut durability: D, history_limit: usize) -> Result<Self, Error> {
        let (objects, revision) = durability.load()?;
        let (events, _) = broadcast::channel(history_limit.max(1024));
        let state = Arc::new(Mutex::new(State {
            objects,
            revision,
            history: VecDeque::new(),
            oldest: revision,
            history_limit,
            events,
        }));
        let (writer, queue) = mpsc::unbounded_channel();
        let writer_state = state.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(durability, writer_state, queue))
            .map_err(|e| Error::Backend(format!("cannot start writer thread: {e}")))?;
        Ok(Self { state, writer })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the map half-updated (every mutation is a
    // single insert/remove), so a poisoned lock is still consistent.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, Error> {
        Ok(self.state().objects.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<Versioned>, Revision), Error> {
        let state = self.state();
        let items = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok((items, state.revision))
    }

    async fn write(&self, write: Write) -> Result<Versioned, Error> {
        let (tx, rx) = oneshot::channel();
        self.writer.send((write, tx)).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, Error> {
        let state = self.state();
        if after < state.oldest {
            return Err(Error::Gone {
                requested: after,
                oldest: state.oldest,
            });
        }
        let backlog = state
            .history
            .iter()
            .filter(|e| e.revision > after && e.key.starts_with(prefix))
            .cloned()
            .collect();
        // Subscribing under the lock means no event falls between backlog and live stream.
        let live = state.events.subscribe();
        Ok(Watch::new(prefix.to_string(), backlog, live))
    }

    fn revision(&self) -> Revision {
        self.state().revision
    }
}

/// The outcome of one request in a batch, before it is durable.
struct Staged {
    key: String,
    kind: EventType,
    value: Option<Arc<Value>>,
    previous: Option<Arc<Value>>,
    revision: Revision,
}

fn write_loop<D: Durability>(
    mut durability: D,
    state: Arc<Mutex<State>>,
    mut queue: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        commit_batch(&mut durability, &state, batch);
    }
}

fn commit_batch<D: Durability>(durability: &mut D, state: &Mutex<State>, batch: Vec<Request>) {
    // Only this thread mutates `objects`, so what we read here is still current when we apply.
    let mut revision = lock(state).revision;
    let mut overlay: BTreeMap<String, Option<Versioned>> = BTreeMap::new();
    let mut staged: Vec<Option<Staged>> = Vec::with_capacity(batch.len());
    let mut results: Vec<Option<Error>> = Vec::with_capacity(batch.len());
    for (write, _) in &batch {
        let current = match overlay.get(write.key()) {
            Some(v) => v.clone(),
            None => lock(state).objects.get(write.key()).cloned(),
        };
        match stage(write, current.as_ref(), revision + 1) {
            Ok(s) => {
                revision += 1;
                overlay.insert(
                    s.key.clone(),
                    s.value.clone().map(|value| Versioned {
                        value,
                        revision: s.revision,
                    }),
                );
                staged.push(Some(s));
                results.push(None);
            }
            Err(e) => {
                staged.push(None);
                results.push(Some(e));
            }
        }
    }

    let changes: Vec<Change<'_>> = staged
        .iter()
        .flatten()
        .map(|s| (s.key.as_str(), s.value.as_deref()))
        .collect();
    let started = std::time::Instant::now();
    let committed = if changes.is_empty() {
        Ok(())
    } else {
        let result = durability.commit(&changes, revision);
        crate::telemetry::METRICS.commit(changes.len(), started.elapsed());
        result
    };
    if let Err(e) = committed {
        let message = e.to_string();
        for (_, reply) in batch {
            let _ = reply.send(Err(Error::Backend(message.clone())));
        }
        return;
    }

    let mut s = lock(state);
    for ((_, reply), (staged, error)) in batch.into_iter().zip(staged.into_iter().zip(results)) {
        let Some(st) = staged else {
            let _ = reply.send(Err(error.unwrap_or(Error::Closed)));
            continue;
        };
        let object = match &st.value {
            Some(v) => {
                s.objects.insert(
                    st.key.clone(),
                    Versioned {
                        value: v.clone(),
                        revision: st.revision,
                    },
                );
                v.clone()
            }
            None => {
                s.objects.remove(&st.key);
                let mut last = st.previous.as_deref().cloned().unwrap_or(Value::Null);
                stamp_revision(&mut last, st.revision);
                Arc::new(last)
            }
        };
        s.revision = st.revision;
        let event = Arc::new(Event {
            kind: st.kind,
            key: st.key,
            object: object.clone(),
            previous: st.previous,
            revision: st.revision,
        });
        s.history.push_back(event.clone());
        while s.history.len() > s.history_limit {
            if let Some(old) = s.history.pop_front() {
                s.oldest = old.revision;
            }
        }
        let _ = s.events.send(event);
        let _ = reply.send(Ok(Versioned {
            value: object,
            revision: st.revision,
        }));
    }
}

fn stage(write: &Write, current: Option<&Versioned>, revision: Revision) -> Result<Staged, Error> {
    let check = |expected: &Option<Revision>, key: &str| -> Result<&Versioned, Error> {
        let cur = current.ok_or_else(|| Error::NotFound { key: key.into() })?;
        match expected {
            Some(e) if *e != cur.revision => Err(Error::Conflict {
                key: key.into(),
                expected: *e,
                actual: cur.revision,
            }),
            _ => Ok(cur),
        }
    };
    match write {
        Write::Create { key, value } => {
            if current.is_some() {
                return Err(Error::AlreadyExists { key: key.clone() });
            }
            let mut value = value.clone();
            stamp_revision(&mut value, revision);
            Ok(Staged {
                key: key.clone(),
                kind: EventType::Added,
                value: Some(Arc::new(value)),
                previous: None,
                revision,
            })
        }
        Write::Update {
            key,
            value,
            expected,
        } => {
            let cur = check(expected, key)?;
            let mut value = value.clone();
            stamp_revision(&mut value, revision);
            Ok(Staged {
                key: key.clone(),
                kind: EventType::Modified,
                value: Some(Arc::new(value)),
                previous: Some(cur.value.clone()),
                revision,
            })
        }
        Write::Delete { key, expected } => {
            let cur = check(expected, key)?;
            Ok(Staged {
                key: key.clone(),
                kind: EventType::Deleted,
                value: None,
                previous: Some(cur.value.clone()),
                revision,
            })
        }
    }
}
