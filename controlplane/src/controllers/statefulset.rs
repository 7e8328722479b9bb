//! The StatefulSet controller: pods with stable names `SET-0..SET-(n-1)`, made and removed in
//! ordinal order under `OrderedReady` or all at once under `Parallel` ([`plan`]), rolled to a
//! new template from the highest ordinal down (`RollingUpdate` with `partition` and
//! `maxUnavailable`) or only as pods are deleted (`OnDelete`), with ControllerRevisions as
//! the history ([`history`](super::history)) and the status `kubectl rollout status` reads.
//!
//! Pods have fixed names, so a reconcile on a lagging cache cannot create twice (the API
//! answers 409), and every delete carries the pod's uid as a precondition, so it never hits
//! a newer pod of the same name. Each ordinal's `volumeClaimTemplates` claims are made before
//! its pod and kept after it ([`claims`]), so the ordinal finds its data again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::history::{self, POD_REVISION_LABEL};
use super::informer::Informers;
use super::pods::controller_of;
use super::rollout;
use super::{ControllerOptions, events};

pub mod claims;
pub mod plan;
pub mod pod;
mod status;

use plan::{Observed, Spec, Step};

const COMPONENT: &str = "statefulset-controller";

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
    claims: Store<PersistentVolumeClaim>,
    options: ControllerOptions,
}

/// Runs the StatefulSet controller until `shutdown`.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let pods = informers.pods.store();
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<StatefulSet>>();
    let route = informers.pods.follow(move |object: &Pod| {
        if let Some(owner) = controller_of(&object.metadata).filter(|o| o.kind == "StatefulSet") {
            let ns = object.namespace().unwrap_or_default();
            let _ = tx.send(ObjectRef::new(&owner.name).within(&ns));
        }
    });
    let (claims, claims_writer) = reflector::store::<PersistentVolumeClaim>();
    let claims_route = super::routing::follow(Api::all(client.clone()), claims_writer, |_: &_| {});
    if super::routing::synced(&pods, &shutdown).await
        && super::routing::synced(&claims, &shutdown).await
    {
        let ctx = Arc::new(Context {
            client,
            pods,
            claims,
            options,
        });
        super::routing::drive(controller, rx, shutdown, reconcile, error_policy, ctx).await;
    }
    route.abort();
    claims_route.abort();
}

fn error_policy(_: Arc<StatefulSet>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "statefulset reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// One level-triggered pass over one StatefulSet.
async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let spec = &set.spec;

    // History: the update revision is the template's; the current one is the status's.
    let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut revisions = history::list(&revisions_api, &uid).await?;
    let previous = set.status.clone().unwrap_or_default();
    let synced = history::sync(
        &revisions_api,
        &history::Owner {
            api_version: "apps/v1",
            kind: "StatefulSet",
            meta: &set.metadata,
            template: &spec.template,
            collision_count: previous.collision_count.unwrap_or(0),
        },
        &mut revisions,
    )
    .await?;
    let update = synced.update.clone();
    let current = previous
        .current_revision
        .as_ref()
        .and_then(|c| revisions.iter().find(|r| r.name_any() == *c))
        .cloned()
        .unwrap_or_else(|| update.clone());

    // The pods by ordinal.
    let now = jiff::Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut owned: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
    let mut observed: BTreeMap<i32, Observed> = BTreeMap::new();
    let mut wait: Option<Duration> = None;
    for p in ctx.pods.state() {
        if p.namespace().as_deref() != Some(&ns)
            || controller_of(&p.metadata).is_none_or(|o| o.uid != uid)
        {
            continue;
        }
        let Some(ordinal) = pod::ordinal_of(&name, &p.name_any()) else {
            continue;
        };
        let (health, left) = pod::health(&p, min_ready, now);
        if let Some(left) = left {
            let left = left + Duration::from_millis(50);
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        let updated = p.labels().get(POD_REVISION_LABEL) == Some(&update.name_any());
        observed.insert(ordinal, Observed { health, updated });
        owned.insert(ordinal, p);
    }

    let replicas = spec.replicas.unwrap_or(1);
    let strategy = spec.update_strategy.as_ref();
    let rolling = (strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete")).then(|| {
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let partition = ru.and_then(|r| r.partition).unwrap_or(0);
        // A percentage rounds up, as Kubernetes scales it; never below one.
        let unavailable = ru
            .and_then(|r| r.max_unavailable.as_ref())
            .map_or(1, |v| rollout::resolve(Some(v), replicas, "0%", true));
        (partition, unavailable.max(1))
    });
    let steps = plan::plan(
        Spec {
            replicas,
            parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
            rolling,
        },
        &observed,
    );

    // Pending pods get back claims that went missing; claims follow the retention policy
    // (a condemned pod's before it is deleted).
    for (&ordinal, p) in &owned {
        let pending = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
        if pending && p.metadata.deletion_timestamp.is_none() {
            ensure_claims(&ctx, &set, ordinal).await?;
        }
        sync_claim_owners(&ctx, &set, p, ordinal >= replicas).await?;
    }

    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for step in steps {
        match step {
            Step::Create {
                ordinal,
                current: from_current,
            } => {
                let (revision, template) = if from_current {
                    let t = history::template_of(&current).unwrap_or_else(|| spec.template.clone());
                    (current.name_any(), t)
                } else {
                    (update.name_any(), spec.template.clone())
                };
                if !ensure_claims(&ctx, &set, ordinal).await? {
                    // A claim of this ordinal is still being deleted: make the pod once
                    // it is gone and made again.
                    wait = Some(wait.map_or(CLAIM_WAIT, |w| w.min(CLAIM_WAIT)));
                    continue;
                }
                let new = pod::for_ordinal(&set, &template, &revision, ordinal);
                create(&ctx, &set, &pod_api, &new).await?;
            }
            Step::Delete(ordinal) => {
                if let Some(p) = owned.get(&ordinal) {
                    delete(&ctx, &set, &pod_api, p).await?;
                }
            }
        }
    }

    let mut live: HashSet<String> = owned
        .values()
        .filter_map(|p| p.labels().get(POD_REVISION_LABEL).cloned())
        .collect();
    live.insert(current.name_any());
    live.insert(update.name_any());
    let limit = spec.revision_history_limit.unwrap_or(10);
    history::cleanup(&revisions_api, &revisions, &live, limit).await?;

    let status = status::compute(
        &set,
        owned.values().map(|p| &**p),
        &current.name_any(),
        &update.name_any(),
        synced.collision_count,
        rolling.is_some(),
        now,
    );
    if status::changed(&previous, &status) {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    }
    Ok(Action::requeue(wait.unwrap_or(ctx.options.resync)))
}

/// Creates one pod (an existing one of that name is fine: the cache had not shown it yet).
async fn create(ctx: &Context, set: &StatefulSet, api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let name = pod.name_any();
    let set_name = set.name_any();
    match api.create(&PostParams::default(), pod).await {
        Ok(_) => {
            let message = format!("create Pod {name} in StatefulSet {set_name} successful");
            events::emit(
                &ctx.client,
                COMPONENT,
                events::reference(set),
                false,
                "SuccessfulCreate",
                message,
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => {
            let cause = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            let message =
                format!("create Pod {name} in StatefulSet {set_name} failed error: {cause}");
            events::emit(
                &ctx.client,
                COMPONENT,
                events::reference(set),
                true,
                "FailedCreate",
                message,
            )
            .await;
            Err(e.into())
        }
    }
}

/// Deletes one pod, only if it is still the one the cache showed.
async fn delete(ctx: &Context, set: &StatefulSet, api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    let name = pod.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            let message = format!(
                "delete Pod {name} in StatefulSet {} successful",
                set.name_any()
            );
            events::emit(
                &ctx.client,
                COMPONENT,
                events::reference(set),
                false,
                "SuccessfulDelete",
                message,
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How soon a pod waiting for its claim to finish deleting is looked at again.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

/// Makes the missing claims of `ordinal` (`createPersistentVolumeClaims`); `false` while
/// one of them is being deleted.
async fn ensure_claims(ctx: &Context, set: &StatefulSet, ordinal: i32) -> Result<bool, Error> {
    let ns = set.namespace().unwrap_or_default();
    let set_name = set.name_any();
    let pod_name = format!("{set_name}-{ordinal}");
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for claim in claims::for_ordinal(set, ordinal) {
        let name = claim.name_any();
        match ctx.claims.get(&ObjectRef::new(&name).within(&ns)) {
            Some(c) if c.metadata.deletion_timestamp.is_some() => return Ok(false),
            Some(_) => continue,
            None => {}
        }
        let (warning, reason, message) = match api.create(&PostParams::default(), &claim).await {
            Ok(_) => (
                false,
                "SuccessfulCreate",
                format!("create Claim {name} Pod {pod_name} in StatefulSet {set_name} success"),
            ),
            // The cache had not shown it yet.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                let cause = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                };
                let message = format!(
                    "create Claim {name} for Pod {pod_name} in StatefulSet {set_name} failed \
                     error: {cause}"
                );
                events::emit(
                    &ctx.client,
                    COMPONENT,
                    events::reference(set),
                    true,
                    "FailedCreate",
                    message,
                )
                .await;
                return Err(e.into());
            }
        };
        events::emit(
            &ctx.client,
            COMPONENT,
            events::reference(set),
            warning,
            reason,
            message,
        )
        .await;
    }
    Ok(true)
}

/// Sets the ownerReferences of `pod`'s claims as the retention policy wants them.
async fn sync_claim_owners(
    ctx: &Context,
    set: &StatefulSet,
    pod: &Pod,
    condemned: bool,
) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let Some(ordinal) = pod::ordinal_of(&set.name_any(), &pod.name_any()) else {
        return Ok(());
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for wanted in claims::for_ordinal(set, ordinal) {
        let name = wanted.name_any();
        let Some(claim) = ctx.claims.get(&ObjectRef::new(&name).within(&ns)) else {
            continue;
        };
        if let Some(refs) = claims::owners(set, pod, condemned, &claim) {
            let patch = json!({"metadata": {"ownerReferences": refs}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
