//! Taint-based eviction, the taint manager's decision: which pods on a node with `NoExecute`
//! taints must go, and when. Pure functions over typed taints and tolerations.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

/// When a pod must leave its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every `NoExecute` taint of its node for good.
    Never,
    /// Now: a taint it does not tolerate, or its toleration ran out.
    Now,
    /// At this time, when its shortest toleration runs out.
    At(Timestamp),
}

/// Whether `toleration` tolerates `taint` (`Toleration.ToleratesTaint`): an empty effect or
/// key matches any, `Exists` any value, `Equal` (the default) the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    let key = toleration.key.as_deref().unwrap_or_default();
    if (!effect.is_empty() && effect != taint.effect) || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// When a pod with `tolerations` must leave a node with `taints`, each `NoExecute` taint given
/// with the time it started to count for this pod. Each taint is matched by the pod's first
/// toleration that tolerates it; a toleration without `tolerationSeconds` tolerates for good,
/// one with `tolerationSeconds <= 0` not at all.
pub fn eviction(
    taints: &[(&Taint, Timestamp)],
    tolerations: &[Toleration],
    now: Timestamp,
) -> Eviction {
    let mut due: Option<Timestamp> = None;
    for (taint, since) in taints.iter().filter(|(t, _)| t.effect == "NoExecute") {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Eviction::Now;
        };
        if let Some(seconds) = toleration.toleration_seconds {
            let at = *since + SignedDuration::from_secs(seconds.max(0));
            due = Some(due.map_or(at, |d| d.min(at)));
        }
    }
    match due {
        None => Eviction::Never,
        Some(at) if at <= now => Eviction::Now,
        Some(at) => Eviction::At(at),
    }
}

/// When a pod started to be on its node: its `PodScheduled` condition's transition time, or
/// its creation. A taint counts for a pod from whichever of the two is later, so a pod bound to
/// an already tainted node gets its whole toleration, as the taint manager (which starts its
/// timer when it sees the pod) gives it.
pub fn on_node_since(pod: &Pod) -> Option<Timestamp> {
    let scheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    scheduled.or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn taint(key: &str, effect: &str) -> Taint {
        serde_json::from_value(json!({"key": key, "effect": effect})).unwrap()
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    /// The default tolerations the API server gives every pod.
    fn defaults(seconds: i64) -> Vec<Toleration> {
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ]
        .iter()
        .map(|k| {
            toleration(
                json!({"key": k, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": seconds}),
            )
        })
        .collect()
    }

    #[test]
    fn toleration_matching() {
        let t: Taint = serde_json::from_value(
            json!({"key": "dedicated", "value": "gpu", "effect": "NoExecute"}),
        )
        .unwrap();
        assert!(tolerates(&toleration(json!({"operator": "Exists"})), &t));
        assert!(tolerates(
            &toleration(json!({"key": "dedicated", "value": "gpu"})),
            &t
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "dedicated", "value": "cpu"})),
            &t
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
    }

    #[test]
    fn untolerated_goes_now_tolerated_goes_after_its_seconds() {
        let unreachable = taint("node.kubernetes.io/unreachable", "NoExecute");
        let since = at("2026-01-01T00:00:00Z");
        let taints = [(&unreachable, since)];
        let early = at("2026-01-01T00:01:00Z");
        assert_eq!(eviction(&taints, &[], early), Eviction::Now);
        assert_eq!(
            eviction(&taints, &defaults(300), early),
            Eviction::At(at("2026-01-01T00:05:00Z"))
        );
        assert_eq!(
            eviction(&taints, &defaults(300), at("2026-01-01T00:05:00Z")),
            Eviction::Now
        );
        assert_eq!(eviction(&taints, &defaults(0), early), Eviction::Now);
        let forever = [toleration(json!({"operator": "Exists"}))];
        assert_eq!(eviction(&taints, &forever, early), Eviction::Never);
        let no_schedule = taint("node.kubernetes.io/unreachable", "NoSchedule");
        assert_eq!(
            eviction(&[(&no_schedule, since)], &[], early),
            Eviction::Never,
            "only NoExecute evicts"
        );
    }

    #[test]
    fn the_shortest_toleration_of_several_taints_wins() {
        let unreachable = taint("node.kubernetes.io/unreachable", "NoExecute");
        let custom = taint("example.com/maintenance", "NoExecute");
        let since = at("2026-01-01T00:00:00Z");
        let mut tolerations = defaults(300);
        tolerations.push(toleration(
            json!({"key": "example.com/maintenance", "operator": "Exists", "tolerationSeconds": 60}),
        ));
        assert_eq!(
            eviction(
                &[(&unreachable, since), (&custom, since)],
                &tolerations,
                since
            ),
            Eviction::At(at("2026-01-01T00:01:00Z"))
        );
    }

    #[test]
    fn a_pod_counts_from_when_it_was_scheduled() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True",
                "lastTransitionTime": "2026-01-01T00:00:05Z"}]}}))
        .unwrap();
        assert_eq!(on_node_since(&pod), Some(at("2026-01-01T00:00:05Z")));
    }
}
