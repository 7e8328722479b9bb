//! The filters: whether a pod may run on a node, with Kubernetes' semantics, as pure
//! functions of a [`PodInfo`] and a [`NodeInfo`]. [`check`] runs them in kube-scheduler's
//! plugin order (NodeUnschedulable, TaintToleration, readiness, NodeAffinity,
//! NodeResourcesFit) and stops at the first that fails, as its framework does.

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, Taint, Toleration};

use super::cache::NodeInfo;
use super::podinfo::PodInfo;

/// The taint kube-controller-manager puts on cordoned nodes.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint for nodes whose `Ready` condition is `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint for nodes whose `Ready` condition is `Unknown` (lost heartbeats).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Why a node was filtered out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure<'n> {
    /// `spec.unschedulable` and the pod does not tolerate it.
    Unschedulable,
    /// The first `NoSchedule`/`NoExecute` taint the pod does not tolerate.
    Taint(&'n Taint),
    /// The `Ready` condition is not `True` (and no lifecycle taint says so).
    NotReady,
    /// `spec.nodeSelector` or required node affinity does not match.
    NodeAffinity,
    /// The pod's requests do not fit what is left.
    Resources(Insufficient),
    /// The pod's claims cannot be met here (VolumeBinding, [`super::volumes`]).
    Volumes(super::volumes::Conflicts),
}

/// Which resources did not fit (all of them are reported, as NodeResourcesFit does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Insufficient {
    /// Not enough CPU.
    pub cpu: bool,
    /// Not enough memory.
    pub memory: bool,
    /// The node already holds its `pods` allocatable.
    pub pods: bool,
}

impl Insufficient {
    fn any(self) -> bool {
        self.cpu || self.memory || self.pods
    }
}

/// Runs every filter; `Ok` when the pod may run on the node.
pub fn check<'n>(pod: &PodInfo<'_>, node: &'n NodeInfo) -> Result<(), Failure<'n>> {
    if !node_schedulable(pod, node) {
        return Err(Failure::Unschedulable);
    }
    if let Some(taint) = untolerated_taint(pod.tolerations, &node.taints) {
        return Err(Failure::Taint(taint));
    }
    if !node_ready(pod, node) {
        return Err(Failure::NotReady);
    }
    if !matches_node_selector(pod, node) || !matches_required_affinity(pod, node) {
        return Err(Failure::NodeAffinity);
    }
    let insufficient = fits_resources(pod, node);
    if insufficient.any() {
        return Err(Failure::Resources(insufficient));
    }
    Ok(())
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_schedulable(pod: &PodInfo<'_>, node: &NodeInfo) -> bool {
    !node.unschedulable || tolerates_key(pod.tolerations, TAINT_UNSCHEDULABLE)
}

/// A node whose `Ready` condition is not `True` takes only pods that tolerate
/// `node.kubernetes.io/not-ready:NoSchedule`, the taint kube-controller-manager would put on
/// it; when that (or the unreachable) taint is there, the taint filter already decided.
pub fn node_ready(pod: &PodInfo<'_>, node: &NodeInfo) -> bool {
    node.ready
        || node
            .taints
            .iter()
            .any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
        || tolerates_key(pod.tolerations, TAINT_NOT_READY)
}

fn tolerates_key(tolerations: &[Toleration], key: &str) -> bool {
    tolerations
        .iter()
        .any(|t| tolerates_parts(t, key, "", "NoSchedule"))
}

/// TaintToleration: the first taint among `taints` (already only `NoSchedule`/`NoExecute`)
/// that no toleration tolerates.
pub fn untolerated_taint<'n>(tolerations: &[Toleration], taints: &'n [Taint]) -> Option<&'n Taint> {
    taints
        .iter()
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Whether one toleration tolerates one taint (`Toleration.ToleratesTaint`): an empty
/// effect matches every effect, an empty key with `Exists` every key; `Equal` (the default
/// operator) compares values, `Exists` ignores them.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let value = taint.value.as_deref().unwrap_or_default();
    tolerates_parts(toleration, &taint.key, value, &taint.effect)
}

fn tolerates_parts(toleration: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let wanted = |field: &Option<String>, actual: &str| {
        field.as_deref().is_none_or(|f| f.is_empty() || f == actual)
    };
    if !wanted(&toleration.effect, effect) || !wanted(&toleration.key, key) {
        return false;
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        None | Some("" | "Equal") => toleration.value.as_deref().unwrap_or_default() == value,
        Some(_) => false,
    }
}

/// NodeAffinity, first half: every `spec.nodeSelector` pair is one of the node's labels.
pub fn matches_node_selector(pod: &PodInfo<'_>, node: &NodeInfo) -> bool {
    pod.node_selector.is_none_or(|selector| {
        selector
            .iter()
            .all(|(k, v)| node.labels.get(k).is_some_and(|l| l == v))
    })
}

/// NodeAffinity, second half: `requiredDuringSchedulingIgnoredDuringExecution`.
pub fn matches_required_affinity(pod: &PodInfo<'_>, node: &NodeInfo) -> bool {
    pod.required_affinity
        .is_none_or(|selector| matches_node_selector_terms(selector, node))
}

/// Whether a `NodeSelector` matches: its terms are ORed, each term's requirements ANDed,
/// and a term with no requirements matches nothing (as in Kubernetes).
pub fn matches_node_selector_terms(selector: &NodeSelector, node: &NodeInfo) -> bool {
    selector.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        (!exprs.is_empty() || !fields.is_empty())
            && exprs
                .iter()
                .all(|r| matches_requirement(r, node.labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                r.key == "metadata.name"
                    && matches!(r.operator.as_str(), "In" | "NotIn")
                    && matches_requirement(r, Some(&node.name))
            })
    })
}

/// One `NodeSelectorRequirement` against the value the node has (`None`: no such label).
pub fn matches_requirement(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    let bound = || match values {
        [one] => number(one),
        _ => None,
    };
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((value.and_then(number), bound()), (Some(v), Some(b)) if v > b),
        "Lt" => matches!((value.and_then(number), bound()), (Some(v), Some(b)) if v < b),
        _ => false,
    }
}

/// NodeResourcesFit: one more pod, and its CPU and memory requests, fit in what the node's
/// bound and assumed pods leave of its allocatable. A resource the pod does not request is
/// not checked (so an overcommitted node still takes best-effort pods).
pub fn fits_resources(pod: &PodInfo<'_>, node: &NodeInfo) -> Insufficient {
    let used = &node.usage.requested;
    let free_cpu = node.allocatable.milli_cpu.saturating_sub(used.milli_cpu);
    let free_memory = node.allocatable.memory.saturating_sub(used.memory);
    Insufficient {
        pods: node.usage.pods + 1 > node.allowed_pods,
        cpu: pod.requests.milli_cpu > 0 && pod.requests.milli_cpu > free_cpu,
        memory: pod.requests.memory > 0 && pod.requests.memory > free_memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::cache::{Cache, NodeInfo};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn info(n: k8s_openapi::api::core::v1::Node) -> NodeInfo {
        NodeInfo::new(&n)
    }

    fn with_spec(mut p: Pod, spec: serde_json::Value) -> Pod {
        let mut v = serde_json::to_value(&p).unwrap();
        json_patch::merge(&mut v["spec"], &spec);
        p = serde_json::from_value(v).unwrap();
        p
    }

    fn tainted(key: &str, value: &str, effect: &str) -> NodeInfo {
        let mut n = node("n1", "4", "16Gi", 110);
        n.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": key, "value": value, "effect": effect}]}),
            )
            .unwrap(),
        );
        info(n)
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn a_fitting_pod_passes_every_filter() {
        let p = pod("a", "1", "1Gi");
        assert_eq!(
            check(&PodInfo::new(&p), &info(node("n1", "4", "16Gi", 110))),
            Ok(())
        );
    }

    #[test]
    fn untolerated_taint_rejects_and_a_toleration_admits() {
        let n = tainted("dedicated", "gpu", "NoSchedule");
        let plain = pod("a", "1", "1Gi");
        assert!(matches!(
            check(&PodInfo::new(&plain), &n),
            Err(Failure::Taint(t)) if t.key == "dedicated"
        ));
        let tolerant = with_spec(
            plain,
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert_eq!(check(&PodInfo::new(&tolerant), &n), Ok(()));
    }

    #[test]
    fn prefer_no_schedule_taints_never_filter() {
        let n = tainted("soft", "", "PreferNoSchedule");
        assert!(n.taints.is_empty());
        assert_eq!(check(&PodInfo::new(&pod("a", "1", "1Gi")), &n), Ok(()));
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t = taint("k", "v", "NoExecute");
        assert!(
            tolerates(&toleration(json!({"key": "k", "value": "v"})), &t),
            "Equal is the default, empty effect matches all"
        );
        assert!(!tolerates(
            &toleration(json!({"key": "k", "value": "w"})),
            &t
        ));
        assert!(tolerates(
            &toleration(json!({"key": "k", "operator": "Exists"})),
            &t
        ));
        assert!(
            tolerates(&toleration(json!({"operator": "Exists"})), &t),
            "empty key with Exists tolerates everything"
        );
        assert!(!tolerates(&toleration(json!({"operator": "Equal"})), &t));
        assert!(!tolerates(
            &toleration(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "other", "operator": "Exists"})),
            &t
        ));
    }

    #[test]
    fn cordoned_nodes_take_only_pods_tolerating_unschedulable() {
        let mut n = node("n1", "4", "16Gi", 110);
        n.spec = Some(serde_json::from_value(json!({"unschedulable": true})).unwrap());
        let n = info(n);
        let p = pod("a", "1", "1Gi");
        assert_eq!(check(&PodInfo::new(&p), &n), Err(Failure::Unschedulable));
        let tolerant = with_spec(
            p,
            json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(check(&PodInfo::new(&tolerant), &n), Ok(()));
    }

    #[test]
    fn nodes_that_are_not_ready_are_filtered() {
        let mut n = node("n1", "4", "16Gi", 110);
        n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "Unknown".into();
        let p = pod("a", "1", "1Gi");
        assert_eq!(
            check(&PodInfo::new(&p), &info(n.clone())),
            Err(Failure::NotReady)
        );
        // With the lifecycle taint, the taint is the reason.
        n.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]}),
            )
            .unwrap(),
        );
        assert!(matches!(
            check(&PodInfo::new(&p), &info(n)),
            Err(Failure::Taint(t)) if t.key == TAINT_UNREACHABLE
        ));
    }

    #[test]
    fn node_selector_must_match_labels() {
        let mut n = node("n1", "4", "16Gi", 110);
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("disk".into(), "ssd".into());
        let n = info(n);
        let ssd = with_spec(
            pod("a", "1", "1Gi"),
            json!({"nodeSelector": {"disk": "ssd"}}),
        );
        let hdd = with_spec(
            pod("a", "1", "1Gi"),
            json!({"nodeSelector": {"disk": "hdd"}}),
        );
        assert_eq!(check(&PodInfo::new(&ssd), &n), Ok(()));
        assert_eq!(check(&PodInfo::new(&hdd), &n), Err(Failure::NodeAffinity));
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_affinity_operators() {
        assert!(matches_requirement(&req("k", "In", &["a", "b"]), Some("b")));
        assert!(!matches_requirement(&req("k", "In", &["a"]), None));
        assert!(matches_requirement(&req("k", "NotIn", &["a"]), Some("b")));
        assert!(matches_requirement(&req("k", "NotIn", &["a"]), None));
        assert!(!matches_requirement(&req("k", "NotIn", &["a"]), Some("a")));
        assert!(matches_requirement(&req("k", "Exists", &[]), Some("")));
        assert!(!matches_requirement(&req("k", "Exists", &[]), None));
        assert!(matches_requirement(&req("k", "DoesNotExist", &[]), None));
        assert!(matches_requirement(&req("k", "Gt", &["4"]), Some("8")));
        assert!(!matches_requirement(&req("k", "Gt", &["8"]), Some("8")));
        assert!(matches_requirement(&req("k", "Lt", &["8"]), Some("-1")));
        assert!(!matches_requirement(&req("k", "Lt", &["8"]), Some("x")));
        assert!(!matches_requirement(
            &req("k", "Gt", &["1", "2"]),
            Some("8")
        ));
        assert!(!matches_requirement(&req("k", "Bogus", &[]), Some("8")));
    }

    #[test]
    fn affinity_terms_are_ored_and_expressions_anded() {
        let mut n = node("n1", "4", "16Gi", 110);
        n.metadata.labels.as_mut().unwrap().extend([
            ("zone".to_string(), "a".to_string()),
            ("cores".to_string(), "16".to_string()),
        ]);
        let n = info(n);
        let with = |terms: serde_json::Value| {
            with_spec(
                pod("a", "1", "1Gi"),
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
            )
        };
        let anded = with(json!([{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "cores", "operator": "Gt", "values": ["32"]},
        ]}]));
        assert_eq!(check(&PodInfo::new(&anded), &n), Err(Failure::NodeAffinity));
        let ored = with(json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["32"]}]},
        ]));
        assert_eq!(check(&PodInfo::new(&ored), &n), Ok(()));
        let by_name = with(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
        );
        assert_eq!(check(&PodInfo::new(&by_name), &n), Ok(()));
        let other_name = with(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]),
        );
        assert_eq!(
            check(&PodInfo::new(&other_name), &n),
            Err(Failure::NodeAffinity)
        );
        let empty_term = with(json!([{}]));
        assert_eq!(
            check(&PodInfo::new(&empty_term), &n),
            Err(Failure::NodeAffinity)
        );
    }

    #[test]
    fn requests_must_fit_what_bound_pods_leave() {
        let mut cache = Cache::new();
        cache.set_node(&node("n1", "2", "4Gi", 2));
        cache.assume(&pod("x", "1500m", "3Gi"), "n1");
        let n = cache.node("n1").unwrap();
        let big = pod("a", "1", "2Gi");
        assert_eq!(
            check(&PodInfo::new(&big), n),
            Err(Failure::Resources(Insufficient {
                cpu: true,
                memory: true,
                pods: false
            }))
        );
        assert_eq!(check(&PodInfo::new(&pod("b", "500m", "1Gi")), n), Ok(()));
        cache.assume(&pod("y", "0", "0"), "n1");
        let n = cache.node("n1").unwrap();
        assert_eq!(
            check(&PodInfo::new(&pod("c", "0", "0")), n),
            Err(Failure::Resources(Insufficient {
                pods: true,
                ..Default::default()
            }))
        );
    }

    #[test]
    fn best_effort_pods_fit_an_overcommitted_node() {
        let mut cache = Cache::new();
        cache.set_node(&node("n1", "1", "1Gi", 10));
        cache.update_pod(&crate::scheduler::cache::tests::bound(
            pod("x", "2", "2Gi"),
            "n1",
        ));
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "be"}, "spec": {"containers": [{"name": "c"}]}}),
        )
        .unwrap();
        assert_eq!(check(&PodInfo::new(&p), cache.node("n1").unwrap()), Ok(()));
    }
}
