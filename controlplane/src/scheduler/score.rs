//! The scores: how good a feasible node is for a pod, as pure integer functions (0-100 each,
//! as kube-scheduler's plugins score), summed with weight 1 each:
//!
//! - **least-allocated** (NodeResourcesFit's default strategy): the average over CPU and
//!   memory of the share left free once the pod is there, counting containers that request
//!   nothing at kube-scheduler's non-zero defaults so empty pods spread too;
//! - **spreading** of replicas of the same controller (the old SelectorSpread):
//!   `100 * (max - count) / max` over the candidate nodes, where `count` is this owner's pods
//!   on the node and `max` the largest such count; every node scores 100 when no replica is
//!   placed yet.
//!
//! Integer scores make near-equal nodes tie; ties go to the node with fewer pods, then the
//! smaller name, so decisions are deterministic (kube-scheduler picks randomly among ties).

use super::cache::NodeInfo;
use super::podinfo::PodInfo;

/// The best score one plugin gives.
pub const MAX_NODE_SCORE: u64 = 100;

/// Least-allocated: `(free - pod) * 100 / allocatable`, averaged over CPU and memory.
pub fn least_allocated(pod: &PodInfo<'_>, node: &NodeInfo) -> u64 {
    let used = &node.usage.non_zero;
    let cpu = least_requested(
        used.milli_cpu.saturating_add(pod.non_zero.milli_cpu),
        node.allocatable.milli_cpu,
    );
    let memory = least_requested(
        used.memory.saturating_add(pod.non_zero.memory),
        node.allocatable.memory,
    );
    (cpu + memory) / 2
}

fn least_requested(requested: u64, capacity: u64) -> u64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    // u128: memory in bytes times 100 overflows nothing, but stay safe for exabyte nodes.
    ((capacity - requested) as u128 * MAX_NODE_SCORE as u128 / capacity as u128) as u64
}

/// Spreading: a node holding `count` of the owner's replicas, when the busiest candidate
/// holds `max`.
pub fn spread(count: u32, max: u32) -> u64 {
    if max == 0 {
        return MAX_NODE_SCORE;
    }
    MAX_NODE_SCORE * u64::from(max.saturating_sub(count)) / u64::from(max)
}

/// Whether `a` (with `score_a`) beats `b`: higher score, then fewer pods, then smaller name.
pub fn better(score_a: u64, a: &NodeInfo, score_b: u64, b: &NodeInfo) -> bool {
    (std::cmp::Reverse(score_a), a.usage.pods, a.name.as_str())
        < (std::cmp::Reverse(score_b), b.usage.pods, b.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::{node, pod};
    use crate::scheduler::cache::{Cache, NodeInfo};

    #[test]
    fn least_allocated_prefers_the_emptier_node() {
        let mut cache = Cache::new();
        cache.set_node(&node("busy", "4", "16Gi", 110));
        cache.set_node(&node("idle", "4", "16Gi", 110));
        cache.assume(&pod("x", "2", "8Gi"), "busy");
        let p = pod("a", "1", "4Gi");
        let info = PodInfo::new(&p);
        // busy: cpu (4000-3000)/4000 = 25, memory 25; idle: 75, 75.
        assert_eq!(least_allocated(&info, cache.node("busy").unwrap()), 25);
        assert_eq!(least_allocated(&info, cache.node("idle").unwrap()), 75);
    }

    #[test]
    fn least_allocated_is_zero_when_overcommitted_or_empty() {
        let p = pod("a", "8", "1Gi");
        let info = PodInfo::new(&p);
        let n = NodeInfo::new(&node("n", "4", "16Gi", 110));
        assert_eq!(least_requested(8000, 4000), 0);
        assert!(least_allocated(&info, &n) < 50);
        assert_eq!(least_requested(0, 0), 0);
    }

    #[test]
    fn spreading_scores_fewer_replicas_higher() {
        assert_eq!(spread(0, 0), 100);
        assert_eq!(spread(0, 2), 100);
        assert_eq!(spread(1, 2), 50);
        assert_eq!(spread(2, 2), 0);
    }

    #[test]
    fn ties_go_to_fewer_pods_then_the_smaller_name() {
        let a = NodeInfo::new(&node("a", "4", "16Gi", 110));
        let mut b = NodeInfo::new(&node("b", "4", "16Gi", 110));
        assert!(better(50, &a, 50, &b));
        assert!(better(51, &b, 50, &a));
        b.usage.pods = 0;
        let mut a2 = a.clone();
        a2.usage.pods = 3;
        assert!(better(50, &b, 50, &a2));
    }
}
