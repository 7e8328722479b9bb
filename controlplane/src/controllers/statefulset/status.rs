//! A StatefulSet's status from its pods (`updateStatefulSetStatus` and
//! `completeRollingUpdate`): counts per revision, and `currentRevision` becoming the update
//! revision once every pod is at it and ready.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod::running_and_ready;
use crate::controllers::history::POD_REVISION_LABEL;
use crate::controllers::pods;

/// The status for `set` with `pods` (its pods, any ordinal).
pub fn compute<'p>(
    set: &StatefulSet,
    pods: impl Iterator<Item = &'p Pod>,
    current: &str,
    update: &str,
    collision_count: i32,
    rolling: bool,
    now: jiff::Timestamp,
) -> StatefulSetStatus {
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let (mut replicas, mut ready, mut available, mut at_current, mut at_update) = (0, 0, 0, 0, 0);
    for pod in pods {
        replicas += 1;
        if running_and_ready(pod) {
            ready += 1;
            if pods::is_available(pod, min_ready, now) == Ok(true) {
                available += 1;
            }
        }
        if pod.metadata.deletion_timestamp.is_none() {
            let revision = pod.labels().get(POD_REVISION_LABEL).map(String::as_str);
            at_update += i32::from(revision == Some(update));
            at_current += i32::from(revision == Some(current));
        }
    }
    let mut current = current.to_string();
    // The rollout is complete: every pod is at the update revision and ready.
    if rolling && at_update == replicas && ready == replicas {
        current = update.to_string();
        at_current = at_update;
    }
    StatefulSetStatus {
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        current_replicas: Some(at_current),
        updated_replicas: Some(at_update),
        current_revision: Some(current),
        update_revision: Some(update.to_string()),
        observed_generation: set.metadata.generation,
        collision_count: Some(collision_count),
        conditions: None,
    }
}

/// Whether `new` differs from `old` in anything this controller writes.
pub fn changed(old: &StatefulSetStatus, new: &StatefulSetStatus) -> bool {
    let counts = |s: &StatefulSetStatus| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
            s.current_replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.observed_generation.unwrap_or(0),
            s.collision_count.unwrap_or(0),
        )
    };
    counts(old) != counts(new)
        || old.current_revision != new.current_revision
        || old.update_revision != new.update_revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, revision: &str, ready: bool) -> Pod {
        let status = if ready {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
        } else {
            json!({"phase": "Pending"})
        };
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {POD_REVISION_LABEL: revision}}, "status": status}))
        .unwrap()
    }

    fn set() -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": 3},
            "spec": {"selector": {}, "template": {}}}))
        .unwrap()
    }

    #[test]
    fn current_revision_follows_once_every_pod_is_updated_and_ready() {
        let now = "2026-01-02T00:00:00Z".parse().unwrap();
        let rolling = [pod("web-0", "old", true), pod("web-1", "new", true)];
        let s = compute(&set(), rolling.iter(), "old", "new", 0, true, now);
        assert_eq!(
            (
                s.replicas,
                s.ready_replicas,
                s.current_replicas,
                s.updated_replicas
            ),
            (2, Some(2), Some(1), Some(1))
        );
        assert_eq!(s.current_revision.as_deref(), Some("old"));
        assert_eq!(s.observed_generation, Some(3));
        let done = [pod("web-0", "new", true), pod("web-1", "new", true)];
        let s = compute(&set(), done.iter(), "old", "new", 0, true, now);
        assert_eq!(s.current_revision.as_deref(), Some("new"));
        assert_eq!(s.current_replicas, Some(2));
        let not_ready = [pod("web-0", "new", true), pod("web-1", "new", false)];
        let s = compute(&set(), not_ready.iter(), "old", "new", 0, true, now);
        assert_eq!(s.current_revision.as_deref(), Some("old"));
        assert!(changed(&StatefulSetStatus::default(), &s));
        assert!(!changed(&s, &s.clone()));
    }
}
