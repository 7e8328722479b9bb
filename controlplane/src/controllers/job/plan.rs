//! The Job controller's arithmetic, apart from any I/O: from a Job's spec and its pods, what
//! it has achieved (succeeded, failed, ready, completed indexes), whether it is finished and
//! why, and which pods to create or delete now (`syncJob`/`manageJob` in
//! kube-controller-manager's `job_controller.go`).

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::Pod;

use super::indexes;
use crate::controllers::pods;

/// Most pods created or deleted in one pass (kube-controller-manager's `MaxBatchSize`-like
/// burst).
const BURST: usize = 500;

/// The pod-failure back-off: after the n-th consecutive failure, a replacement waits
/// `base * 2^(n-1)`, at most `max` (kube-controller-manager's `DefaultJobPodFailureBackOff`
/// 10 s and `MaxJobPodFailureBackOff` 6 min).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(360),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (none after none).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Why a Job finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Enough pods succeeded (`Complete`, after `SuccessCriteriaMet`).
    Complete,
    /// It failed (`Failed`, after `FailureTarget`) with this reason and message.
    Failed {
        /// `BackoffLimitExceeded` or `DeadlineExceeded`.
        reason: &'static str,
        /// The condition's message.
        message: &'static str,
    },
}

/// What to do about one Job now, and what it has achieved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Pods (or completion indexes) that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// Active pods that are Ready.
    pub ready: i32,
    /// Active pods after this pass's creates and deletes.
    pub active: i32,
    /// `status.completedIndexes`, for an Indexed Job.
    pub completed_indexes: Option<String>,
    /// Set once the Job is finished.
    pub finished: Option<Finish>,
    /// How many pods to create (a NonIndexed Job).
    pub create: usize,
    /// The completion indexes to create pods for (an Indexed Job).
    pub create_indexes: Vec<i32>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// When to look again even if nothing changes (back-off or the active deadline).
    pub wait: Option<Duration>,
}

/// Plans one pass over a Job whose pods are `owned` (every pod it controls, finished ones
/// too). `start` is `status.startTime`.
pub fn plan(
    spec: &JobSpec,
    start: Option<Timestamp>,
    owned: &[&Pod],
    backoff: &Backoff,
    now: Timestamp,
) -> Plan {
    let mut active: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| pods::is_active(p))
        .collect();
    let phase =
        |p: &Pod, want: &str| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(want);
    let succeeded_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| phase(p, "Succeeded"))
        .collect();
    let failed_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| phase(p, "Failed"))
        .collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let suspended = spec.suspend == Some(true);

    let mut plan = Plan {
        failed: count(failed_pods.len()),
        ready: count(active.iter().filter(|p| pods::is_ready(p)).count()),
        ..Plan::default()
    };
    let completed: BTreeSet<i32> = if indexed {
        let limit = completions.unwrap_or(0);
        succeeded_pods
            .iter()
            .filter_map(|p| indexes::of(p))
            .filter(|i| (0..limit).contains(i))
            .collect()
    } else {
        BTreeSet::new()
    };
    plan.succeeded = if indexed {
        count(completed.len())
    } else {
        count(succeeded_pods.len())
    };
    if indexed {
        plan.completed_indexes = Some(indexes::compress(&completed));
    }

    // Failure first, as kube does: a Job past its limits fails even if it also succeeded.
    let limit = spec.backoff_limit.unwrap_or(6);
    if plan.failed > limit || past_backoff_limit_on_failure(spec, &active, limit) {
        plan.finished = Some(Finish::Failed {
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit",
        });
    } else if let (Some(seconds), Some(start), false) =
        (spec.active_deadline_seconds, start, suspended)
    {
        let deadline = start + jiff::SignedDuration::from_secs(seconds);
        if now >= deadline {
            plan.finished = Some(Finish::Failed {
                reason: "DeadlineExceeded",
                message: "Job was active longer than specified deadline",
            });
        } else {
            plan.wait = Duration::try_from(deadline.duration_since(now)).ok();
        }
    }
    if plan.finished.is_none() {
        let done = match completions {
            Some(c) => plan.succeeded >= c,
            None => plan.succeeded > 0 && active.is_empty(),
        };
        if done {
            plan.finished = Some(Finish::Complete);
        }
    }
    if plan.finished.is_some() || suspended {
        plan.delete = active.iter().map(name).collect();
        return plan;
    }

    if indexed {
        let surplus = indexes::surplus(&active, &completed, completions.unwrap_or(0));
        active.retain(|p| !surplus.contains(&name(p)));
        plan.delete = surplus;
    }
    let want = match completions {
        Some(c) => parallelism.min((c - plan.succeeded).max(0)),
        // Without completions, the first success means "finish what runs, start nothing".
        None if plan.succeeded > 0 => count(active.len()),
        None => parallelism,
    };
    let want = usize::try_from(want).unwrap_or(0);
    if active.len() > want {
        active.sort_by(|a, b| pods::deletion_order(a, b));
        let extra = (active.len() - want).min(BURST);
        plan.delete.extend(active.drain(..extra).map(|p| name(&p)));
    } else if active.len() < want {
        let wait = remaining_backoff(&succeeded_pods, &failed_pods, backoff, now);
        if wait > Duration::ZERO {
            plan.wait = Some(plan.wait.map_or(wait, |w| w.min(wait)));
        } else {
            let missing = (want - active.len()).min(BURST);
            if indexed {
                let busy: BTreeSet<i32> = active.iter().filter_map(|p| indexes::of(p)).collect();
                plan.create_indexes = (0..completions.unwrap_or(0))
                    .filter(|i| !completed.contains(i) && !busy.contains(i))
                    .take(missing)
                    .collect();
            } else {
                plan.create = missing;
            }
        }
    }
    plan.active = count(active.len() + plan.create + plan.create_indexes.len());
    plan
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn name(pod: &&Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// kube's `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure` the kubelet restarts
/// containers in place, so their restarts are the failures.
fn past_backoff_limit_on_failure(spec: &JobSpec, active: &[&Pod], limit: i32) -> bool {
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = active
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// How long the back-off still holds replacements back: the delay for the failures since
/// the last success, counted from the last failure.
fn remaining_backoff(
    succeeded: &[&Pod],
    failed: &[&Pod],
    backoff: &Backoff,
    now: Timestamp,
) -> Duration {
    let last_success = succeeded.iter().map(|p| finished_at(p)).max();
    let failures: Vec<Timestamp> = failed
        .iter()
        .map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last) = failures.iter().max() else {
        return Duration::ZERO;
    };
    let delay = backoff.delay(u32::try_from(failures.len()).unwrap_or(u32::MAX));
    let elapsed = Duration::try_from(now.duration_since(*last)).unwrap_or_default();
    delay.saturating_sub(elapsed)
}

/// When a pod finished, as kube's `getFinishedTime` guesses it: its containers' latest
/// `finishedAt`, else its Ready condition turning False, else its creation.
pub fn finished_at(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let from_containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    let from_ready = || {
        status?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")?
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
    };
    from_containers
        .or_else(from_ready)
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn spec(v: Value) -> JobSpec {
        let mut v = v;
        v["template"] = json!({"spec": {"restartPolicy": "Never", "containers": []}});
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, phase: &str, created: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "creationTimestamp": created},
            "status": {"phase": phase}}),
        )
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const T0: &str = "2026-01-01T00:00:00Z";

    fn run(spec: &JobSpec, pods: &[Pod], now: &str) -> Plan {
        let refs: Vec<&Pod> = pods.iter().collect();
        plan(spec, Some(at(T0)), &refs, &Backoff::default(), at(now))
    }

    #[test]
    fn keeps_parallelism_active_until_completions_are_near() {
        let s = spec(json!({"completions": 5, "parallelism": 2}));
        assert_eq!(run(&s, &[], T0).create, 2);
        let pods = [pod("a", "Running", T0), pod("b", "Succeeded", T0)];
        let p = run(&s, &pods, T0);
        assert_eq!((p.create, p.succeeded, p.active), (1, 1, 2));
        // Four done: only one more is needed.
        let pods: Vec<Pod> = (0..4)
            .map(|i| pod(&format!("s{i}"), "Succeeded", T0))
            .collect();
        assert_eq!(run(&s, &pods, T0).create, 1);
    }

    #[test]
    fn completes_after_completions_successes_and_deletes_the_rest() {
        let s = spec(json!({"completions": 2, "parallelism": 3}));
        let pods = [
            pod("a", "Succeeded", T0),
            pod("b", "Succeeded", T0),
            pod("c", "Running", T0),
        ];
        let p = run(&s, &pods, T0);
        assert_eq!(p.finished, Some(Finish::Complete));
        assert_eq!(p.delete, ["c"]);
        assert_eq!(p.create, 0);
    }

    #[test]
    fn without_completions_one_success_stops_new_pods_and_the_last_one_completes() {
        let s = spec(json!({"parallelism": 2}));
        let pods = [pod("a", "Succeeded", T0), pod("b", "Running", T0)];
        let p = run(&s, &pods, T0);
        assert_eq!((p.finished.clone(), p.create, p.delete.len()), (None, 0, 0));
        let pods = [pod("a", "Succeeded", T0), pod("b", "Failed", T0)];
        assert_eq!(run(&s, &pods, T0).finished, Some(Finish::Complete));
    }

    #[test]
    fn fails_when_failures_exceed_the_backoff_limit() {
        let s = spec(json!({"completions": 1, "backoffLimit": 1}));
        let one = [pod("a", "Failed", T0)];
        assert_eq!(run(&s, &one, "2026-01-01T01:00:00Z").finished, None);
        let two = [pod("a", "Failed", T0), pod("b", "Failed", T0)];
        let p = run(&s, &two, T0);
        assert!(matches!(
            p.finished,
            Some(Finish::Failed {
                reason: "BackoffLimitExceeded",
                ..
            })
        ));
    }

    #[test]
    fn on_failure_counts_container_restarts() {
        let mut s = spec(json!({"completions": 1, "backoffLimit": 2}));
        s.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "a"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "i",
                "imageID": "", "ready": false, "restartCount": 2}]}}))
        .unwrap();
        assert!(matches!(
            run(&s, &[p], T0).finished,
            Some(Finish::Failed { .. })
        ));
    }

    #[test]
    fn fails_past_the_active_deadline_and_waits_for_it_before() {
        let s = spec(json!({"completions": 1, "activeDeadlineSeconds": 30}));
        let pods = [pod("a", "Running", T0)];
        let p = run(&s, &pods, "2026-01-01T00:00:10Z");
        assert_eq!((p.finished, p.wait), (None, Some(Duration::from_secs(20))));
        let p = run(&s, &pods, "2026-01-01T00:00:30Z");
        assert!(matches!(
            p.finished,
            Some(Finish::Failed {
                reason: "DeadlineExceeded",
                ..
            })
        ));
        assert_eq!(p.delete, ["a"]);
    }

    #[test]
    fn backs_off_exponentially_after_failures() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 320, 360]);
        let s = spec(json!({"completions": 1}));
        let pods = [pod("a", "Failed", T0), pod("b", "Failed", T0)];
        let p = run(&s, &pods, "2026-01-01T00:00:05Z");
        assert_eq!((p.create, p.wait), (0, Some(Duration::from_secs(15))));
        assert_eq!(run(&s, &pods, "2026-01-01T00:00:20Z").create, 1);
    }

    #[test]
    fn suspended_job_runs_nothing() {
        let s = spec(json!({"completions": 3, "parallelism": 2, "suspend": true}));
        let pods = [pod("a", "Running", T0)];
        let p = run(&s, &pods, T0);
        assert_eq!((p.create, p.delete.clone()), (0, vec!["a".to_string()]));
    }

    #[test]
    fn indexed_job_creates_the_lowest_missing_indexes() {
        let s = spec(json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}));
        let indexed = |name: &str, phase: &str, i: i32| {
            let mut p = pod(name, phase, T0);
            p.metadata.annotations =
                Some([(indexes::ANNOTATION.to_string(), i.to_string())].into());
            p
        };
        let pods = [indexed("a", "Succeeded", 0), indexed("b", "Running", 1)];
        let p = run(&s, &pods, T0);
        assert_eq!(p.create_indexes, [2]);
        assert_eq!(p.completed_indexes.as_deref(), Some("0"));
        let pods: Vec<Pod> = (0..4)
            .map(|i| indexed(&format!("p{i}"), "Succeeded", i))
            .collect();
        let p = run(&s, &pods, T0);
        assert_eq!(p.finished, Some(Finish::Complete));
        assert_eq!(p.completed_indexes.as_deref(), Some("0-3"));
    }
}
