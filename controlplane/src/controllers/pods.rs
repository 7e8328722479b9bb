//! What the workload controllers ask of pods: is it active, ready, available; which to delete
//! first when scaling down; the pod a template makes.

use std::cmp::Ordering;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Neither finished (Succeeded/Failed) nor being deleted: it counts toward `replicas`.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_terminal(pod)
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// When the pod's Ready condition last became True, if it is True now.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (condition.status == "True").then(|| {
        condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
    })
}

/// Ready now.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`. `Err(wait)` says how long until it will
/// be, for a ready pod that is not available yet; `Ok(false)` for a pod that is not ready.
pub fn is_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Result<bool, jiff::SignedDuration> {
    let Some(since) = ready_since(pod) else {
        return Ok(false);
    };
    let needed = jiff::SignedDuration::from_secs(i64::from(min_ready_seconds.max(0)));
    let ready_for = now.duration_since(since);
    if ready_for >= needed {
        Ok(true)
    } else {
        Err(needed - ready_for)
    }
}

/// The controller ownerReference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Kubernetes' order for deleting pods when scaling down (`ActivePodsWithRanks`): the pod
/// that sorts first goes first. Unscheduled before scheduled; Pending before Unknown before
/// Running; not ready before ready; ready for less time before longer; more restarts before
/// fewer; newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    let phase_rank = |p: &Pod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| {
                cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
            })
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Ready more recently (a later timestamp) goes first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// The pod a controller makes from its template: `generateName: OWNER-`, the template's
/// labels and annotations, and the owner as its controller.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// A controller ownerReference to an object (`blockOwnerDeletion` as Kubernetes sets it).
pub fn owner_reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn ready(name: &str, since: &str, created: &str) -> Pod {
        pod(
            json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": since}]}}),
        )
    }

    #[test]
    fn scale_down_removes_unscheduled_then_not_ready_then_newest() {
        let unscheduled = pod(json!({"metadata": {"name": "u"}, "spec": {"containers": []}}));
        let pending = pod(
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Pending"}}),
        );
        let old = ready("old", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        let new = ready("new", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z");
        let mut pods = [old, new, pending, unscheduled];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["u", "p", "new", "old"]);
    }

    #[test]
    fn available_after_min_ready_seconds() {
        let p = ready("a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z");
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(is_available(&p, 0, at("2026-01-01T00:00:00Z")), Ok(true));
        assert_eq!(
            is_available(&p, 10, at("2026-01-01T00:00:04Z")),
            Err(jiff::SignedDuration::from_secs(6))
        );
        assert_eq!(is_available(&p, 10, at("2026-01-01T00:00:10Z")), Ok(true));
        let not_ready = pod(json!({"metadata": {"name": "x"}}));
        assert_eq!(
            is_available(&not_ready, 0, at("2026-01-01T00:00:00Z")),
            Ok(false)
        );
    }
}
