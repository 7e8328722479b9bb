//! The CronJob controller (kube-controller-manager's `cronjob_controllerv2.go`): at each time
//! of its [`schedule`] (in `spec.timeZone`, UTC by default) a CronJob gets a Job named
//! `CRONJOB-<minutes since the epoch>` (seconds for `@every` and the six-field extension) from its
//! `jobTemplate`; `concurrencyPolicy` decides what happens while one still runs,
//! `startingDeadlineSeconds` skips schedules missed for too long, and finished Jobs beyond the
//! history limits are deleted. Each pass requeues itself at the next schedule time.
//!
//! A Job event is routed to the CronJob controlling it. `status.active` holds the unfinished
//! Jobs it created; Jobs created by hand from it (`kubectl create job --from=cronjob/X`, with
//! the `cronjob.kubernetes.io/instantiate: manual` annotation) never count toward
//! concurrency, as in Kubernetes, but do count toward the history limits.

pub mod missed;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pods::{self, controller_of};
use super::{ControllerOptions, events};
use schedule::Schedule;

const COMPONENT: &str = "cronjob-controller";
/// The annotation with the time a Job was scheduled for.
const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// The annotation kubectl puts on a Job made by hand from a CronJob.
const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";
/// Slack after a schedule time before looking again (kube's `nextScheduleDelta`).
const DELTA: Duration = Duration::from_millis(100);

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("api request failed")]
    Api(#[from] kube::Error),
}

struct Context {
    client: Client,
    jobs: Store<Job>,
    options: ControllerOptions,
}

/// Runs the CronJob controller until `shutdown`.
pub async fn run(client: Client, options: ControllerOptions, shutdown: CancellationToken) {
    let (jobs, writer) = reflector::store::<Job>();
    let cronjobs = Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    );
    let (tx, rx) = mpsc::unbounded_channel::<ObjectRef<CronJob>>();
    let route = super::routing::follow(
        Api::<Job>::all(client.clone()),
        writer,
        move |object: &Job| {
            if let Some(owner) = controller_of(&object.metadata).filter(|o| o.kind == "CronJob") {
                let ns = object.namespace().unwrap_or_default();
                let _ = tx.send(ObjectRef::new(&owner.name).within(&ns));
            }
        },
    );
    if !super::routing::synced(&jobs, &shutdown).await {
        route.abort();
        return;
    }
    let ctx = Arc::new(Context {
        client,
        jobs,
        options,
    });
    super::routing::drive(cronjobs, rx, shutdown, reconcile, error_policy, ctx).await;
    route.abort();
}

fn error_policy(_: Arc<CronJob>, error: &Error, _: Arc<Context>) -> Action {
    tracing::debug!(error = %error, "cronjob reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// The type of a Job's True `Complete` or `Failed` condition.
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        resource_version: job.metadata.resource_version.clone(),
        ..events::reference(job)
    }
}

/// One level-triggered pass over one CronJob.
async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let status = cj.status.clone().unwrap_or_default();
    let before = serde_json::to_value(&status).unwrap_or(Value::Null);
    let previous: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    let was_active = |u: &Option<String>| previous.iter().any(|r| r.uid == *u);
    let owned: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(&ns))
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();

    let mut active: Vec<ObjectReference> = Vec::new();
    let mut last_successful = status.last_successful_time.as_ref().map(|t| t.0);
    for job in &owned {
        let manual = job.annotations().get(INSTANTIATE).map(String::as_str) == Some("manual");
        match finished(job) {
            None if was_active(&job.metadata.uid) || !manual => {
                let kept = previous.iter().find(|r| r.uid == job.metadata.uid);
                active.push(kept.cloned().unwrap_or_else(|| reference(job)));
            }
            None => {}
            Some(condition) => {
                if was_active(&job.metadata.uid) {
                    let message = format!(
                        "Saw completed job: {}, condition: {condition}",
                        job.name_any()
                    );
                    emit(&ctx, &cj, false, "SawCompletedJob", message).await;
                }
                let completed = job.status.as_ref().and_then(|s| s.completion_time.as_ref());
                if let (Some(t), "Complete") = (completed, condition) {
                    last_successful = Some(last_successful.map_or(t.0, |l| l.max(t.0)));
                }
            }
        }
    }
    // An active Job the cache does not show: deleted, or the cache lags our own create.
    for r in &previous {
        if owned.iter().any(|j| j.metadata.uid == r.uid) {
            continue;
        }
        let name = r.name.clone().unwrap_or_default();
        match job_api.get_opt(&name).await? {
            Some(j) if j.metadata.uid == r.uid && finished(&j).is_none() => active.push(r.clone()),
            Some(j) if j.metadata.uid == r.uid => {}
            _ => {
                emit(
                    &ctx,
                    &cj,
                    false,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                )
                .await
            }
        }
    }
    prune_history(&ctx, &cj, &job_api, &owned).await;

    let mut last_schedule = status.last_schedule_time.as_ref().map(|t| t.0);
    let wait = schedule(&ctx, &cj, &job_api, &mut active, &mut last_schedule).await?;

    let after = json!({
        "active": if active.is_empty() { Value::Null } else { json!(active) },
        "lastScheduleTime": last_schedule.map(Time),
        "lastSuccessfulTime": last_successful.map(Time),
    });
    if after["active"] != before["active"]
        || after["lastScheduleTime"] != before["lastScheduleTime"]
        || after["lastSuccessfulTime"] != before["lastSuccessfulTime"]
    {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &cj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": after })),
        )
        .await?;
    }
    Ok(match wait {
        Some(wait) => Action::requeue(wait.min(ctx.options.resync)),
        None => Action::requeue(ctx.options.resync),
    })
}

/// Starts the Job for the most recent schedule time if it is due, and says how long until
/// the next one (`None`: never, as for a suspended CronJob or a bad schedule).
async fn schedule(
    ctx: &Context,
    cj: &CronJob,
    job_api: &Api<Job>,
    active: &mut Vec<ObjectReference>,
    last_schedule: &mut Option<Timestamp>,
) -> Result<Option<Duration>, Error> {
    let spec = &cj.spec;
    if spec.suspend == Some(true) {
        return Ok(None);
    }
    let tz = match spec.time_zone.as_deref() {
        None => TimeZone::UTC,
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                let message = format!("invalid timeZone: {name:?}: {e}");
                emit(ctx, cj, true, "UnknownTimeZone", message).await;
                return Ok(None);
            }
        },
    };
    let sched: Schedule = match spec.schedule.parse() {
        Ok(s) => s,
        Err(e) => {
            let message = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            emit(ctx, cj, true, "UnparseableSchedule", message).await;
            return Ok(None);
        }
    };
    let now = Timestamp::now();
    let until_next = sched
        .next_after(now, &tz)
        .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or_default() + DELTA);
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = last_schedule.unwrap_or(created);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - jiff::SignedDuration::from_secs(deadline));
    }
    let (Some(scheduled), count) = missed::most_recent(&sched, &tz, earliest, now) else {
        return Ok(until_next);
    };
    if count > missed::TOO_MANY {
        let message = format!(
            "too many missed start times: {count}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
        );
        emit(ctx, cj, true, "TooManyMissedTimes", message).await;
    }
    let name = missed::job_name(&cj.name_any(), scheduled, sched.with_seconds);
    let already = *last_schedule == Some(scheduled)
        || active.iter().any(|r| r.name.as_deref() == Some(&name));
    if already {
        return Ok(until_next);
    }
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled + jiff::SignedDuration::from_secs(deadline) < now
    {
        let message = format!("Missed scheduled time to start a job: {scheduled}");
        emit(ctx, cj, true, "MissSchedule", message).await;
        return Ok(until_next);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            let message = "Not starting job because prior execution is running and concurrency policy is Forbid";
            emit(ctx, cj, false, "JobAlreadyActive", message.into()).await;
            return Ok(until_next);
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                let job = r.name.clone().unwrap_or_default();
                match job_api.delete(&job, &DeleteParams::background()).await {
                    Ok(_) => {
                        emit(
                            ctx,
                            cj,
                            false,
                            "SuccessfulDelete",
                            format!("Deleted job {job}"),
                        )
                        .await
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        _ => {}
    }
    match job_api
        .create(&PostParams::default(), &new_job(cj, &name, scheduled))
        .await
    {
        Ok(job) => {
            emit(
                ctx,
                cj,
                false,
                "SuccessfulCreate",
                format!("Created job {name}"),
            )
            .await;
            active.push(reference(&job));
        }
        // Made by an earlier pass whose status write is not visible yet.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            let message = format!("Error creating job: {e}");
            emit(ctx, cj, true, "FailedCreate", message).await;
            return Err(e.into());
        }
    }
    *last_schedule = Some(scheduled);
    Ok(until_next)
}

/// The Job for one schedule time, from the CronJob's `jobTemplate`.
fn new_job(cj: &CronJob, name: &str, scheduled: Timestamp) -> Job {
    let template = &cj.spec.job_template;
    let meta = template.metadata.clone().unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED.into(),
        scheduled.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![pods::owner_reference(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` and
/// `failedJobsHistoryLimit`. Failures are logged: the next pass tries again.
async fn prune_history(ctx: &Context, cj: &CronJob, api: &Api<Job>, owned: &[Arc<Job>]) {
    let limits = [
        (
            "Complete",
            cj.spec.successful_jobs_history_limit.unwrap_or(3),
        ),
        ("Failed", cj.spec.failed_jobs_history_limit.unwrap_or(1)),
    ];
    for (condition, limit) in limits {
        let mut done: Vec<&Job> = owned
            .iter()
            .map(|j| &**j)
            .filter(|j| finished(j) == Some(condition))
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if done.len() <= keep {
            continue;
        }
        done.sort_by(|a, b| missed::by_start_time(a, b));
        for job in &done[..done.len() - keep] {
            let name = job.name_any();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    emit(
                        ctx,
                        cj,
                        false,
                        "SuccessfulDelete",
                        format!("Deleted job {name}"),
                    )
                    .await
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::debug!(error = %e, job = %name, "deleting an old job failed"),
            }
        }
    }
}

async fn emit(ctx: &Context, cj: &CronJob, warning: bool, reason: &str, message: String) {
    events::emit(
        &ctx.client,
        COMPONENT,
        events::reference(cj),
        warning,
        reason,
        message,
    )
    .await;
}
