//! The scheduler: assigns each pod without a node to one, as kube-scheduler does. It is just
//! another API client: it watches Nodes and Pods through kube-rs reflectors and writes a
//! `Binding` through the API (`POST pods/{name}/binding`); there is no back door into the
//! store.
//!
//! Start reading at [`run`] (the loop), then [`schedule_one()`] (one decision: filter, score,
//! pick). The pieces, one concept per file:
//!
//! - [`cache`]: per-node allocatable and what bound (and just-assumed) pods use;
//! - [`podinfo`]: what a decision needs from a Pod (requests, owner, constraints);
//! - [`filters`] and [`score`]: pure functions with Kubernetes' semantics;
//! - [`volumes`]: the VolumeBinding plugin (claims, their volumes' node affinity, the
//!   selected node of `WaitForFirstConsumer` claims);
//! - [`schedule_one`](mod@schedule_one): the decision and kube-scheduler's failure message;
//! - [`queue`]: pending, unschedulable and backing-off pods;
//! - [`binding`] and [`events`]: the API writes (Binding, Events, `PodScheduled=False`).
//!
//! Decisions are sequential against the cache; binds run concurrently (up to
//! [`MAX_BINDS_IN_FLIGHT`]). A decided pod counts on its node at once (assumed), so the next
//! decision sees it even before the watch does.

pub mod binding;
pub mod cache;
pub mod events;
pub mod filters;
pub mod podinfo;
pub mod quantity;
pub mod queue;
pub mod schedule_one;
pub mod score;
pub mod volumes;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use cache::Cache;
pub use schedule_one::{FitError, schedule_one, schedule_with_volumes};

use binding::Bound;
use podinfo::{pod_key, wants_scheduling};
use queue::Queue;

/// How many binds may be in flight at once; decisions wait beyond that.
pub const MAX_BINDS_IN_FLIGHT: usize = 64;
/// How long a pod whose bind failed (other than because it is gone or already bound) waits
/// before it is decided again.
pub const BIND_BACKOFF: Duration = Duration::from_secs(1);

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// How often pods that fit nowhere are retried even when nothing changed (they are also
    /// retried when a node is added or changes, or a bound pod goes away). kube-scheduler's
    /// `podMaxInUnschedulablePodsDuration` is 5 minutes; 60 s by default here.
    pub retry_unschedulable: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            retry_unschedulable: Duration::from_secs(60),
        }
    }
}

/// Runs the scheduler until `shutdown`; in-flight binds are cancelled then.
pub async fn run(client: Client, options: SchedulerOptions, shutdown: CancellationToken) {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let (claims, claim_writer) = reflector::store::<PersistentVolumeClaim>();
    let (volumes, volume_writer) = reflector::store::<PersistentVolume>();
    let (classes, class_writer) = reflector::store::<StorageClass>();
    let config = watcher::Config::default;
    let mut pod_events =
        reflector::reflector(pod_writer, watcher(Api::all(client.clone()), config()))
            .default_backoff()
            .boxed();
    let mut node_events =
        reflector::reflector(node_writer, watcher(Api::all(client.clone()), config()))
            .default_backoff()
            .boxed();
    // Claims, volumes and classes only need mirroring; any change may let a parked pod fit.
    let mut storage_events = futures::stream::select_all([
        storage_stream(reflector::reflector(
            claim_writer,
            watcher(Api::all(client.clone()), config()),
        )),
        storage_stream(reflector::reflector(
            volume_writer,
            watcher(Api::all(client.clone()), config()),
        )),
        storage_stream(reflector::reflector(
            class_writer,
            watcher(Api::all(client.clone()), config()),
        )),
    ]);
    let mut s = Scheduler {
        client,
        pods,
        storage: volumes::Storage {
            claims,
            volumes,
            classes,
            nodes: nodes.clone(),
        },
        nodes,
        cache: Cache::new(),
        queue: Queue::default(),
        reported: HashMap::new(),
        binds: JoinSet::new(),
        writes: JoinSet::new(),
        pods_synced: false,
        nodes_synced: false,
        storage_synced: 0,
    };
    let period = options.retry_unschedulable.max(Duration::from_millis(10));
    let mut retry = tokio::time::interval_at(Instant::now() + period, period);
    retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let backoff = s.queue.next_backoff();
        // Biased: apply every waiting watch event before the next decision, so decisions
        // see the newest cache.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(event) = pod_events.next() => s.on_pod_event(event),
            Some(event) = node_events.next() => s.on_node_event(event),
            Some(event) = storage_events.next() => s.on_storage_event(event),
            Some(done) = s.binds.join_next() => s.on_bound(done),
            Some(_) = s.writes.join_next() => {}
            _ = retry.tick() => s.queue.retry_unschedulable(),
            () = tokio::time::sleep_until(backoff.unwrap_or_else(Instant::now)), if backoff.is_some() => {
                s.queue.release_backoff(Instant::now());
            }
            () = std::future::ready(()), if s.can_schedule() => s.schedule_next(),
        }
    }
    s.binds.shutdown().await;
    s.writes.shutdown().await;
}

/// The loop's state; one owner, no locks.
struct Scheduler {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    storage: volumes::Storage,
    cache: Cache,
    queue: Queue,
    /// The last unschedulable message written for each pod, so each is written once.
    reported: HashMap<String, String>,
    binds: JoinSet<Bound>,
    /// Events and status patches for unschedulable pods.
    writes: JoinSet<()>,
    pods_synced: bool,
    nodes_synced: bool,
    /// How many of the three storage reflectors have listed everything.
    storage_synced: usize,
}

/// What a storage reflector's event means to the scheduler.
enum StorageEvent {
    /// An object changed.
    Changed,
    /// The first full list is in.
    Listed,
    /// Nothing for the scheduler.
    Quiet,
}

/// One storage reflector's events, as [`StorageEvent`]s.
fn storage_stream<K, S>(events: S) -> futures::stream::BoxStream<'static, StorageEvent>
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    events
        .default_backoff()
        .map(|e| match e {
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => StorageEvent::Changed,
            Ok(watcher::Event::InitDone) => StorageEvent::Listed,
            Ok(_) => StorageEvent::Quiet,
            Err(e) => {
                tracing::warn!(error = %e, "watching storage objects failed; retrying");
                StorageEvent::Quiet
            }
        })
        .boxed()
}

impl Scheduler {
    fn can_schedule(&self) -> bool {
        self.pods_synced
            && self.nodes_synced
            && self.storage_synced >= 3
            && self.queue.has_active()
            && self.binds.len() < MAX_BINDS_IN_FLIGHT
    }

    fn on_pod_event(&mut self, event: Result<watcher::Event<Pod>, watcher::Error>) {
        match event {
            Ok(watcher::Event::Apply(pod)) => self.pod_changed(&pod),
            Ok(watcher::Event::Delete(pod)) => {
                let key = pod_key(&pod);
                if self.cache.remove_pod(&pod) {
                    self.queue.retry_unschedulable();
                }
                self.queue.forget(&key);
                self.reported.remove(&key);
            }
            Ok(watcher::Event::InitDone) => {
                self.pods_synced = true;
                self.resync();
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(e) => tracing::warn!(error = %e, "watching pods failed; retrying"),
        }
    }

    fn on_node_event(&mut self, event: Result<watcher::Event<Node>, watcher::Error>) {
        match event {
            Ok(watcher::Event::Apply(node)) => {
                if self.cache.set_node(&node) {
                    self.queue.retry_unschedulable();
                }
            }
            Ok(watcher::Event::Delete(node)) => self.cache.remove_node(&node.name_any()),
            Ok(watcher::Event::InitDone) => {
                self.nodes_synced = true;
                self.resync();
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Err(e) => tracing::warn!(error = %e, "watching nodes failed; retrying"),
        }
    }

    fn on_storage_event(&mut self, event: StorageEvent) {
        match event {
            // A claim bound, a volume made or a class added may let parked pods fit.
            StorageEvent::Changed => self.queue.retry_unschedulable(),
            StorageEvent::Listed => self.storage_synced += 1,
            StorageEvent::Quiet => {}
        }
    }

    /// A pod was added or changed: count it if bound, queue it if it waits for a node.
    fn pod_changed(&mut self, pod: &Pod) {
        let key = pod_key(pod);
        // Resources freed (a pod finished, or moved) may let parked pods fit. A pod
        // being bound only takes room, so it retries nothing: with many parked pods, a
        // retry per bind would cost parked x binds decisions.
        if self.cache.update_pod(pod) {
            self.queue.retry_unschedulable();
        }
        if wants_scheduling(pod) {
            if !self.cache.is_assumed(&key) {
                self.queue.add(key);
            }
        } else {
            self.queue.forget(&key);
            self.reported.remove(&key);
        }
    }

    /// After a (re)list of pods or nodes: rebuild the cache from both stores and queue
    /// every pending pod.
    fn resync(&mut self) {
        if !(self.pods_synced && self.nodes_synced) {
            return;
        }
        let pods = self.pods.state();
        self.cache.rebuild(&self.nodes.state(), &pods);
        for pod in pods.iter().filter(|p| wants_scheduling(p)) {
            let key = pod_key(pod);
            if !self.cache.is_assumed(&key) {
                self.queue.add(key);
            }
        }
        self.queue.retry_unschedulable();
    }

    /// Decides the next queued pod: assume and bind it, or report why it fits nowhere.
    fn schedule_next(&mut self) {
        let Some(key) = self.queue.pop() else {
            return;
        };
        let Some((ns, name)) = key.split_once('/') else {
            return;
        };
        let Some(pod) = self.pods.get(&ObjectRef::new(name).within(ns)) else {
            return;
        };
        if !wants_scheduling(&pod) || self.cache.is_assumed(&key) {
            return;
        }
        let volumes = volumes::prefilter(&pod, &self.storage);
        let decision = volumes.map_err(|message| FitError::PreFilter {
            nodes: self.cache.nodes().len(),
            message,
        });
        match decision.and_then(|v| Ok((schedule_with_volumes(&pod, &self.cache, &v)?, v))) {
            Ok((node, volumes)) => {
                self.cache.assume(&pod, &node);
                self.reported.remove(&key);
                let client = self.client.clone();
                let claims = volumes.to_select(&node);
                self.binds.spawn(async move {
                    // PreBind: the claims waiting for a first consumer learn its node.
                    let ns = pod.metadata.namespace.clone().unwrap_or_default();
                    if let Err(e) = volumes::pre_bind(&client, &ns, &claims, &node).await {
                        return Bound {
                            key: pod_key(&pod),
                            node,
                            result: Err(e),
                            pre_bind: true,
                        };
                    }
                    binding::bind(client, pod, node).await
                });
            }
            Err(fit) => {
                crate::telemetry::METRICS.schedule_attempt("unschedulable");
                let message = fit.to_string();
                tracing::debug!(pod = %key, %message, "unschedulable");
                self.queue.park(key.clone());
                if self.reported.get(&key) != Some(&message) {
                    self.reported.insert(key, message.clone());
                    let client = self.client.clone();
                    self.writes.spawn(async move {
                        events::unschedulable(&client, &pod, message).await;
                    });
                }
            }
        }
    }

    fn on_bound(&mut self, done: Result<Bound, tokio::task::JoinError>) {
        let bound = match done {
            Ok(bound) => bound,
            Err(e) => {
                tracing::warn!(error = %e, "a bind task failed");
                return;
            }
        };
        match bound.result {
            Ok(()) => {
                crate::telemetry::METRICS.schedule_attempt("scheduled");
                self.cache.finish_binding(&bound.key)
            }
            Err(e) => {
                crate::telemetry::METRICS.schedule_attempt("error");
                self.cache.forget(&bound.key);
                match &e {
                    // Gone, being deleted or bound by someone else: the watch will say.
                    kube::Error::Api(status)
                        if matches!(status.code, 404 | 409) && !bound.pre_bind => {}
                    _ => {
                        tracing::warn!(pod = %bound.key, node = %bound.node, error = %e, "binding failed; retrying");
                        self.queue.backoff(bound.key, Instant::now() + BIND_BACKOFF);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
