//! The DaemonSet controller: one pod per eligible node ([`nodes`]: node selector, required
//! affinity, NoSchedule/NoExecute taints against the template's tolerations plus the daemon
//! ones), pinned by a required node affinity on the node's name and bound by the scheduler,
//! as in Kubernetes. It follows nodes joining and leaving, replaces failed pods, rolls a new
//! template node by node (`RollingUpdate`'s `maxUnavailable`) or on deletion (`OnDelete`),
//! keeps ControllerRevisions ([`history`](super::history)) and writes the status
//! `kubectl rollout status` reads. The decisions are pure, in [`plan`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::history::{self, POD_REVISION_LABEL};
use super::informer::Informers;
use super::pods::{self, controller_of};
use super::{ControllerOptions, events, rollout};

pub mod nodes;
pub mod plan;

use super::expectations::Expectations;
use plan::{PodView, Slot};

const COMPONENT: &str = "daemonset-controller";
/// The label holding the DaemonSet generation a pod was made at.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

struct Context {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    expectations: Expectations,
    options: ControllerOptions,
}

/// Runs the DaemonSet controller until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let pods = informers.pods.store();
    let (nodes, node_writer) = reflector::store::<Node>();
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<DaemonSet>>();
    let pod_tx = tx.clone();
    // Pod events wake their DaemonSet; node events wake every DaemonSet.
    let route_pods = informers.pods.follow(move |pod: &Pod| {
        if let Some(owner) = controller_of(&pod.metadata)
            && owner.kind == "DaemonSet"
        {
            let ns = pod.namespace().unwrap_or_default();
            let _ = pod_tx.send(ObjectRef::new(&owner.name).within(&ns));
        }
    });
    let node_api: Api<Node> = Api::all(client.clone());
    let route_nodes = tokio::spawn(async move {
        let events =
            reflector(node_writer, watcher(node_api, watcher::Config::default())).default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            if matches!(
                event,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            ) {
                for set in sets.state() {
                    let _ = tx.send(ObjectRef::from_obj(&*set));
                }
            }
        }
    });
    // Never decide on an empty cache: every node would look podless.
    if super::routing::synced(&pods, &shutdown).await
        && super::routing::synced(&nodes, &shutdown).await
    {
        let ctx = Arc::new(Context {
            client,
            pods,
            nodes,
            expectations: Expectations::default(),
            options,
        });
        super::routing::drive(controller, rx, shutdown, reconcile, error_policy, ctx).await;
    }
    route_pods.abort();
    route_nodes.abort();
}

fn error_policy(_: Arc<DaemonSet>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "daemonset reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// One level-triggered pass over one DaemonSet.
async fn reconcile(set: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    if !ctx.expectations.satisfied(&uid, &ns, &ctx.pods) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let spec = &set.spec;
    let previous = set.status.clone().unwrap_or_default();
    let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut revisions = history::list(&revisions_api, &uid).await?;
    let synced = history::sync(
        &revisions_api,
        &history::Owner {
            api_version: "apps/v1",
            kind: "DaemonSet",
            meta: &set.metadata,
            template: &spec.template,
            collision_count: previous.collision_count.unwrap_or(0),
        },
        &mut revisions,
    )
    .await?;
    let hash = history::hash_of(&synced.update);

    // Every node, and every node name one of our pods is for.
    let pod_spec = nodes::with_daemon_tolerations(spec.template.spec.clone().unwrap_or_default());
    let mut slots: BTreeMap<String, Slot> = ctx
        .nodes
        .state()
        .iter()
        .map(|n| {
            let slot = Slot {
                fit: Some(nodes::fit(&pod_spec, n)),
                pods: Vec::new(),
            };
            (n.name_any(), slot)
        })
        .collect();
    let now = jiff::Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut owned: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns))
        .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    owned.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.name_any(),
        )
    });
    let mut wait: Option<Duration> = None;
    let mut live = HashSet::from([hash.clone()]);
    for p in &owned {
        let available = match pods::is_available(p, min_ready, now) {
            Ok(a) => a,
            Err(left) => {
                let left = Duration::try_from(left).unwrap_or_default() + Duration::from_millis(50);
                wait = Some(wait.map_or(left, |w| w.min(left)));
                false
            }
        };
        let revision = p.labels().get(POD_REVISION_LABEL);
        live.extend(revision.cloned());
        let view = PodView {
            name: p.name_any(),
            terminating: p.metadata.deletion_timestamp.is_some(),
            finished: pods::is_terminal(p),
            updated: revision == Some(&hash),
            ready: pods::is_ready(p),
            available,
        };
        let node = nodes::target_node(p).unwrap_or_default();
        slots.entry(node).or_default().pods.push(view);
    }

    let strategy = spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let desired = i32::try_from(
        slots
            .values()
            .filter(|s| s.fit.is_some_and(|f| f.should_run))
            .count(),
    )
    .unwrap_or(i32::MAX);
    let max_unavailable = (!on_delete).then(|| {
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        ru.and_then(|r| r.max_unavailable.as_ref())
            .map_or(1, |v| rollout::resolve(Some(v), desired, "0%", true))
    });
    let todo = plan::plan(&slots, max_unavailable);

    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut deleted = Vec::new();
    for pod_name in &todo.delete {
        let Some(p) = owned.iter().find(|p| p.name_any() == *pod_name) else {
            continue;
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pod_api.delete(pod_name, &params).await {
            Ok(_) => {
                deleted.push(pod_name.clone());
                let message = format!("Deleted pod: {pod_name}");
                events::emit(
                    &ctx.client,
                    COMPONENT,
                    events::reference(&*set),
                    false,
                    "SuccessfulDelete",
                    message,
                )
                .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                ctx.expectations.expect(&uid, Vec::new(), deleted);
                return Err(e.into());
            }
        }
    }
    ctx.expectations.expect(&uid, Vec::new(), deleted);
    let mut created = Vec::new();
    for node in &todo.create {
        let mut pod = pods::from_template(
            &spec.template,
            &ns,
            &name,
            pods::owner_reference("apps/v1", "DaemonSet", &set.metadata),
        );
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(POD_REVISION_LABEL.into(), hash.clone());
        let generation = set.metadata.generation.unwrap_or(1);
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
        let mut pinned = pod_spec.clone();
        nodes::pin_to_node(&mut pinned, node);
        pod.spec = Some(pinned);
        match pod_api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                let message = format!("Created pod: {}", p.name_any());
                created.push(p.name_any());
                events::emit(
                    &ctx.client,
                    COMPONENT,
                    events::reference(&*set),
                    false,
                    "SuccessfulCreate",
                    message,
                )
                .await;
            }
            Err(e) => {
                let cause = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                };
                let message = format!("Error creating: {cause}");
                events::emit(
                    &ctx.client,
                    COMPONENT,
                    events::reference(&*set),
                    true,
                    "FailedCreate",
                    message,
                )
                .await;
                ctx.expectations.expect(&uid, created, Vec::new());
                return Err(e.into());
            }
        }
    }
    ctx.expectations.expect(&uid, created, Vec::new());

    let limit = spec.revision_history_limit.unwrap_or(10);
    history::cleanup(&revisions_api, &revisions, &live, limit).await?;

    let c = plan::count(&slots);
    let status = json!({
        "desiredNumberScheduled": c.desired,
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "numberReady": c.ready,
        "numberAvailable": c.available,
        "numberUnavailable": c.desired - c.available,
        "updatedNumberScheduled": c.updated,
        "observedGeneration": set.metadata.generation,
        "collisionCount": synced.collision_count,
    });
    let unchanged = serde_json::to_value(&previous).is_ok_and(|old| {
        status
            .as_object()
            .is_some_and(|m| m.iter().all(|(k, v)| old.get(k).unwrap_or(&json!(0)) == v))
    });
    if !unchanged {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(Action::requeue(wait.unwrap_or(ctx.options.resync)))
}
