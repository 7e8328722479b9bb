//! The ReplicaSet controller, which also runs ReplicationControllers (the notes' name for
//! it; one code path through [`Replicated`]): keeps `spec.replicas` active pods matching the
//! selector, adopts matching orphans, releases pods that stopped matching, deletes surplus
//! pods in Kubernetes' order ([`pods::deletion_order`]) and writes the status.
//!
//! One pod reflector feeds both controllers: each pod event is routed to its controller
//! owner, or to every selecting owner for an orphan. Creates and deletes are remembered
//! ([`Expectations`]) until the reflector has seen them, so a reconcile on a cache that
//! lags its own writes never creates twice, as kube-controller-manager's expectations do.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::events;
use super::expectations::Expectations;
use super::informer::Informers;
use super::pods::{self, controller_of};
use super::{ControllerOptions, selector};

/// Most pods created or deleted in one pass (kube-controller-manager's `burstReplicas`).
const BURST: usize = 500;

/// What the controller needs of a ReplicaSet or a ReplicationController.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The component its Events come from.
    const COMPONENT: &'static str;
    /// `spec.replicas` (default 1).
    fn desired(&self) -> i32;
    /// The selector (a ReplicationController's map, or its template's labels).
    fn selector(&self) -> LabelSelector;
    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// The current status, as JSON.
    fn status_json(&self) -> Value;
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn desired(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn selector(&self) -> LabelSelector {
        self.spec.selector.clone()
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.min_ready_seconds.unwrap_or(0)
    }
    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    fn desired(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> LabelSelector {
        let spec = self.spec.as_ref();
        match spec
            .and_then(|s| s.selector.as_ref())
            .filter(|m| !m.is_empty())
        {
            Some(map) => selector::from_map(map),
            None => selector::from_map(
                &spec
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default(),
            ),
        }
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_json(&self) -> Value {
        serde_json::to_value(&self.status).unwrap_or(Value::Null)
    }
}

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    pods: Store<Pod>,
    expectations: Expectations,
    options: ControllerOptions,
}

/// Runs the ReplicaSet and ReplicationController controllers until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let pods = informers.pods.store();
    let rs = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let rc = Controller::new(
        Api::<ReplicationController>::all(client.clone()),
        watcher::Config::default(),
    );
    let (rs_store, rc_store) = (rs.store(), rc.store());
    let (rs_tx, rs_rx) = mpsc::unbounded_channel::<ObjectRef<ReplicaSet>>();
    let (rc_tx, rc_rx) = mpsc::unbounded_channel::<ObjectRef<ReplicationController>>();

    // Every pod event wakes the owners it concerns.
    let route = informers.pods.follow(move |pod: &Pod| {
        let ns = pod.namespace().unwrap_or_default();
        match controller_of(&pod.metadata) {
            Some(owner) if owner.kind == "ReplicaSet" => {
                let _ = rs_tx.send(ObjectRef::new(&owner.name).within(&ns));
            }
            Some(owner) if owner.kind == "ReplicationController" => {
                let _ = rc_tx.send(ObjectRef::new(&owner.name).within(&ns));
            }
            Some(_) => {}
            None => {
                let labels = pod.labels();
                for r in rs_store.state() {
                    if r.namespace().as_deref() == Some(&ns) && selects(&r.selector(), labels) {
                        let _ = rs_tx.send(ObjectRef::from_obj(&*r));
                    }
                }
                for r in rc_store.state() {
                    if r.namespace().as_deref() == Some(&ns) && selects(&r.selector(), labels) {
                        let _ = rc_tx.send(ObjectRef::from_obj(&*r));
                    }
                }
            }
        }
    });
    if !super::routing::synced(&pods, &shutdown).await {
        route.abort();
        return;
    }
    let ctx = Arc::new(Context {
        client,
        pods,
        expectations: Expectations::default(),
        options,
    });
    let rs = rs
        .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(rs_rx))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            reconcile::<ReplicaSet>,
            error_policy::<ReplicaSet>,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));
    let rc = rc
        .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(rc_rx))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            reconcile::<ReplicationController>,
            error_policy::<ReplicationController>,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    futures::join!(rs, rc);
    route.abort();
}

/// A selector that selects something and matches `labels`.
fn selects(sel: &LabelSelector, labels: &std::collections::BTreeMap<String, String>) -> bool {
    !selector::is_empty(sel) && selector::matches(sel, labels)
}

fn error_policy<K: Replicated>(_: Arc<K>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, kind = %K::kind(&()), "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// One level-triggered pass over one owner.
pub async fn reconcile<K: Replicated>(owner: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    if owner.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = owner.namespace().unwrap_or_default();
    let name = owner.name_any();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    if !ctx.expectations.satisfied(&uid, &ns, &ctx.pods) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let sel = owner.selector();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(&ns) {
            continue;
        }
        let matching = selects(&sel, pod.labels());
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matching {
                    owned.push(pod);
                } else {
                    release(&pod_api, &pod, &uid).await?;
                }
            }
            // An orphan that matches is adopted (never a finished or deleted one).
            None if matching && pods::is_active(&pod) => {
                adopt::<K>(&pod_api, &pod, &owner).await?;
                owned.push(pod);
            }
            _ => {}
        }
    }

    let mut active: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pods::is_active(p))
        .collect();
    let desired = usize::try_from(owner.desired().max(0)).unwrap_or(0);
    let mut failure = None;
    if active.len() < desired {
        let missing = (desired - active.len()).min(BURST);
        match create_pods::<K>(&ctx, &owner, &ns, missing).await {
            Ok(names) => ctx.expectations.expect(&uid, names, Vec::new()),
            Err((names, e)) => {
                ctx.expectations.expect(&uid, names, Vec::new());
                failure = Some(e);
            }
        }
    } else if active.len() > desired {
        active.sort_by(|a, b| pods::deletion_order(a, b));
        let surplus: Vec<String> = active
            .iter()
            .take((active.len() - desired).min(BURST))
            .map(|p| p.name_any())
            .collect();
        let mut deleted = Vec::new();
        for pod in &surplus {
            match pod_api.delete(pod, &DeleteParams::default()).await {
                Ok(_) => {
                    events::emit(
                        &ctx.client,
                        K::COMPONENT,
                        events::reference(&*owner),
                        false,
                        "SuccessfulDelete",
                        format!("Deleted pod: {pod}"),
                    )
                    .await;
                    deleted.push(pod.clone());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    ctx.expectations.expect(&uid, Vec::new(), deleted);
                    return Err(e.into());
                }
            }
        }
        ctx.expectations.expect(&uid, Vec::new(), deleted);
    }

    let (status, wait) = status_of::<K>(&owner, &owned, failure.as_deref());
    if let Some(status) = status {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(match wait {
        Some(wait) => Action::requeue(wait),
        None => Action::requeue(ctx.options.resync),
    })
}

/// The owner's status from its pods if it differs from the stored one, and how long until a
/// ready pod becomes available.
fn status_of<K: Replicated>(
    owner: &K,
    owned: &[Arc<Pod>],
    failure: Option<&str>,
) -> (Option<Value>, Option<Duration>) {
    let now = jiff::Timestamp::now();
    let template_labels = owner
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| &**p)
        .filter(|p| pods::is_active(p))
        .collect();
    let fully_labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| pods::is_ready(p)).count();
    let mut available = 0;
    let mut wait: Option<Duration> = None;
    for pod in &active {
        match pods::is_available(pod, owner.min_ready_seconds(), now) {
            Ok(true) => available += 1,
            Ok(false) => {}
            Err(left) => {
                let left = Duration::try_from(left).unwrap_or_default() + Duration::from_millis(50);
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
        }
    }
    let previous = owner.status_json();
    let conditions = match failure {
        Some(message) => {
            let kept = previous["conditions"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "ReplicaFailure" && c["message"] == message)
                    .cloned()
            });
            json!([kept.unwrap_or_else(|| json!({
                "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": message,
                "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }))])
        }
        None => Value::Null,
    };
    let status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": owner.meta().generation.unwrap_or(0),
        "conditions": conditions,
    });
    let changed = comparable(&status) != comparable(&previous);
    (changed.then_some(status), wait)
}

/// A status reduced to what matters for "did it change": counts (absent is 0) and the
/// conditions' type, status, reason and message.
fn comparable(status: &Value) -> Value {
    let count = |k: &str| status[k].as_i64().unwrap_or(0);
    let conditions: Vec<Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["type"], c["status"], c["reason"], c["message"]]))
        .collect();
    json!([
        count("replicas"),
        count("fullyLabeledReplicas"),
        count("readyReplicas"),
        count("availableReplicas"),
        count("observedGeneration"),
        conditions
    ])
}

/// Creates `count` pods from the owner's template, in batches doubling from 1 (slow start:
/// a template that cannot work fails once, not `count` times). Returns the names created,
/// or those and the first error.
async fn create_pods<K: Replicated>(
    ctx: &Context,
    owner: &K,
    ns: &str,
    count: usize,
) -> Result<Vec<String>, (Vec<String>, String)> {
    let Some(template) = owner.template() else {
        return Err((Vec::new(), "the spec has no pod template".into()));
    };
    let reference = pods::owner_reference(&K::api_version(&()), &K::kind(&()), owner.meta());
    let pod = pods::from_template(template, ns, &owner.name_any(), reference);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = PostParams::default();
    let mut created = Vec::new();
    let mut batch = 1;
    while created.len() < count {
        let n = batch.min(count - created.len());
        let results = futures::future::join_all((0..n).map(|_| api.create(&params, &pod))).await;
        let mut error = None;
        for result in results {
            match result {
                Ok(p) => {
                    let name = p.name_any();
                    events::emit(
                        &ctx.client,
                        K::COMPONENT,
                        events::reference(owner),
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    )
                    .await;
                    created.push(name);
                }
                Err(e) => {
                    let message = match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        other => other.to_string(),
                    };
                    error.get_or_insert(message);
                }
            }
        }
        if let Some(message) = error {
            events::emit(
                &ctx.client,
                K::COMPONENT,
                events::reference(owner),
                true,
                "FailedCreate",
                format!("Error creating: {message}"),
            )
            .await;
            return Err((created, message));
        }
        batch *= 2;
    }
    Ok(created)
}

/// Makes `owner` the controller of an orphan pod (with its uid as a precondition through the
/// pod's resourceVersion, so a pod that changed meanwhile is reconsidered).
async fn adopt<K: Replicated>(api: &Api<Pod>, pod: &Pod, owner: &K) -> Result<(), Error> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(pods::owner_reference(
        &K::api_version(&()),
        &K::kind(&()),
        owner.meta(),
    ));
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": pod.metadata.resource_version,
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Drops the ownerReference to `uid` from a pod that no longer matches its owner's selector.
async fn release(api: &Api<Pod>, pod: &Pod, uid: &str) -> Result<(), Error> {
    let refs: Vec<_> = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    let patch = json!({"metadata": {
        "ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) },
        "resourceVersion": pod.metadata.resource_version,
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
