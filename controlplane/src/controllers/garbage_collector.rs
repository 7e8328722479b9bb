//! The garbage collector: cascading deletion through `ownerReferences`, as
//! kube-controller-manager's garbage collector does it.
//!
//! An object whose owners are all gone (a GET of the owner answers 404, or another uid) is
//! deleted in the background; one that still has an owner loses only the references to the
//! gone ones. An owner the API server marked with `foregroundDeletion` (a delete with
//! `propagationPolicy: Foreground`) waits until its dependents with `blockOwnerDeletion` are
//! gone, then loses the finalizer; one marked `orphan` first has itself removed from its
//! dependents' ownerReferences. The API server's half, the finalizers, is in
//! [`crate::apiserver::delete`].
//!
//! Every kind the API serves with list, watch and delete (found by discovery; Events are left
//! out, as Kubernetes does) gets a metadata-only reflector and a [`Controller`]; their watch
//! events also feed one ownership graph (`graph.rs`), which routes changes to the objects they
//! concern (the dependents of a deleted owner, the owner waiting for a dependent). Reconcilers
//! are level-triggered: `decide.rs` says what to do from the graph and, for owners the graph
//! does not know, a live read; an owner that lets go of its dependents (orphaning, or done
//! waiting) lists them live first, so none created just before its deletion is missed. The
//! writes are in `writes.rs`. Start reading at `reconcile`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, ListParams, PartialObjectMeta};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::decide::{Owner, OwnerStep, Verdict};
use self::graph::{Graph, Key, KindId, Node};
use super::ControllerOptions;
use crate::apiserver::delete::{FOREGROUND, ORPHAN};

mod decide;
mod graph;
mod writes;

/// An object as the collector watches it: metadata only.
type Meta = PartialObjectMeta<DynamicObject>;

/// How many absent owners are remembered before the memory starts over.
const ABSENT_OWNERS: usize = 10_000;

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
    /// An ownerReference names a kind the API does not serve, so its existence cannot be
    /// checked (the object is kept, as Kubernetes keeps it).
    #[error("owner kind {kind} in {api_version} is not served")]
    UnknownOwnerKind {
        /// The reference's `apiVersion`.
        api_version: String,
        /// The reference's `kind`.
        kind: String,
    },
}

/// A kind the API serves.
struct Kind {
    resource: ApiResource,
    namespaced: bool,
    /// Whether the collector watches it (list, watch and delete, and not Events).
    watched: bool,
}

/// What every reconcile shares.
struct Shared {
    client: Client,
    kinds: Vec<Kind>,
    graph: Mutex<Graph>,
    /// Owner uids known to be gone (uids never come back).
    absent: Mutex<HashSet<String>>,
    triggers: Vec<mpsc::UnboundedSender<ObjectRef<Meta>>>,
    options: ControllerOptions,
}

/// One kind's reconciler context.
struct Context {
    kind: KindId,
    shared: Arc<Shared>,
}

/// Runs until `shutdown`.
pub async fn run(client: Client, options: ControllerOptions, shutdown: CancellationToken) {
    let kinds = loop {
        match discover(&client).await {
            Ok(kinds) => break kinds,
            Err(e) => tracing::warn!(error = %e, "garbage collector discovery failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };
    let (triggers, receivers): (Vec<_>, Vec<_>) =
        kinds.iter().map(|_| mpsc::unbounded_channel()).unzip();
    let shared = Arc::new(Shared {
        client: client.clone(),
        kinds,
        graph: Mutex::new(Graph::default()),
        absent: Mutex::new(HashSet::new()),
        triggers,
        options,
    });
    let controllers = receivers
        .into_iter()
        .enumerate()
        .filter(|(id, _)| shared.kinds[*id].watched)
        .map(|(id, rx)| {
            let resource = shared.kinds[id].resource.clone();
            // `Api<PartialObjectMeta<_>>` lists and watches metadata only.
            let api: Api<Meta> = Api::all_with(client.clone(), &resource);
            let writer = Writer::<Meta>::new(resource.clone());
            let reader = writer.as_reader();
            let graph_shared = shared.clone();
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .inspect_ok(move |event| graph_shared.observe(id, event))
                .applied_objects()
                .try_filter(|o| futures::future::ready(interesting(o)));
            Controller::for_stream_with(stream, reader, resource)
                .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
                .with_config(kube::runtime::Config::default().concurrency(8))
                .graceful_shutdown_on(shutdown.clone().cancelled_owned())
                .run(
                    reconcile,
                    error_policy,
                    Arc::new(Context {
                        kind: id,
                        shared: shared.clone(),
                    }),
                )
                .for_each(|_| futures::future::ready(()))
        });
    futures::future::join_all(controllers).await;
}

/// Every kind the API serves, at its most stable version.
async fn discover(client: &Client) -> Result<Vec<Kind>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut kinds = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.resources_by_stability() {
            let watched = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|v| caps.supports_operation(v))
                && resource.plural != "events";
            kinds.push(Kind {
                namespaced: caps.scope == Scope::Namespaced,
                resource,
                watched,
            });
        }
    }
    Ok(kinds)
}

/// Objects the collector reconciles on their own changes: dependents, and owners being
/// deleted with one of its finalizers. Others only matter as owners, through the graph.
fn interesting(obj: &Meta) -> bool {
    let meta = &obj.metadata;
    meta.owner_references
        .as_ref()
        .is_some_and(|r| !r.is_empty())
        || (meta.deletion_timestamp.is_some()
            && meta
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FOREGROUND || f == ORPHAN))
}

impl Shared {
    /// Feeds one watch event of kind `kind` to the graph and wakes what it concerns.
    fn observe(&self, kind: KindId, event: &watcher::Event<Meta>) {
        let touched = {
            let mut graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                watcher::Event::Init => {
                    graph.relist_started(kind);
                    Vec::new()
                }
                watcher::Event::InitDone => graph.relist_done(kind),
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => match &o.metadata.uid {
                    Some(uid) => graph.apply(uid, Node::of(kind, &o.metadata)),
                    None => Vec::new(),
                },
                watcher::Event::Delete(o) => match &o.metadata.uid {
                    Some(uid) => graph.remove(uid),
                    None => Vec::new(),
                },
            }
        };
        for key in touched {
            let _ = self.triggers[key.kind].send(self.object_ref(&key));
        }
    }

    fn object_ref(&self, key: &Key) -> ObjectRef<Meta> {
        let r = ObjectRef::new_with(&key.name, self.kinds[key.kind].resource.clone());
        match &key.namespace {
            Some(ns) => r.within(ns),
            None => r,
        }
    }

    fn api(&self, key: &Key) -> Api<DynamicObject> {
        let resource = &self.kinds[key.kind].resource;
        match &key.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    fn synced(&self) -> bool {
        let watched = (0..self.kinds.len()).filter(|k| self.kinds[*k].watched);
        self.graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .synced(watched)
    }

    /// What became of the owner `r` of an object in `namespace`: the graph's word if it knows
    /// the uid, else a live read (the graph may not have seen a new owner yet).
    async fn owner(&self, r: &OwnerReference, namespace: Option<&str>) -> Result<Owner, Error> {
        let known = self
            .graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&r.uid)
            // A namespaced owner only counts in the dependent's own namespace.
            .filter(|o| o.key.namespace.is_none() || o.key.namespace.as_deref() == namespace)
            .map(|o| {
                if o.waits_for_dependents() {
                    Owner::Waiting
                } else {
                    Owner::Solid
                }
            });
        if let Some(state) = known {
            return Ok(state);
        }
        if self.is_absent(&r.uid) {
            return Ok(Owner::Dangling);
        }
        let group = decide::group_of(&r.api_version);
        let kind = self
            .kinds
            .iter()
            .find(|k| k.resource.group == group && k.resource.kind == r.kind)
            .ok_or_else(|| Error::UnknownOwnerKind {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
            })?;
        let api: Api<DynamicObject> = match (kind.namespaced, namespace) {
            (false, _) => Api::all_with(self.client.clone(), &kind.resource),
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            // A cluster-scoped object cannot be owned by a namespaced one.
            (true, None) => return Ok(Owner::Dangling),
        };
        match api.get_metadata(&r.name).await {
            Ok(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let node = Node::of(0, &o.metadata);
                Ok(if node.waits_for_dependents() {
                    Owner::Waiting
                } else {
                    Owner::Solid
                })
            }
            Ok(_) => Ok(self.absent(&r.uid)),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(self.absent(&r.uid)),
            Err(e) => Err(e.into()),
        }
    }

    fn is_absent(&self, uid: &str) -> bool {
        self.absent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(uid)
    }

    fn absent(&self, uid: &str) -> Owner {
        let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        if absent.len() >= ABSENT_OWNERS {
            absent.clear();
        }
        absent.insert(uid.to_string());
        Owner::Dangling
    }

    /// Every object that names `uid` (at `owner`) as an owner, and whether it blocks the
    /// owner's deletion, read from the API rather than the graph: the graph may not have seen
    /// a dependent created just before the owner's deletion, and an owner that lets go
    /// (orphaning, or done waiting) must not miss one. Owners get here once per deletion.
    async fn live_dependents(&self, uid: &str, owner: &Key) -> Result<Vec<(Key, bool)>, Error> {
        let mut found = Vec::new();
        for (id, kind) in self.kinds.iter().enumerate().filter(|(_, k)| k.watched) {
            let api: Api<DynamicObject> = match (&owner.namespace, kind.namespaced) {
                (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
                // A namespaced owner has no cluster-scoped dependents.
                (Some(_), false) => continue,
                (None, _) => Api::all_with(self.client.clone(), &kind.resource),
            };
            for o in api.list_metadata(&ListParams::default()).await?.items {
                let Some(r) = o.owner_references().iter().find(|r| r.uid == uid) else {
                    continue;
                };
                let blocking = r.block_owner_deletion == Some(true);
                found.push((Node::of(id, &o.metadata).key, blocking));
            }
        }
        Ok(found)
    }
}

fn error_policy(obj: Arc<Meta>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, name = %obj.name_any(), "garbage collection failed; retrying");
    match error {
        Error::UnknownOwnerKind { .. } => Action::requeue(Duration::from_secs(60)),
        Error::Api(_) => Action::requeue(Duration::from_secs(2)),
    }
}

/// One level-triggered pass over one object: first as a deleting owner (orphan or wait for
/// its dependents), else as a dependent (is any owner left?).
async fn reconcile(obj: Arc<Meta>, ctx: Arc<Context>) -> Result<Action, Error> {
    let shared = &ctx.shared;
    // Deciding on a half-listed cache could remove a finalizer while dependents remain.
    if !shared.synced() {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let Some(uid) = obj.metadata.uid.clone() else {
        return Ok(Action::await_change());
    };
    let node = Node::of(ctx.kind, &obj.metadata);
    if node.deleting {
        let step = {
            let graph = shared.graph.lock().unwrap_or_else(|e| e.into_inner());
            decide::owner_step(&uid, &node, &graph)
        };
        match step {
            OwnerStep::Orphan => {
                for (dependent, _) in shared.live_dependents(&uid, &node.key).await? {
                    shared
                        .drop_owners(&dependent, std::slice::from_ref(&uid))
                        .await?;
                }
                shared.remove_finalizer(&node.key, ORPHAN).await?;
            }
            OwnerStep::Finish => {
                let live = shared.live_dependents(&uid, &node.key).await?;
                if live.iter().any(|(_, blocking)| *blocking) {
                    // The graph has not seen them yet; it will, and wake this owner.
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                shared.remove_finalizer(&node.key, FOREGROUND).await?;
            }
            // The dependents' deletions wake this owner again.
            OwnerStep::Wait(_) => return Ok(Action::requeue(shared.options.resync)),
            OwnerStep::Nothing => {}
        }
        // Being deleted: its own owners no longer matter.
        return Ok(Action::await_change());
    }
    if node.owners.is_empty() {
        return Ok(Action::await_change());
    }
    let mut owners = Vec::with_capacity(node.owners.len());
    for r in &node.owners {
        owners.push((r, shared.owner(r, node.key.namespace.as_deref()).await?));
    }
    let has_dependents = !shared
        .graph
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .dependents(&uid)
        .is_empty();
    match decide::verdict(&node, &owners, has_dependents) {
        Verdict::Keep => {}
        Verdict::DropOwners(gone) => shared.drop_owners(&node.key, &gone).await?,
        Verdict::Delete(propagation) => {
            let judged = obj.metadata.resource_version.clone();
            if !shared.delete(&node.key, uid, judged, propagation).await? {
                // It changed since it was judged; its new version is judged again.
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            return Ok(Action::await_change());
        }
    }
    Ok(Action::requeue(shared.options.resync))
}
