//! A node's health as the node lifecycle controller judges it: when it last showed a heartbeat,
//! the conditions it gets once that is too long ago, and the taints its conditions call for.
//! Pure functions over the typed Node and Lease.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The taint of a node that stopped posting status (`Ready=Unknown`).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node that says it is not ready (`Ready=False`).
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The taints this controller owns, with the condition (type and status) behind each
/// `NoSchedule` one; `unschedulable` follows `spec.unschedulable` instead.
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    (NOT_READY, "Ready", "False"),
    (UNREACHABLE, "Ready", "Unknown"),
    (
        "node.kubernetes.io/memory-pressure",
        "MemoryPressure",
        "True",
    ),
    ("node.kubernetes.io/disk-pressure", "DiskPressure", "True"),
    ("node.kubernetes.io/pid-pressure", "PIDPressure", "True"),
    (
        "node.kubernetes.io/network-unavailable",
        "NetworkUnavailable",
        "True",
    ),
];
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The conditions that turn `Unknown` with Ready when the node goes quiet.
const STATUS_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// When the node last showed it is alive: the newer of its Lease's `renewTime` and its Ready
/// condition's `lastHeartbeatTime`, or its creation when it has shown neither.
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    renewed
        .max(posted)
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The node's condition of `type_`.
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `Ready`'s status (`True`, `False`, `Unknown`), if the node has posted one.
pub fn ready(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// The node's conditions once its heartbeat is older than `grace` at `now`: Ready and the
/// pressure conditions `Unknown` (a Ready it never posted is added, `NodeStatusNeverUpdated`).
/// `None` while the heartbeat is fresh or the conditions already say so.
pub fn silent_conditions(
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: SignedDuration,
) -> Option<Vec<NodeCondition>> {
    let heartbeat = last_heartbeat(node, lease)?;
    if now.duration_since(heartbeat) <= grace {
        return None;
    }
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for c in conditions
        .iter_mut()
        .filter(|c| STATUS_CONDITIONS.contains(&c.type_.as_str()) && c.status != "Unknown")
    {
        c.status = "Unknown".into();
        c.reason = Some("NodeStatusUnknown".into());
        c.message = Some("Kubelet stopped posting node status.".into());
        c.last_transition_time = Some(Time(now));
        changed = true;
    }
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusNeverUpdated".into()),
            message: Some("Kubelet never posted node status.".into()),
            last_heartbeat_time: node.metadata.creation_timestamp.clone(),
            last_transition_time: Some(Time(now)),
        });
        changed = true;
    }
    changed.then_some(conditions)
}

/// The taints the node should carry: everyone else's as they are, then the ones this
/// controller owns as the node's conditions call for them. `NoExecute` taints (not-ready,
/// unreachable; only when `evict`) keep the `timeAdded` they have, or get `now`.
pub fn wanted_taints(node: &Node, now: Timestamp, evict: bool) -> Vec<Taint> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let owned = |t: &Taint| {
        t.key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(key, _, _)| *key == t.key)
    };
    let mut wanted: Vec<Taint> = current.iter().filter(|t| !owned(t)).cloned().collect();
    let kept = |key: &str, effect: &str| {
        current
            .iter()
            .find(|t| t.key == key && t.effect == effect)
            .cloned()
    };
    for (key, type_, status) in CONDITION_TAINTS {
        if condition(node, type_).is_none_or(|c| c.status != *status) {
            continue;
        }
        wanted.push(kept(key, "NoSchedule").unwrap_or_else(|| taint(key, "NoSchedule", None)));
        if evict && (*key == NOT_READY || *key == UNREACHABLE) {
            wanted
                .push(kept(key, "NoExecute").unwrap_or_else(|| taint(key, "NoExecute", Some(now))));
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        wanted.push(
            kept(UNSCHEDULABLE, "NoSchedule")
                .unwrap_or_else(|| taint(UNSCHEDULABLE, "NoSchedule", None)),
        );
    }
    wanted
}

fn taint(key: &str, effect: &str, added: Option<Timestamp>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: added.map(Time),
        value: None,
    }
}

/// Whether two taint lists hold the same taints (order aside).
pub fn same_taints(a: &[Taint], b: &[Taint]) -> bool {
    a.len() == b.len() && a.iter().all(|t| b.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn node(ready: &str, heartbeat: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n1",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat},
                {"type": "Ready", "status": ready, "reason": "KubeletReady",
                    "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
        .unwrap()
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"renewTime": renewed}}))
            .unwrap()
    }

    const GRACE: SignedDuration = SignedDuration::from_secs(50);

    #[test]
    fn the_newer_of_lease_and_status_is_the_heartbeat() {
        let n = node("True", "2026-01-01T00:01:00Z");
        assert_eq!(last_heartbeat(&n, None), Some(at("2026-01-01T00:01:00Z")));
        let renewed = lease("2026-01-01T00:05:00.123456Z");
        assert_eq!(
            last_heartbeat(&n, Some(&renewed)),
            Some(at("2026-01-01T00:05:00.123456Z"))
        );
        // A fresh lease keeps a node whose status is old alive.
        let now = at("2026-01-01T00:05:30Z");
        assert!(silent_conditions(&n, Some(&renewed), now, GRACE).is_none());
        assert!(silent_conditions(&n, None, now, GRACE).is_some());
    }

    #[test]
    fn a_silent_node_turns_unknown_once() {
        let n = node("True", "2026-01-01T00:01:00Z");
        let now = at("2026-01-01T00:02:00Z");
        let conditions = silent_conditions(&n, None, now, GRACE).unwrap();
        for c in &conditions {
            assert_eq!(c.status, "Unknown", "{}", c.type_);
            assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet stopped posting node status.")
            );
            assert_eq!(c.last_transition_time, Some(Time(now)));
        }
        assert_eq!(
            conditions[1].last_heartbeat_time,
            Some(Time(at("2026-01-01T00:01:00Z"))),
            "the heartbeat is the kubelet's, kept"
        );
        let mut marked = n.clone();
        marked.status.as_mut().unwrap().conditions = Some(conditions);
        assert!(silent_conditions(&marked, None, now, GRACE).is_none());
        let fresh = at("2026-01-01T00:01:40Z");
        assert!(silent_conditions(&n, None, fresh, GRACE).is_none());
    }

    #[test]
    fn a_node_that_never_posted_gets_a_ready_unknown() {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
        )
        .unwrap();
        let conditions = silent_conditions(&n, None, at("2026-01-01T00:01:00Z"), GRACE).unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].reason.as_deref(),
            Some("NodeStatusNeverUpdated")
        );
    }

    #[test]
    fn taints_follow_readiness_and_keep_time_added_and_others() {
        let now = at("2026-01-01T00:02:00Z");
        let keys = |ts: &[Taint]| -> Vec<String> {
            ts.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        };
        let unknown = node("Unknown", "2026-01-01T00:01:00Z");
        let wanted = wanted_taints(&unknown, now, true);
        assert_eq!(
            keys(&wanted),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert_eq!(wanted[2].time_added, Some(Time(now)));
        let mut tainted = unknown.clone();
        tainted.spec.as_mut().unwrap().taints = Some(wanted.clone());
        let later = wanted_taints(&tainted, at("2026-01-01T00:09:00Z"), true);
        assert!(same_taints(&later, &wanted), "timeAdded stays");
        let not_ready = node("False", "2026-01-01T00:01:00Z");
        assert_eq!(
            keys(&wanted_taints(&not_ready, now, true))[1..],
            [
                "node.kubernetes.io/not-ready:NoSchedule",
                "node.kubernetes.io/not-ready:NoExecute"
            ]
        );
        let mut healthy = node("True", "2026-01-01T00:01:00Z");
        healthy.spec = tainted.spec.clone();
        assert_eq!(
            keys(&wanted_taints(&healthy, now, true)),
            ["dedicated:NoSchedule"]
        );
        assert_eq!(
            keys(&wanted_taints(&unknown, now, false))[1..],
            ["node.kubernetes.io/unreachable:NoSchedule"],
            "no eviction taint while every node is down"
        );
        healthy.spec.as_mut().unwrap().unschedulable = Some(true);
        assert_eq!(
            keys(&wanted_taints(&healthy, now, true))[1..],
            ["node.kubernetes.io/unschedulable:NoSchedule"]
        );
    }
}
