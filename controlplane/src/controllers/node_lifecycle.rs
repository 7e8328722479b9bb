//! The node lifecycle controller: notices nodes that stopped sending heartbeats, taints nodes
//! by their conditions, and evicts pods from nodes tainted `NoExecute` (kube-controller-manager's
//! node lifecycle controller and taint eviction controller in one).
//!
//! Each node is reconciled every `node_monitor_period`, and when it, its Lease or (on a node
//! that is down or tainted) one of its pods changes:
//! - its heartbeat is the newer of its `kube-node-lease` Lease's `renewTime` and its Ready
//!   condition's `lastHeartbeatTime`; older than `node_monitor_grace_period`, Ready and the
//!   pressure conditions become `Unknown` (`NodeStatusUnknown`), a `NodeNotReady` Event is
//!   written and the node's pods are marked not Ready;
//! - its taints follow its conditions (`health.rs`): `unreachable` for
//!   `Ready=Unknown`, `not-ready` for `Ready=False` (both `NoSchedule` and `NoExecute`, with
//!   `timeAdded`), the pressure and `unschedulable` `NoSchedule` taints; they go when the
//!   condition does. When no node at all is ready, no `NoExecute` taint is set (Kubernetes'
//!   "master disruption" mode: the fault is more likely the control plane's view than every
//!   node at once);
//! - a pod on a node with `NoExecute` taints that it does not tolerate is deleted at once, one
//!   that tolerates them with `tolerationSeconds` once that has passed (`eviction.rs`), with a
//!   `TaintManagerEviction` Event and a `DisruptionTarget` condition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use self::eviction::Eviction;
use super::informer::Informers;
use super::{ControllerOptions, events, pods as pod_state};
use crate::registry::meta::now as now_text;

mod eviction;
mod health;

/// The component of the node Events.
const COMPONENT: &str = "node-controller";
/// The component of the eviction Events.
const EVICTION_COMPONENT: &str = "taint-eviction-controller";
/// Where node Leases live.
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

/// A `NoExecute` taint on a node: node name, taint key, taint value.
type TaintOnNode = (String, String, Option<String>);

/// What every reconcile shares.
struct Context {
    client: Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    options: ControllerOptions,
    /// Whether each node was Ready when last seen, for the `NodeNotReady` Event.
    was_ready: Mutex<HashMap<String, bool>>,
    /// When `NoExecute` taints without `timeAdded` were first seen, by node, key and value.
    first_seen: Mutex<HashMap<TaintOnNode, Timestamp>>,
}

/// Runs until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let nodes = controller.store();
    let (tx, rx) = mpsc::unbounded_channel::<ObjectRef<Node>>();
    let (leases, lease_writer) = reflector::store::<Lease>();
    let pods = informers.pods.store();

    // A Lease renewal is a heartbeat: its node is looked at again.
    let lease_tx = tx.clone();
    let lease_events = reflector::reflector(
        lease_writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects()
    .for_each(move |lease| {
        if let Ok(lease) = lease {
            let _ = lease_tx.send(ObjectRef::new(&lease.name_any()));
        }
        futures::future::ready(())
    });
    // A pod on a node that is down or tainted may need marking or evicting.
    let pod_nodes = nodes.clone();
    let pod_events = informers.pods.follow(move |pod: &Pod| {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && pod_nodes
                .get(&ObjectRef::new(node))
                .is_some_and(|n| needs_watching(&n))
        {
            let _ = tx.send(ObjectRef::new(node));
        }
    });
    let ctx = Arc::new(Context {
        client,
        nodes,
        leases,
        pods,
        options,
        was_ready: Mutex::default(),
        first_seen: Mutex::default(),
    });
    let monitor = async {
        // A node looks silent until its Lease is known.
        let ready =
            futures::future::try_join(ctx.leases.wait_until_ready(), ctx.pods.wait_until_ready());
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = ready => if r.is_err() { return },
        }
        controller
            .reconcile_on(UnboundedReceiverStream::new(rx))
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| futures::future::ready(()))
            .await;
    };
    tokio::select! {
        () = monitor => {}
        () = lease_events => {}
    }
    pod_events.abort();
}

/// Whether a node's pods' changes matter to it: it is not ready or has `NoExecute` taints.
fn needs_watching(node: &Node) -> bool {
    health::ready(node) != Some("True")
        || node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| t.effect == "NoExecute"))
}

fn error_policy(_: Arc<Node>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "node lifecycle reconcile failed; retrying");
    Action::requeue(ctx.options.node_monitor_period.min(Duration::from_secs(2)))
}

fn grace(ctx: &Context) -> SignedDuration {
    SignedDuration::try_from(ctx.options.node_monitor_grace_period).unwrap_or(SignedDuration::MAX)
}

/// One level-triggered pass over one node: conditions, Events, pods' readiness, taints, then
/// evictions. Requeued every `node_monitor_period`, or sooner for a pending eviction.
async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = Timestamp::now();
    let name = node.name_any();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let before = health::ready(&node) == Some("True");
    let mut node = (*node).clone();
    if let Some(conditions) = health::silent_conditions(&node, lease.as_deref(), now, grace(&ctx)) {
        tracing::info!(node = %name, "node stopped posting status; marking it Unknown");
        let patch = json!({"metadata": {"resourceVersion": node.resource_version()},
            "status": {"conditions": conditions}});
        node = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let ready = health::ready(&node) == Some("True");
    let was_ready = {
        let mut was_ready = ctx.was_ready.lock().unwrap_or_else(|e| e.into_inner());
        // Forget deleted nodes (a new node of the same name starts afresh).
        was_ready.retain(|n, _| ctx.nodes.get(&ObjectRef::new(n)).is_some());
        was_ready.insert(name.clone(), ready).unwrap_or(before)
    };
    let on_node: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
        .collect();
    if was_ready && !ready {
        let message = format!("Node {name} status is now: NodeNotReady");
        events::emit(
            &ctx.client,
            COMPONENT,
            events::reference(&node),
            false,
            "NodeNotReady",
            message,
        )
        .await;
    }
    if !ready {
        mark_pods_not_ready(&ctx, &on_node).await?;
    }
    let wanted = health::wanted_taints(&node, now, !all_nodes_down(&ctx, now));
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if !health::same_taints(&current, &wanted) {
        let taints = if wanted.is_empty() {
            json!(null)
        } else {
            json!(wanted)
        };
        let patch = json!({"metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints}});
        node = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let next = evict_pods(&ctx, &node, &on_node, now).await?;
    let period = ctx.options.node_monitor_period;
    let wait = next.map_or(period, |at| {
        Duration::try_from(at.duration_since(now))
            .unwrap_or_default()
            .min(period)
    });
    Ok(Action::requeue(wait))
}

/// Whether no node is ready now (its Ready condition, or its heartbeat, says so).
fn all_nodes_down(ctx: &Context, now: Timestamp) -> bool {
    let nodes = ctx.nodes.state();
    !nodes.is_empty()
        && nodes.iter().all(|n| {
            let lease = ctx
                .leases
                .get(&ObjectRef::new(&n.name_any()).within(LEASE_NAMESPACE));
            health::ready(n) != Some("True")
                || health::silent_conditions(n, lease.as_deref(), now, grace(ctx)).is_some()
        })
}

/// Sets `Ready=False` on the Ready pods of a node that is not ready (kube-controller-manager's
/// `MarkPodsNotReady`), with a `NodeNotReady` Event on each.
async fn mark_pods_not_ready(ctx: &Context, pods: &[Arc<Pod>]) -> Result<(), Error> {
    for pod in pods.iter().filter(|p| pod_state::is_ready(p)) {
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now_text()}]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
        events::emit(
            &ctx.client,
            COMPONENT,
            events::reference(&**pod),
            true,
            "NodeNotReady",
            "Node is not ready",
        )
        .await;
    }
    Ok(())
}

/// Deletes the pods whose tolerations of the node's `NoExecute` taints ran out; returns when
/// the next one will.
async fn evict_pods(
    ctx: &Context,
    node: &Node,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let name = node.name_any();
    let no_execute: Vec<_> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoExecute")
        .collect();
    let added: Vec<Timestamp> = {
        let mut first_seen = ctx.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        first_seen.retain(|(n, key, value), _| {
            if *n == name {
                no_execute
                    .iter()
                    .any(|t| &t.key == key && &t.value == value)
            } else {
                ctx.nodes.get(&ObjectRef::new(n)).is_some()
            }
        });
        no_execute
            .iter()
            .map(|t| match &t.time_added {
                Some(at) => at.0,
                None => *first_seen
                    .entry((name.clone(), t.key.clone(), t.value.clone()))
                    .or_insert(now),
            })
            .collect()
    };
    let mut next: Option<Timestamp> = None;
    if no_execute.is_empty() {
        return Ok(next);
    }
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let since = eviction::on_node_since(pod);
        let taints: Vec<_> = no_execute
            .iter()
            .zip(&added)
            .map(|(t, at)| (*t, since.map_or(*at, |s| s.max(*at))))
            .collect();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        match eviction::eviction(&taints, &tolerations, now) {
            Eviction::Never => {}
            Eviction::At(at) => next = Some(next.map_or(at, |n| n.min(at))),
            Eviction::Now => evict(ctx, pod).await?,
        }
    }
    Ok(next)
}

/// Deletes one pod (a normal graceful delete: it shows Terminating, its controller replaces
/// it), saying why.
async fn evict(ctx: &Context, pod: &Pod) -> Result<(), Error> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    tracing::info!(pod = %format!("{namespace}/{name}"), "evicting a pod from a NoExecute-tainted node");
    let message = format!("Marking for deletion Pod {namespace}/{name}");
    events::emit(
        &ctx.client,
        EVICTION_COMPONENT,
        events::reference(pod),
        false,
        "TaintManagerEviction",
        message,
    )
    .await;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let condition = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
        "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": now_text()}]}});
    if let Err(e) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(condition))
        .await
    {
        tracing::debug!(error = %e, "marking the pod as a disruption target failed");
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
