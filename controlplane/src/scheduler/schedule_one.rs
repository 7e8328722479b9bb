//! One scheduling decision (kube-scheduler's `schedule_one.go`): filter the cache's nodes,
//! score the feasible ones, pick the best; or explain, as kube-scheduler does, why no node
//! fits.
//!
//! Like kube-scheduler, large clusters are not filtered exhaustively: the search stops once
//! it has found `percentageOfNodesToScore` of the nodes feasible (adaptive by default: 42% of
//! 1,000 nodes, 10% of 5,000, never fewer than 100), starting at a node chosen per pod so
//! successive pods look at different parts of the cluster. Clusters under 100 nodes are
//! always searched completely. The start is a hash of the pod's key (kube-scheduler rotates a
//! counter) so the decision stays a pure function of the pod and the cache.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use super::cache::{Cache, NodeInfo};
use super::filters::{self, Failure};
use super::podinfo::PodInfo;
use super::score;
use super::volumes::{self, PodVolumes};

/// Below this many nodes every node is examined (`minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The smallest adaptive percentage (`minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Why a pod fits no node; its `Display` is kube-scheduler's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FitError {
    /// The cluster has no nodes.
    NoNodes,
    /// A PreFilter rejected the pod on every node (its claims, [`super::volumes`]).
    PreFilter {
        /// How many nodes the cluster has.
        nodes: usize,
        /// The plugin's reason.
        message: String,
    },
    /// Every node was filtered out, for these reasons.
    NoFit {
        /// How many nodes were examined (all of them).
        nodes: usize,
        /// `(reason, how many nodes)`; a node may give several reasons (resources).
        reasons: BTreeMap<String, usize>,
    },
}

impl std::error::Error for FitError {}

impl fmt::Display for FitError {
    /// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint
    /// {node.kubernetes.io/unreachable: }.`, the histogram sorted as kube-scheduler sorts its
    /// strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::NoNodes => f.write_str("no nodes available to schedule pods"),
            FitError::PreFilter { nodes, message } => {
                write!(f, "0/{nodes} nodes are available: {message}.")
            }
            FitError::NoFit { nodes, reasons } => {
                let mut parts: Vec<String> =
                    reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                parts.sort();
                write!(f, "0/{nodes} nodes are available: {}.", parts.join(", "))
            }
        }
    }
}

/// Tallies filter failures while searching; turned into a [`FitError`] only if nothing fits.
#[derive(Default)]
struct Diagnosis<'n> {
    unschedulable: usize,
    not_ready: usize,
    affinity: usize,
    cpu: usize,
    memory: usize,
    pods: usize,
    volume_affinity: usize,
    volume_bind: usize,
    volume_missing: usize,
    taints: Vec<((&'n str, &'n str), usize)>,
}

impl<'n> Diagnosis<'n> {
    fn record(&mut self, failure: Failure<'n>) {
        match failure {
            Failure::Unschedulable => self.unschedulable += 1,
            Failure::NotReady => self.not_ready += 1,
            Failure::NodeAffinity => self.affinity += 1,
            Failure::Resources(r) => {
                self.cpu += usize::from(r.cpu);
                self.memory += usize::from(r.memory);
                self.pods += usize::from(r.pods);
            }
            Failure::Volumes(c) => {
                self.volume_affinity += usize::from(c.node_affinity);
                self.volume_bind += usize::from(c.bind);
                self.volume_missing += usize::from(c.missing_volume);
            }
            Failure::Taint(t) => {
                let id = (t.key.as_str(), t.value.as_deref().unwrap_or_default());
                match self.taints.iter_mut().find(|(k, _)| *k == id) {
                    Some((_, n)) => *n += 1,
                    None => self.taints.push((id, 1)),
                }
            }
        }
    }

    fn into_error(self, nodes: usize) -> FitError {
        let mut reasons = BTreeMap::new();
        for (reason, n) in [
            ("node(s) were unschedulable", self.unschedulable),
            ("node(s) were not ready", self.not_ready),
            (
                "node(s) didn't match Pod's node affinity/selector",
                self.affinity,
            ),
            ("Insufficient cpu", self.cpu),
            ("Insufficient memory", self.memory),
            ("Too many pods", self.pods),
            (volumes::NODE_CONFLICT, self.volume_affinity),
            (volumes::BIND_CONFLICT, self.volume_bind),
            (volumes::PV_NOT_EXIST, self.volume_missing),
        ] {
            if n > 0 {
                reasons.insert(reason.to_string(), n);
            }
        }
        for ((key, value), n) in self.taints {
            reasons.insert(
                format!("node(s) had untolerated taint {{{key}: {value}}}"),
                n,
            );
        }
        FitError::NoFit { nodes, reasons }
    }
}

/// How many feasible nodes to find among `all` before scoring (`numFeasibleNodesToFind`);
/// `percentage` 0 is the adaptive default.
pub fn feasible_nodes_to_find(all: usize, percentage: u32) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let percentage = match percentage as usize {
        0 => 50usize
            .saturating_sub(all / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
        p => p.min(100),
    };
    (all * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Picks the node for `pod` from `cache`: every filter must pass; the highest summed score
/// wins. Pure: the caller records the decision ([`Cache::assume`]) and binds.
pub fn schedule_one(pod: &Pod, cache: &Cache) -> Result<String, FitError> {
    schedule_with_volumes(pod, cache, &PodVolumes::default())
}

/// [`schedule_one`] for a pod whose claims were looked up ([`volumes::prefilter`]).
pub fn schedule_with_volumes(
    pod: &Pod,
    cache: &Cache,
    volumes: &PodVolumes,
) -> Result<String, FitError> {
    let info = PodInfo::new(pod);
    let start = start_index(pod);
    select(&info, volumes, cache, start).map(|n| n.name.clone())
}

/// [`schedule_one`] for a pod already turned into a [`PodInfo`], starting the search at node
/// `start` (modulo the node count).
pub fn select<'c>(
    pod: &PodInfo<'_>,
    volumes: &PodVolumes,
    cache: &'c Cache,
    start: usize,
) -> Result<&'c NodeInfo, FitError> {
    let nodes = cache.nodes();
    if nodes.is_empty() {
        return Err(FitError::NoNodes);
    }
    let wanted = feasible_nodes_to_find(nodes.len(), cache.percentage_of_nodes_to_score());
    let start = start % nodes.len();
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(wanted.min(1024));
    let mut diagnosis = Diagnosis::default();
    for node in nodes[start..].iter().chain(&nodes[..start]) {
        let fits = filters::check(pod, node).and_then(|()| {
            // VolumeBinding runs after the resource filters, as in kube-scheduler.
            let conflicts = volumes.check(node);
            if conflicts.any() {
                Err(Failure::Volumes(conflicts))
            } else {
                Ok(())
            }
        });
        match fits {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= wanted {
                    break;
                }
            }
            Err(failure) => diagnosis.record(failure),
        }
    }
    if feasible.is_empty() {
        return Err(diagnosis.into_error(nodes.len()));
    }
    Ok(best(pod, &feasible))
}

/// The best-scoring of `feasible` (not empty).
fn best<'c>(pod: &PodInfo<'_>, feasible: &[&'c NodeInfo]) -> &'c NodeInfo {
    let max_replicas = pod.owner.map_or(0, |owner| {
        feasible
            .iter()
            .map(|n| n.usage.owner_count(owner))
            .max()
            .unwrap_or(0)
    });
    let score_of = |node: &NodeInfo| {
        let spread = match pod.owner {
            Some(owner) if max_replicas > 0 => {
                score::spread(node.usage.owner_count(owner), max_replicas)
            }
            _ => score::MAX_NODE_SCORE,
        };
        score::least_allocated(pod, node) + spread
    };
    let mut best = feasible[0];
    let mut best_score = score_of(best);
    for &node in &feasible[1..] {
        let s = score_of(node);
        if score::better(s, node, best_score, best) {
            best = node;
            best_score = s;
        }
    }
    best
}

/// Where a pod's search starts: FNV-1a of its namespace and name.
fn start_index(pod: &Pod) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for b in ns.bytes().chain([b'/']).chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, owned, pod};
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn cluster(nodes: &[Node]) -> Cache {
        let mut cache = Cache::new();
        for n in nodes {
            cache.set_node(n);
        }
        cache
    }

    /// Schedules `pods` one after another, assuming each; returns the chosen nodes.
    fn place(cache: &mut Cache, pods: &[Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| {
                let n = schedule_one(p, cache).unwrap();
                cache.assume(p, &n);
                n
            })
            .collect()
    }

    fn counts(placed: &[String]) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for n in placed {
            *m.entry(n.as_str()).or_default() += 1;
        }
        m
    }

    fn three_equal_nodes() -> Cache {
        cluster(&[
            node("n1", "4", "16Gi", 110),
            node("n2", "4", "16Gi", 110),
            node("n3", "4", "16Gi", 110),
        ])
    }

    #[test]
    fn four_replicas_on_three_equal_nodes_land_two_one_one() {
        let mut cache = three_equal_nodes();
        let pods: Vec<Pod> = (0..4)
            .map(|i| owned(pod(&format!("web-{i}"), "100m", "128Mi"), "rs-web"))
            .collect();
        let placed = place(&mut cache, &pods);
        let mut c: Vec<usize> = counts(&placed).into_values().collect();
        c.sort();
        assert_eq!(c, [1, 1, 2]);
    }

    #[test]
    fn three_replicas_on_three_nodes_land_one_each() {
        let mut cache = three_equal_nodes();
        let pods: Vec<Pod> = (0..3)
            .map(|i| owned(pod(&format!("web-{i}"), "100m", "128Mi"), "rs-web"))
            .collect();
        assert_eq!(counts(&place(&mut cache, &pods)).len(), 3);
    }

    #[test]
    fn replicas_spread_even_without_requests() {
        let mut cache = three_equal_nodes();
        let pods: Vec<Pod> = (0..6)
            .map(|i| {
                let p: Pod = serde_json::from_value(json!({"metadata": {"name": format!("p{i}"), "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}})).unwrap();
                owned(p, "rs")
            })
            .collect();
        let c: Vec<usize> = counts(&place(&mut cache, &pods)).into_values().collect();
        assert_eq!(c, [2, 2, 2]);
    }

    #[test]
    fn resources_fill_a_node_then_go_to_the_next() {
        // n1 is bigger, so least-allocated prefers it while it has more room left; once both
        // would be full the tie goes to the node with fewer pods; then only n1 has room.
        let mut cache = cluster(&[node("n1", "4", "8Gi", 110), node("n2", "1", "2Gi", 110)]);
        let pods: Vec<Pod> = (0..5).map(|i| pod(&format!("p{i}"), "1", "2Gi")).collect();
        let placed = place(&mut cache, &pods);
        assert_eq!(placed, ["n1", "n1", "n1", "n2", "n1"]);
        let err = schedule_one(&pod("p5", "1", "2Gi"), &cache).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."
        );
    }

    #[test]
    fn assumed_pods_keep_a_burst_from_overcommitting_a_node() {
        let mut cache = cluster(&[node("n1", "2", "4Gi", 110)]);
        let a = pod("a", "1500m", "1Gi");
        let n = schedule_one(&a, &cache).unwrap();
        cache.assume(&a, &n);
        // Nothing watched yet: only the assumption stops the second pod.
        assert!(matches!(
            schedule_one(&pod("b", "1", "1Gi"), &cache),
            Err(FitError::NoFit { .. })
        ));
        cache.forget("default/a");
        assert_eq!(schedule_one(&pod("b", "1", "1Gi"), &cache).unwrap(), "n1");
    }

    #[test]
    fn taints_without_toleration_steer_pods_away() {
        let mut tainted = node("n1", "4", "16Gi", 110);
        tainted.spec = Some(
            serde_json::from_value(
                json!({"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}),
            )
            .unwrap(),
        );
        let mut cache = cluster(&[tainted, node("n2", "1", "1Gi", 110)]);
        cache.assume(&pod("x", "500m", "512Mi"), "n2");
        assert_eq!(
            schedule_one(&pod("a", "100m", "64Mi"), &cache).unwrap(),
            "n2"
        );
        let mut tolerant = pod("b", "100m", "64Mi");
        tolerant.spec.as_mut().unwrap().tolerations = Some(vec![
            serde_json::from_value(json!({"key": "gpu", "operator": "Exists"})).unwrap(),
        ]);
        assert_eq!(
            schedule_one(&tolerant, &cache).unwrap(),
            "n1",
            "the emptier node once tolerated"
        );
    }

    #[test]
    fn failure_message_aggregates_reasons_like_kube_scheduler() {
        let mut unreachable = node("n1", "4", "16Gi", 110);
        unreachable.spec = Some(
            serde_json::from_value(json!({"taints": [
                {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            ]}))
            .unwrap(),
        );
        let mut cache = cluster(&[
            unreachable,
            node("n2", "1", "1Gi", 110),
            node("n3", "1", "1Gi", 110),
        ]);
        let err = schedule_one(&pod("a", "500m", "2Gi"), &cache).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient memory."
        );
        let mut cordoned = node("n4", "4", "16Gi", 110);
        cordoned.spec = Some(serde_json::from_value(json!({"unschedulable": true})).unwrap());
        cache.set_node(&cordoned);
        let mut picky = pod("b", "100m", "64Mi");
        picky.spec.as_mut().unwrap().node_selector =
            Some([("disk".to_string(), "ssd".to_string())].into());
        assert_eq!(
            schedule_one(&picky, &cache).unwrap_err().to_string(),
            "0/4 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, \
             1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector."
        );
    }

    #[test]
    fn no_nodes_says_so() {
        let err = schedule_one(&pod("a", "1", "1Gi"), &Cache::new()).unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn large_clusters_are_sampled_like_kube_scheduler() {
        assert_eq!(feasible_nodes_to_find(50, 0), 50);
        assert_eq!(feasible_nodes_to_find(1000, 0), 420);
        assert_eq!(feasible_nodes_to_find(5000, 0), 500);
        assert_eq!(feasible_nodes_to_find(100_000, 0), 5000);
        assert_eq!(feasible_nodes_to_find(200, 10), 100);
        assert_eq!(feasible_nodes_to_find(5000, 100), 5000);
    }
}
