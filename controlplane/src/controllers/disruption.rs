//! The disruption controller: keeps every PodDisruptionBudget's status (policy/v1) current, so
//! the eviction subresource can tell whether one more pod may go.
//!
//! For each budget it counts the selected pods that are Ready and not terminating
//! (`currentHealthy`), works out how many must stay (`desiredHealthy`, from `minAvailable` or
//! `maxUnavailable` against `expectedPods`) and writes `disruptionsAllowed`, the
//! `DisruptionAllowed` condition and `observedGeneration`. Evictions record the pods they took
//! in `disruptedPods`; such a pod does not count as healthy until it shows its deletion or two
//! minutes pass. The arithmetic is in `budget.rs`.
//!
//! Level-triggered: a budget is reconciled when it changes, when any pod or workload of its
//! namespace changes, when a recorded eviction expires and every `resync`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use super::informer::Informers;
use super::pods::controller_of;
use super::{ControllerOptions, events};

mod budget;

/// The component the controller's Events come from.
const COMPONENT: &str = "controllermanager";

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

/// The caches every reconcile reads.
struct Context {
    client: Client,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    controllers: Store<ReplicationController>,
    stateful_sets: Store<StatefulSet>,
    options: ControllerOptions,
}

/// Runs until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let budgets = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let pods = informers.pods.store();
    let (replica_sets, rs_writer) = reflector::store();
    let (deployments, deploy_writer) = reflector::store();
    let (controllers, rc_writer) = reflector::store();
    let (stateful_sets, sts_writer) = reflector::store();
    let wake = Wake {
        budgets: budgets.store(),
        tx,
    };
    let pod_wake = Wake {
        budgets: wake.budgets.clone(),
        tx: wake.tx.clone(),
    };
    let pod_follower = informers
        .pods
        .follow(move |pod: &Pod| pod_wake.namespace(pod.namespace()));
    let followers = futures::future::join4(
        follow::<ReplicaSet>(&client, rs_writer, &wake),
        follow::<Deployment>(&client, deploy_writer, &wake),
        follow::<ReplicationController>(&client, rc_writer, &wake),
        follow::<StatefulSet>(&client, sts_writer, &wake),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        replica_sets,
        deployments,
        controllers,
        stateful_sets,
        options,
    });
    let controller = async {
        // Never decide on an empty cache: every budget would look unhealthy for a moment.
        let ready = futures::future::try_join5(
            ctx.pods.wait_until_ready(),
            ctx.replica_sets.wait_until_ready(),
            ctx.deployments.wait_until_ready(),
            ctx.controllers.wait_until_ready(),
            ctx.stateful_sets.wait_until_ready(),
        );
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = ready => if r.is_err() { return },
        }
        budgets
            .reconcile_on(UnboundedReceiverStream::new(rx))
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| futures::future::ready(()))
            .await;
    };
    tokio::select! {
        () = controller => {}
        _ = followers => {}
    }
    pod_follower.abort();
}

/// Where pod and workload changes are routed: every budget of their namespace.
struct Wake {
    budgets: Store<PodDisruptionBudget>,
    tx: mpsc::UnboundedSender<ObjectRef<PodDisruptionBudget>>,
}

/// Mirrors every `K` into `writer` and wakes the budgets of the namespace each change is in
/// (a pod's labels or readiness, a workload's replicas: either may change a budget).
async fn follow<K>(client: &Client, writer: reflector::store::Writer<K>, wake: &Wake)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let events = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    futures::pin_mut!(events);
    while let Some(object) = events.next().await {
        let Ok(object) = object else { continue };
        wake.namespace(object.namespace());
    }
}

impl Wake {
    /// Wakes every budget of `namespace`.
    fn namespace(&self, namespace: Option<String>) {
        for b in self.budgets.state() {
            if b.namespace() == namespace {
                let _ = self.tx.send(ObjectRef::from_obj(&*b));
            }
        }
    }
}

fn error_policy(_: Arc<PodDisruptionBudget>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "disruption budget reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// One level-triggered pass over one budget.
async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = Timestamp::now();
    let state = ctx.pods.state();
    let selected: Vec<&Pod> = state
        .iter()
        .map(|p| &**p)
        .filter(|p| budget::selects(&pdb, p))
        .collect();
    let mut recheck = None;
    let status = match budget::expected_and_desired(&pdb, selected.len(), || {
        expected_scale(&ctx, &selected)
    }) {
        Ok((expected, desired)) => {
            let recorded = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
            let (evicted, expires) = budget::pending_evictions(&selected, recorded, now);
            recheck = expires;
            let healthy = budget::healthy(&selected, &evicted);
            budget::status(
                &pdb,
                budget::Found {
                    expected,
                    desired,
                    healthy,
                    evicted,
                },
                now,
            )
        }
        Err(message) => budget::failed(&pdb, &message, now),
    };
    let current = pdb.status.clone().unwrap_or_default();
    if !budget::same(&current, &status) {
        let failed = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.reason == "SyncFailed")
            .map(|c| c.message.clone());
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> =
            Api::namespaced(ctx.client.clone(), &pdb.namespace().unwrap_or_default());
        api.replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await?;
        let regarding = events::reference(&*pdb);
        if let Some(message) = failed {
            let message = format!("Failed to calculate the number of expected pods: {message}");
            events::emit(
                &ctx.client,
                COMPONENT,
                regarding,
                true,
                "CalculateExpectedPodCountFailed",
                message,
            )
            .await;
        } else if selected.is_empty() {
            events::emit(
                &ctx.client,
                COMPONENT,
                regarding,
                false,
                "NoPods",
                "No matching pods found",
            )
            .await;
        }
    }
    let resync = ctx.options.resync;
    Ok(Action::requeue(match recheck {
        Some(at) => Duration::try_from(at.duration_since(now))
            .unwrap_or_default()
            .min(resync),
        None => resync,
    }))
}

/// How many pods the selected pods' controllers ask for in all (each controller counted once):
/// a ReplicaSet's replicas, or its Deployment's when a Deployment runs it; a
/// ReplicationController's; a StatefulSet's. Pods without a controller are not expected.
fn expected_scale(ctx: &Context, pods: &[&Pod]) -> Result<i32, String> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            continue;
        };
        let namespace = pod.namespace().unwrap_or_default();
        let (top, scale) = scale_of(ctx, &owner.kind, &owner.name, &owner.uid, &namespace)
            .ok_or_else(|| {
                format!(
                    "found no controllers for pod {:?}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                )
            })?;
        scales.insert(top, scale);
    }
    Ok(scales.values().fold(0, |sum, s| sum.saturating_add(*s)))
}

/// The uid and `spec.replicas` of the controller that decides how many pods `kind/name`
/// (uid `uid`) runs, from the caches.
fn scale_of(ctx: &Context, kind: &str, name: &str, uid: &str, ns: &str) -> Option<(String, i32)> {
    fn cached<K: Resource<DynamicType = ()> + Clone>(
        store: &Store<K>,
        name: &str,
        uid: &str,
        ns: &str,
    ) -> Option<Arc<K>> {
        store
            .get(&ObjectRef::new(name).within(ns))
            .filter(|o| o.meta().uid.as_deref() == Some(uid))
    }
    match kind {
        "ReplicaSet" => {
            let rs = cached(&ctx.replica_sets, name, uid, ns)?;
            if let Some(owner) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                return scale_of(ctx, "Deployment", &owner.name, &owner.uid, ns);
            }
            Some((uid.into(), rs.spec.replicas.unwrap_or(1)))
        }
        "Deployment" => {
            let d = cached(&ctx.deployments, name, uid, ns)?;
            Some((uid.into(), d.spec.replicas.unwrap_or(1)))
        }
        "ReplicationController" => {
            let rc = cached(&ctx.controllers, name, uid, ns)?;
            Some((uid.into(), rc.spec.as_ref()?.replicas.unwrap_or(1)))
        }
        "StatefulSet" => {
            let sts = cached(&ctx.stateful_sets, name, uid, ns)?;
            Some((uid.into(), sts.spec.replicas.unwrap_or(1)))
        }
        _ => None,
    }
}
