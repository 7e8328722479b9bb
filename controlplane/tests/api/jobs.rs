//! The Job and CronJob controllers against a real server with no node agents: the test plays
//! the kubelet, finishing pods through `pods/status` (and, for CronJobs, the Job
//! controller, finishing Jobs through `jobs/status`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use controlplane::controllers::cronjob;
use controlplane::controllers::job::{self, Backoff};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, Running, eventually};

const WAIT: Duration = Duration::from_secs(15);

async fn create_job(cluster: &Cluster, name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "wasmkube/toolbox:1"}]}});
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec});
    let api: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(job).expect("a job"),
    )
    .await
    .expect("job created")
}

/// The Job's pods: (active, all).
async fn job_pods(cluster: &Cluster, job: &str) -> (Vec<Pod>, Vec<Pod>) {
    let all = cluster
        .pods()
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .expect("pods listed")
        .items;
    let active = all
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            p.metadata.deletion_timestamp.is_none()
                && !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .cloned()
        .collect();
    (active, all)
}

async fn finish(cluster: &Cluster, pod: &Pod, phase: &str) {
    cluster
        .pods()
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await
        .expect("pod status set");
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

#[tokio::test]
async fn job_runs_parallelism_pods_until_completions_succeed() {
    let cluster = Cluster::start().await;
    let _jobs = Running::informed(&cluster, job::run);
    let created = create_job(
        &cluster,
        "five",
        json!({"completions": 5, "parallelism": 2}),
    )
    .await;
    let api: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    for done in 0..5 {
        // Two run while at least two are still needed, then one.
        let want = (5 - done).min(2);
        let active = eventually(WAIT, || async {
            let (active, _) = job_pods(&cluster, "five").await;
            if active.len() == want {
                Ok(active)
            } else {
                Err(format!("{} active pods, want {want}", active.len()))
            }
        })
        .await;
        let pod = &active[0];
        assert_eq!(
            pod.labels()["batch.kubernetes.io/controller-uid"],
            created.uid().unwrap()
        );
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("Job", Some(true), Some(true))
        );
        finish(&cluster, pod, "Succeeded").await;
    }
    let job = eventually(WAIT, || async {
        let job = api.get("five").await.expect("job");
        condition(&job, "Complete")
            .map(|_| job)
            .ok_or_else(|| "not complete yet".to_string())
    })
    .await;
    let status = job.status.clone().expect("a status");
    assert_eq!(
        (status.succeeded, status.active, status.failed),
        (Some(5), Some(0), Some(0))
    );
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    assert!(condition(&job, "SuccessCriteriaMet").is_some());
    // Finished pods stay, for their logs.
    let (active, all) = job_pods(&cluster, "five").await;
    assert_eq!((active.len(), all.len()), (0, 5));
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    eventually(WAIT, || async {
        let list = events.list(&ListParams::default()).await.expect("events");
        let reasons: BTreeSet<String> = list
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("five"))
            .filter_map(|e| e.reason.clone())
            .collect();
        if reasons.contains("Completed") && reasons.contains("SuccessfulCreate") {
            Ok(())
        } else {
            Err(format!("events so far: {reasons:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn failing_job_stops_at_its_backoff_limit() {
    let cluster = Cluster::start().await;
    let backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
    };
    let _jobs = Running::informed(&cluster, move |client, informers, options, stop| {
        job::run_with(client, informers, options, backoff, stop)
    });
    create_job(
        &cluster,
        "doomed",
        json!({"completions": 1, "backoffLimit": 2}),
    )
    .await;
    let api: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    for failures in 0..3 {
        let pod = eventually(WAIT, || async {
            let (active, all) = job_pods(&cluster, "doomed").await;
            match active.first() {
                Some(p) if all.len() == failures + 1 => Ok(p.clone()),
                _ => Err(format!("{} pods, {} active", all.len(), active.len())),
            }
        })
        .await;
        finish(&cluster, &pod, "Failed").await;
    }
    let job = eventually(WAIT, || async {
        let job = api.get("doomed").await.expect("job");
        condition(&job, "Failed")
            .map(|_| job)
            .ok_or_else(|| "not failed yet".to_string())
    })
    .await;
    assert_eq!(
        condition(&job, "Failed"),
        Some((
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into()
        ))
    );
    assert!(condition(&job, "FailureTarget").is_some());
    assert_eq!(job.status.and_then(|s| s.failed), Some(3));
    // No replacement after the limit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (active, all) = job_pods(&cluster, "doomed").await;
    assert_eq!((active.len(), all.len()), (0, 3));
}

#[tokio::test]
async fn cronjob_every_two_seconds_creates_jobs_and_keeps_its_history_limit() {
    cronjob_creates_jobs_and_keeps_its_history_limit("@every 2s").await;
}

#[tokio::test]
async fn cronjob_with_seconds_creates_jobs_and_keeps_its_history_limit() {
    cronjob_creates_jobs_and_keeps_its_history_limit("*/2 * * * * *").await;
}

async fn cronjob_creates_jobs_and_keeps_its_history_limit(schedule: &str) {
    let cluster = Cluster::start().await;
    let _cron = Running::start(&cluster, cronjob::run);
    let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": schedule, "successfulJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "tick"}}, "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "wasmkube/toolbox:1"}]}}}}}});
    let cronjobs: Api<CronJob> = Api::namespaced(cluster.client.clone(), "default");
    let cj = cronjobs
        .create(
            &PostParams::default(),
            &serde_json::from_value(cj).expect("a cronjob"),
        )
        .await
        .expect("cronjob created");
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    let seen = Mutex::new(BTreeSet::new());
    // Play the Job controller: every Job the CronJob makes completes at once.
    eventually(Duration::from_secs(20), || async {
        let list = jobs.list(&ListParams::default()).await.expect("jobs").items;
        for job in &list {
            let name = job.name_any();
            let new = seen.lock().expect("lock").insert(name.clone());
            if new {
                let owner = &job.owner_references()[0];
                assert_eq!(
                    (owner.kind.as_str(), owner.uid.as_str()),
                    ("CronJob", cj.uid().unwrap().as_str())
                );
                assert_eq!(job.labels()["app"], "tick");
                let at = &job.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"];
                let at: jiff::Timestamp = at.parse().expect("an RFC 3339 time");
                assert_eq!(name, format!("tick-{}", at.as_second()));
                let now = jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                let done = json!({"status": {"startTime": now, "completionTime": now,
                    "succeeded": 1, "conditions": [{"type": "Complete", "status": "True",
                        "lastTransitionTime": now}]}});
                jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(done))
                    .await
                    .expect("job status set");
            }
        }
        let seen = seen.lock().expect("lock");
        if seen.len() >= 3 {
            Ok(())
        } else {
            Err(format!("seen {seen:?}, now {} jobs", list.len()))
        }
    })
    .await;
    // The history settles at one finished Job.
    eventually(WAIT, || async {
        let list = jobs.list(&ListParams::default()).await.expect("jobs").items;
        let finished = list
            .iter()
            .filter(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.completion_time.as_ref())
                    .is_some()
            })
            .count();
        let status = cronjobs
            .get("tick")
            .await
            .expect("cronjob")
            .status
            .unwrap_or_default();
        if finished <= 1
            && status.last_schedule_time.is_some()
            && status.last_successful_time.is_some()
        {
            Ok(())
        } else {
            Err(format!("{finished} finished jobs, status {status:?}"))
        }
    })
    .await;
}
