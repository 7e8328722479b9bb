//! The Deployment controller: one ReplicaSet per pod template (named
//! `DEPLOYMENT-<pod-template-hash>`), rolled from the old ones to the new one by
//! `RollingUpdate` (`maxSurge`, `maxUnavailable`, `minReadySeconds`; arithmetic in
//! [`rollout`](super::rollout)) or `Recreate`; revisions (`deployment.kubernetes.io/revision`)
//! and `revisionHistoryLimit`; `paused`; and the status `kubectl rollout status` reads, with
//! the `Available` and `Progressing` conditions (`progressDeadlineSeconds`).
//!
//! `kubectl rollout undo|restart|pause|resume` and `kubectl set image` are client-side edits of
//! the Deployment; this controller makes them happen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store, store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pods::{controller_of, owner_reference};
use super::rollout::{self, Counts};
use super::{ControllerOptions, events, selector};

mod status;
use status::write_status;

const COMPONENT: &str = "deployment-controller";
/// The label that ties a ReplicaSet and its pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision annotation on a Deployment and its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

struct Context {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    options: ControllerOptions,
}

/// Runs until `shutdown`.
pub async fn run(client: Client, options: ControllerOptions, shutdown: CancellationToken) {
    let (replica_sets, writer) = store::<ReplicaSet>();
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let (tx, rx) = mpsc::unbounded_channel::<ObjectRef<Deployment>>();
    let route = super::routing::follow(
        Api::<ReplicaSet>::all(client.clone()),
        writer,
        move |rs: &ReplicaSet| {
            let ns = rs.namespace().unwrap_or_default();
            match controller_of(&rs.metadata) {
                Some(owner) if owner.kind == "Deployment" => {
                    let _ = tx.send(ObjectRef::new(&owner.name).within(&ns));
                }
                Some(_) => {}
                None => {
                    for d in deployments.state() {
                        if d.namespace().as_deref() == Some(&ns)
                            && !selector::is_empty(&d.spec.selector)
                            && selector::matches(&d.spec.selector, rs.labels())
                        {
                            let _ = tx.send(ObjectRef::from_obj(&*d));
                        }
                    }
                }
            }
        },
    );
    if !super::routing::synced(&replica_sets, &shutdown).await {
        route.abort();
        return;
    }
    let ctx = Arc::new(Context {
        client,
        replica_sets,
        options,
    });
    super::routing::drive(controller, rx, shutdown, reconcile, error_policy, ctx).await;
    route.abort();
}

fn error_policy(_: Arc<Deployment>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "deployment reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// The template without the hash label, as JSON: what "the same template" means.
fn template_key(template: &PodTemplateSpec) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    serde_json::to_value(&t).unwrap_or(Value::Null)
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn counts(rs: &ReplicaSet) -> Counts {
    let replicas = rs.spec.replicas.unwrap_or(0);
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    // A status written before the last scale-down still counts the pods being removed.
    Counts {
        replicas,
        available: available.min(replicas),
    }
}

/// Whether the ReplicaSet controller has acted on this ReplicaSet's latest spec: until then
/// its status may count pods a scale-down is removing.
fn settled(rs: &ReplicaSet) -> bool {
    rs.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0)
        >= rs.metadata.generation.unwrap_or(0)
}

/// One level-triggered pass over one Deployment.
async fn reconcile(deploy: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    if deploy.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = deploy.namespace().unwrap_or_default();
    let uid = deploy.metadata.uid.clone().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = &deploy.spec;
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in ctx.replica_sets.state() {
        if rs.namespace().as_deref() != Some(&ns) {
            continue;
        }
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => owned.push((*rs).clone()),
            None if !selector::is_empty(&spec.selector)
                && selector::matches(&spec.selector, rs.labels()) =>
            {
                let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                refs.push(owner_reference("apps/v1", "Deployment", &deploy.metadata));
                let patch = json!({"metadata": {"ownerReferences": refs,
                    "resourceVersion": rs.metadata.resource_version}});
                rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
                owned.push((*rs).clone());
            }
            _ => {}
        }
    }
    owned.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rs.name_any(),
        )
    });

    let desired = spec.replicas.unwrap_or(1);
    let key = template_key(&spec.template);
    let new_index = owned
        .iter()
        .position(|rs| rs.spec.template.as_ref().map(template_key) == Some(key.clone()));
    let max_revision = owned.iter().map(revision_of).max().unwrap_or(0);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let (surge, unavailable) = if recreate {
        (0, desired)
    } else {
        rollout::surge_and_unavailable(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            desired,
        )
    };
    let paused = spec.paused.unwrap_or(false);
    let mut progress: Option<(&'static str, String)> = None;

    // The new ReplicaSet: found (its revision bumped if it was an old one, as on undo) or made.
    let new_rs = match new_index {
        Some(i) => {
            let mut rs = owned.remove(i);
            let revision = revision_of(&rs);
            if revision < max_revision && !paused {
                let bumped = (max_revision + 1).to_string();
                rs = annotate(&rs_api, &rs, &bumped, desired, surge, &deploy).await?;
            }
            set_revision(&ctx, &deploy, revision_of(&rs)).await?;
            Some(rs)
        }
        None if paused => None,
        None => {
            let old_active = owned.iter().any(|rs| counts(rs).replicas > 0);
            let initial = if recreate {
                if old_active { 0 } else { desired }
            } else {
                let all: Vec<Counts> = owned.iter().map(counts).collect();
                rollout::new_replicas(
                    desired,
                    surge,
                    Counts {
                        replicas: 0,
                        available: 0,
                    },
                    &all,
                )
            };
            let rs =
                create_replica_set(&ctx, &deploy, &ns, max_revision + 1, initial, surge).await?;
            progress = Some((
                "NewReplicaSetCreated",
                format!("Created new replica set \"{}\"", rs.name_any()),
            ));
            Some(rs)
        }
    };
    let old = owned;

    if let Some(new_rs) = &new_rs
        && !paused
    {
        let new = counts(new_rs);
        if recreate {
            for rs in old.iter().filter(|rs| counts(rs).replicas > 0) {
                scale(&ctx, &rs_api, &deploy, rs, 0).await?;
            }
            let old_pods: i32 = old
                .iter()
                .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
                .sum();
            if old_pods == 0 && new.replicas != desired {
                scale(&ctx, &rs_api, &deploy, new_rs, desired).await?;
            }
        } else {
            let all: Vec<Counts> = old.iter().map(counts).chain([new]).collect();
            let target = rollout::new_replicas(desired, surge, new, &all);
            if target != new.replicas {
                scale(&ctx, &rs_api, &deploy, new_rs, target).await?;
            }
            let olds: Vec<Counts> = old.iter().map(counts).collect();
            // Scale down only on settled statuses: availability read from a status that
            // lags a scale-down would let the next step remove too much.
            let scaled = if old.iter().chain([new_rs]).all(settled) {
                rollout::old_replicas(
                    desired,
                    unavailable,
                    Counts {
                        replicas: target,
                        ..new
                    },
                    &olds,
                )
            } else {
                olds.iter().map(|c| c.replicas).collect()
            };
            for (rs, replicas) in old.iter().zip(scaled) {
                if replicas != counts(rs).replicas {
                    scale(&ctx, &rs_api, &deploy, rs, replicas).await?;
                }
            }
        }
        // minReadySeconds and the annotations follow the Deployment.
        if new_rs.spec.min_ready_seconds != spec.min_ready_seconds
            || new_rs
                .annotations()
                .get("deployment.kubernetes.io/desired-replicas")
                != Some(&desired.to_string())
        {
            let patch = json!({
                "metadata": {"annotations": {
                    "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                    "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()}},
                "spec": {"minReadySeconds": spec.min_ready_seconds}});
            rs_api
                .patch(
                    &new_rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
        }
    }

    // A paused Deployment does not roll, but it still scales (kube's `sync`): in proportion
    // over its sets, when `replicas` differs from what they were sized for.
    if paused {
        let sets: Vec<&ReplicaSet> = new_rs.iter().chain(old.iter()).collect();
        let replicas: Vec<i32> = sets.iter().map(|rs| counts(rs).replicas).collect();
        let want = desired.to_string();
        let stale = |rs: &ReplicaSet| {
            rs.annotations()
                .get("deployment.kubernetes.io/desired-replicas")
                != Some(&want)
        };
        let scaling = if replicas.iter().any(|&r| r > 0) {
            sets.iter()
                .zip(&replicas)
                .any(|(rs, &r)| r > 0 && stale(rs))
        } else {
            sets.first().is_some_and(|rs| stale(rs))
        };
        if scaling {
            let targets = rollout::paused_replicas(desired, surge, &replicas, 0);
            for ((rs, &from), &to) in sets.iter().zip(&replicas).zip(&targets) {
                if from != to {
                    scale(&ctx, &rs_api, &deploy, rs, to).await?;
                }
                let patch = json!({"metadata": {"annotations": {
                    "deployment.kubernetes.io/desired-replicas": want,
                    "deployment.kubernetes.io/max-replicas": (desired + surge).to_string()}}});
                rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
            }
        }
    }

    cleanup_history(&ctx, &rs_api, &deploy, &old).await?;
    let wait = write_status(
        &ctx,
        &deploy,
        new_rs.as_ref(),
        &old,
        desired,
        unavailable,
        paused,
        progress,
    )
    .await?;
    Ok(Action::requeue(wait.unwrap_or(ctx.options.resync)))
}

/// Creates the ReplicaSet for the Deployment's current template.
async fn create_replica_set(
    ctx: &Context,
    deploy: &Deployment,
    ns: &str,
    revision: i64,
    replicas: i32,
    surge: i32,
) -> Result<ReplicaSet, Error> {
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let spec = &deploy.spec;
    let mut collisions = deploy
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    loop {
        let key = serde_json::to_vec(&template_key(&spec.template)).unwrap_or_default();
        let hash = rollout::template_hash(&key, collisions);
        let name = format!("{}-{hash}", deploy.name_any());
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut labels = meta.labels.clone().unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        let mut sel = spec.selector.clone();
        sel.match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut annotations: BTreeMap<String, String> = deploy
            .annotations()
            .iter()
            .filter(|(k, _)| k.as_str() == "kubernetes.io/change-cause")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(
            "deployment.kubernetes.io/desired-replicas".into(),
            spec.replicas.unwrap_or(1).to_string(),
        );
        annotations.insert(
            "deployment.kubernetes.io/max-replicas".into(),
            (spec.replicas.unwrap_or(1) + surge).to_string(),
        );
        let rs = ReplicaSet {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.into()),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![owner_reference(
                    "apps/v1",
                    "Deployment",
                    &deploy.metadata,
                )]),
                ..Default::default()
            },
            spec: k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector: sel,
                template: Some(template),
            },
            status: None,
        };
        match api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                events::emit(
                    &ctx.client,
                    COMPONENT,
                    events::reference(deploy),
                    false,
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {name} from 0 to {replicas}"),
                )
                .await;
                set_revision(ctx, deploy, revision).await?;
                return Ok(created);
            }
            // A ReplicaSet of that name with another template: hash again (`collisionCount`).
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&name).await?;
                let owned = controller_of(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == deploy.metadata.uid.as_ref());
                if owned
                    && existing.spec.template.as_ref().map(template_key)
                        == Some(template_key(&spec.template))
                {
                    return Ok(existing);
                }
                collisions += 1;
                let status = json!({"status": {"collisionCount": collisions}});
                Api::<Deployment>::namespaced(ctx.client.clone(), ns)
                    .patch_status(
                        &deploy.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(status),
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets the Deployment's own revision annotation (what `kubectl rollout history` marks).
async fn set_revision(ctx: &Context, deploy: &Deployment, revision: i64) -> Result<(), Error> {
    if deploy.annotations().get(REVISION) == Some(&revision.to_string()) {
        return Ok(());
    }
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &deploy.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
    api.patch(
        &deploy.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// Makes an old ReplicaSet the new one again (rollback): the next revision, the current
/// annotations.
async fn annotate(
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    revision: &str,
    desired: i32,
    surge: i32,
    deploy: &Deployment,
) -> Result<ReplicaSet, Error> {
    let patch = json!({"metadata": {"annotations": {
        REVISION: revision,
        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
        "deployment.kubernetes.io/max-replicas": (desired + surge).to_string(),
        "kubernetes.io/change-cause": deploy.annotations().get("kubernetes.io/change-cause"),
    }}});
    let rs = api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    Ok(rs)
}

/// Scales a ReplicaSet with a `ScalingReplicaSet` event.
async fn scale(
    ctx: &Context,
    api: &Api<ReplicaSet>,
    deploy: &Deployment,
    rs: &ReplicaSet,
    replicas: i32,
) -> Result<(), Error> {
    let from = rs.spec.replicas.unwrap_or(0);
    let patch = json!({"spec": {"replicas": replicas}});
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    let way = if replicas > from { "up" } else { "down" };
    events::emit(
        &ctx.client,
        COMPONENT,
        events::reference(deploy),
        false,
        "ScalingReplicaSet",
        format!(
            "Scaled {way} replica set {} from {from} to {replicas}",
            rs.name_any()
        ),
    )
    .await;
    Ok(())
}

/// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit` (default 10).
async fn cleanup_history(
    _ctx: &Context,
    api: &Api<ReplicaSet>,
    deploy: &Deployment,
    old: &[ReplicaSet],
) -> Result<(), Error> {
    let limit =
        usize::try_from(deploy.spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(10);
    let mut idle: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| counts(rs).replicas == 0 && rs.status.as_ref().is_none_or(|s| s.replicas == 0))
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    if idle.len() <= limit {
        return Ok(());
    }
    idle.sort_by_key(|rs| revision_of(rs));
    for rs in &idle[..idle.len() - limit] {
        match api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
