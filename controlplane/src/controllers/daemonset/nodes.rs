//! Which nodes a DaemonSet's pod belongs on (`NodeShouldRunDaemonPod`), and the pod spec it
//! gets there: the tolerations every daemon pod has (`AddOrUpdateDaemonPodTolerations`) and a
//! required node affinity on the node's name (`ReplaceDaemonSetPodNodeNameNodeAffinity`), so
//! the scheduler binds it like any pod.

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};

use crate::scheduler::cache::NodeInfo;
use crate::scheduler::filters;
use crate::scheduler::podinfo::PodInfo;

/// Whether a daemon pod should be on a node, and whether one already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// The node selector, required affinity and NoSchedule/NoExecute taints all allow it.
    pub should_run: bool,
    /// A pod already there stays (only an untolerated NoExecute taint, or not matching the
    /// selectors at all, removes it).
    pub should_continue: bool,
}

/// The tolerations every DaemonSet pod gets, as `(key, effect)`; `network-unavailable` only
/// with `hostNetwork`.
fn daemon_tolerations(host_network: bool) -> Vec<(&'static str, &'static str)> {
    let mut list = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        list.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    list
}

/// `spec` with the daemon tolerations added (those already there are not repeated).
pub fn with_daemon_tolerations(mut spec: PodSpec) -> PodSpec {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in daemon_tolerations(spec.host_network.unwrap_or(false)) {
        let toleration = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        };
        if !tolerations.contains(&toleration) {
            tolerations.push(toleration);
        }
    }
    spec
}

/// Pins `spec` to `node`: the required node affinity becomes one term, `metadata.name In
/// [node]` (the DaemonSet controller has already checked the template's own terms).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: its `nodeName`, or the name its affinity pins it to.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|r| {
            match (r.key.as_str(), r.operator.as_str(), r.values.as_deref()) {
                ("metadata.name", "In", Some([one])) => Some(one.clone()),
                _ => None,
            }
        })
    })
}

/// Whether the daemon pod with `spec` (its tolerations already added) belongs on `node`.
pub fn fit(spec: &PodSpec, node: &Node) -> Fit {
    let pod = Pod {
        spec: Some(spec.clone()),
        ..Pod::default()
    };
    let pod = PodInfo::new(&pod);
    let info = NodeInfo::new(node);
    if !filters::matches_node_selector(&pod, &info)
        || !filters::matches_required_affinity(&pod, &info)
    {
        return Fit {
            should_run: false,
            should_continue: false,
        };
    }
    if filters::untolerated_taint(pod.tolerations, &info.taints).is_none() {
        return Fit {
            should_run: true,
            should_continue: true,
        };
    }
    let no_execute: Vec<_> = info
        .taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect();
    Fit {
        should_run: false,
        should_continue: filters::untolerated_taint(pod.tolerations, &no_execute).is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn spec(v: Value) -> PodSpec {
        with_daemon_tolerations(serde_json::from_value(v).unwrap())
    }

    const RUN: Fit = Fit {
        should_run: true,
        should_continue: true,
    };

    #[test]
    fn node_selector_and_required_affinity_choose_nodes() {
        let ssd = node(json!({"metadata": {"name": "a", "labels": {"disk": "ssd"}}}));
        let hdd = node(json!({"metadata": {"name": "b", "labels": {"disk": "hdd"}}}));
        let by_selector = spec(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(fit(&by_selector, &ssd), RUN);
        assert!(!fit(&by_selector, &hdd).should_continue);
        let by_affinity = spec(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}]}}}}));
        assert_eq!(fit(&by_affinity, &hdd), RUN);
        assert!(!fit(&by_affinity, &ssd).should_run);
    }

    #[test]
    fn taints_keep_new_pods_off_and_no_execute_evicts_old_ones() {
        let plain = spec(json!({"containers": []}));
        let tainted = |effect: &str| {
            node(json!({"metadata": {"name": "a"},
                "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": effect}]}}))
        };
        let no_schedule = fit(&plain, &tainted("NoSchedule"));
        assert_eq!(
            (no_schedule.should_run, no_schedule.should_continue),
            (false, true)
        );
        assert_eq!(
            fit(&plain, &tainted("NoExecute")),
            Fit {
                should_run: false,
                should_continue: false
            }
        );
        assert_eq!(fit(&plain, &tainted("PreferNoSchedule")), RUN);
        // Daemon pods tolerate cordons and not-ready nodes by default.
        let cordoned = node(
            json!({"metadata": {"name": "a"}, "spec": {"unschedulable": true,
            "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}}),
        );
        assert_eq!(fit(&plain, &cordoned), RUN);
    }

    #[test]
    fn daemon_tolerations_are_added_once_and_network_unavailable_only_for_host_network() {
        let once = with_daemon_tolerations(spec(json!({"containers": []})));
        assert_eq!(once.tolerations.as_ref().unwrap().len(), 6);
        let host = spec(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(host.tolerations.unwrap().len(), 7);
    }

    #[test]
    fn pinning_replaces_required_terms_with_the_node_name() {
        let mut s = spec(json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}}));
        pin_to_node(&mut s, "n2");
        let required = serde_json::to_value(&s.affinity).unwrap();
        assert_eq!(
            required["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]})
        );
        let pod = Pod {
            spec: Some(s),
            ..Pod::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n2"));
    }
}
