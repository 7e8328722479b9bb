//! The Job controller: runs a Job's pods to `completions` successes with `parallelism` at a
//! time, replaces failed pods after an exponential back-off until `backoffLimit`, enforces
//! `activeDeadlineSeconds` and `suspend`, runs Indexed Jobs ([`indexes`]), writes the
//! status and conditions, and deletes a finished Job after `ttlSecondsAfterFinished` (kube's
//! separate TTL-after-finished controller, folded in here).
//!
//! Its shape is the ReplicaSet controller's (`replicaset.rs`): one pod reflector routes pod
//! events to the Job controlling them, and creates and deletes are remembered until the
//! cache shows them, so a lagging cache never creates twice. The arithmetic lives in
//! [`plan`]. Pods are tracked by their controller ownerReference; orphans matching a Job's
//! selector are not adopted, and there is no `batch.kubernetes.io/job-tracking` finalizer.

pub mod indexes;
pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use plan::Backoff;
use plan::Finish;

use super::expectations::Expectations;
use super::informer::Informers;
use super::pods::{self, controller_of};
use super::{ControllerOptions, events};

const COMPONENT: &str = "job-controller";

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
    expectations: Expectations,
    options: ControllerOptions,
    backoff: Backoff,
}

/// Runs the Job controller until `shutdown`, with Kubernetes' pod-failure back-off.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let backoff = Backoff {
        base: options.job_backoff_base,
        max: options.job_backoff_max,
    };
    run_with(client, informers, options, backoff, shutdown).await;
}

/// Runs the Job controller until `shutdown` with the given pod-failure back-off.
pub async fn run_with(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    backoff: Backoff,
    shutdown: CancellationToken,
) {
    let pods = informers.pods.store();
    let jobs = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default());
    let (tx, rx) = mpsc::unbounded_channel::<ObjectRef<Job>>();
    let route = informers.pods.follow(move |object: &Pod| {
        if let Some(owner) = controller_of(&object.metadata).filter(|o| o.kind == "Job") {
            let ns = object.namespace().unwrap_or_default();
            let _ = tx.send(ObjectRef::new(&owner.name).within(&ns));
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
        backoff,
    });
    super::routing::drive(jobs, rx, shutdown, reconcile, error_policy, ctx).await;
    route.abort();
}

fn error_policy(_: Arc<Job>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "job reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// The Job's `Complete` or `Failed` condition that is True, if it finished.
fn finished_condition(job: &Job) -> Option<(String, Timestamp)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| {
            let at = c
                .last_transition_time
                .as_ref()
                .map_or_else(Timestamp::now, |t| t.0);
            (c.type_.clone(), at)
        })
}

/// One level-triggered pass over one Job.
async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    let (Some(spec), None) = (job.spec.as_ref(), job.metadata.deletion_timestamp.as_ref()) else {
        return Ok(Action::await_change());
    };
    let ns = job.namespace().unwrap_or_default();
    let now = Timestamp::now();
    if let Some((_, at)) = finished_condition(&job) {
        return expire(&ctx, &job, spec, at, now).await;
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    if !ctx.expectations.satisfied(&uid, &ns, &ctx.pods) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let owned: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns))
        .filter(|p| controller_of(&p.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let suspended = spec.suspend == Some(true);
    let previous_start = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0);
    // A suspended Job's clock stops: its deadline counts from when it resumes.
    let start = if suspended {
        None
    } else {
        previous_start.or(Some(now))
    };
    let refs: Vec<&Pod> = owned.iter().map(|p| &**p).collect();
    let plan = plan::plan(spec, start, &refs, &ctx.backoff, now);

    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut deleted = Vec::new();
    for name in &plan.delete {
        match pod_api.delete(name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(name.clone()),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                ctx.expectations.expect(&uid, Vec::new(), deleted);
                return Err(e.into());
            }
        }
    }
    ctx.expectations.expect(&uid, Vec::new(), deleted);
    let mut pods_to_make: Vec<Pod> = Vec::new();
    let base = new_pod(&job, spec, &ns);
    pods_to_make.extend(std::iter::repeat_n(base.clone(), plan.create));
    for &index in &plan.create_indexes {
        let mut pod = base.clone();
        indexes::decorate(&mut pod, &job.name_any(), index);
        pods_to_make.push(pod);
    }
    let params = PostParams::default();
    let results =
        futures::future::join_all(pods_to_make.iter().map(|p| pod_api.create(&params, p))).await;
    let mut created = Vec::new();
    let mut failure = None;
    for result in results {
        match result {
            Ok(p) => {
                let name = p.name_any();
                emit(
                    &ctx,
                    &job,
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
                emit(
                    &ctx,
                    &job,
                    true,
                    "FailedCreate",
                    format!("Error creating: {message}"),
                )
                .await;
                failure.get_or_insert(e);
            }
        }
    }
    ctx.expectations.expect(&uid, created, Vec::new());

    let status = status_of(&job, &plan, start, suspended, now);
    let before = serde_json::to_value(&job.status).unwrap_or(Value::Null);
    if !same_status(&status, &before) {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &job.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
        announce(&ctx, &job, &plan, suspended, &before).await;
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    let wait = plan
        .wait
        .unwrap_or(ctx.options.resync)
        .min(ctx.options.resync);
    Ok(Action::requeue(wait + Duration::from_millis(20)))
}

/// The pod the Job's template makes: `generateName: JOB-`, the Job's labels, its controller
/// ownerReference.
fn new_pod(job: &Job, spec: &JobSpec, ns: &str) -> Pod {
    let reference = pods::owner_reference("batch/v1", "Job", &job.metadata);
    let name = job.name_any();
    let mut pod = pods::from_template(&spec.template, ns, &name, reference);
    if spec.manual_selector != Some(true) {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let labels = pod.metadata.labels.get_or_insert_default();
        for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
            labels.entry(key.into()).or_insert_with(|| uid.clone());
        }
        for key in ["job-name", "batch.kubernetes.io/job-name"] {
            labels.entry(key.into()).or_insert_with(|| name.clone());
        }
    }
    pod
}

/// The Job's whole status after this pass.
fn status_of(
    job: &Job,
    plan: &plan::Plan,
    start: Option<Timestamp>,
    suspended: bool,
    now: Timestamp,
) -> Value {
    let previous = job.status.clone().unwrap_or_default();
    let mut conditions: Vec<Value> = previous
        .conditions
        .iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let stamp = serde_json::to_value(Time(now)).unwrap_or(Value::Null);
    let mut set = |type_: &str, status: &str, reason: &str, message: &str| {
        let fresh = json!({"type": type_, "status": status, "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp});
        match conditions.iter_mut().find(|c| c["type"] == type_) {
            Some(c) if c["status"] == status && c["reason"] == reason => {}
            Some(c) => *c = fresh,
            None => conditions.push(fresh),
        }
    };
    let had_suspended = previous
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Suspended" && c.status == "True");
    if suspended {
        set("Suspended", "True", "JobSuspended", "Job suspended");
    } else if had_suspended {
        set("Suspended", "False", "JobResumed", "Job resumed");
    }
    let mut completion_time = Value::Null;
    match &plan.finished {
        Some(Finish::Complete) => {
            let message = "Reached expected number of succeeded pods";
            set("SuccessCriteriaMet", "True", "CompletionsReached", message);
            set("Complete", "True", "CompletionsReached", message);
            completion_time = stamp.clone();
        }
        Some(Finish::Failed { reason, message }) => {
            set("FailureTarget", "True", reason, message);
            set("Failed", "True", reason, message);
        }
        None => {}
    }
    json!({
        "active": plan.active,
        "ready": plan.ready,
        "succeeded": plan.succeeded,
        "failed": plan.failed,
        "terminating": 0,
        "startTime": start.map(Time),
        "completionTime": completion_time,
        "completedIndexes": plan.completed_indexes,
        "conditions": if conditions.is_empty() { Value::Null } else { json!(conditions) },
    })
}

/// Whether writing `new` over `old` would change anything (absent counts are 0).
fn same_status(new: &Value, old: &Value) -> bool {
    new.as_object().into_iter().flatten().all(|(k, v)| {
        let o = &old[k];
        o == v || (v.is_null() && o.is_null()) || (v == &json!(0) && o.is_null())
    })
}

/// The Events of a status change: a finish, a suspension or a resumption.
async fn announce(ctx: &Context, job: &Job, plan: &plan::Plan, suspended: bool, before: &Value) {
    let had = |type_: &str, status: &str| {
        before["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == status)
        })
    };
    match &plan.finished {
        Some(Finish::Complete) => emit(ctx, job, false, "Completed", "Job completed".into()).await,
        Some(Finish::Failed { reason, message }) => {
            emit(ctx, job, true, reason, (*message).into()).await;
        }
        None if suspended && !had("Suspended", "True") => {
            emit(ctx, job, false, "Suspended", "Job suspended".into()).await;
        }
        None if !suspended && had("Suspended", "True") => {
            emit(ctx, job, false, "Resumed", "Job resumed".into()).await;
        }
        None => {}
    }
}

async fn emit(ctx: &Context, job: &Job, warning: bool, reason: &str, message: String) {
    events::emit(
        &ctx.client,
        COMPONENT,
        events::reference(job),
        warning,
        reason,
        message,
    )
    .await;
}

/// A finished Job: deleted (with its pods, in the background) once
/// `ttlSecondsAfterFinished` has passed since it finished.
async fn expire(
    ctx: &Context,
    job: &Job,
    spec: &JobSpec,
    finished: Timestamp,
    now: Timestamp,
) -> Result<Action, Error> {
    let Some(ttl) = spec.ttl_seconds_after_finished else {
        return Ok(Action::await_change());
    };
    let due = finished + jiff::SignedDuration::from_secs(i64::from(ttl.max(0)));
    if now < due {
        let left = Duration::try_from(due.duration_since(now)).unwrap_or_default();
        return Ok(Action::requeue(left + Duration::from_millis(20)));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let mut params = DeleteParams::background();
    // Only this Job: one recreated under the same name meanwhile is not ours to delete.
    params.preconditions = Some(kube::api::Preconditions {
        uid: job.meta().uid.clone(),
        resource_version: None,
    });
    match api.delete(&job.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
