//! The scheduler's node-info cache: per node, what the filters and scores read (readiness,
//! labels, taints, allocatable) and what the pods bound to it use (summed requests, pod
//! count, replicas per owner), kept up to date from the Node and Pod reflectors' events.
//!
//! Pods this scheduler has just bound are *assumed*: they count on their node at once,
//! before the watch shows them bound, so a burst of decisions cannot overcommit a node
//! (kube-scheduler's `AssumePod` / `FinishBinding` / `ForgetPod`). The watch event that shows
//! the pod bound replaces the assumption; a failed bind forgets it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};

use super::podinfo::{self, Resources, bound_node, controller_uid, is_terminal, pod_key};
use super::quantity;

/// What the pods on one node use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Summed requests of the pods bound (or assumed) here.
    pub requested: Resources,
    /// The same with kube-scheduler's non-zero defaults, for scoring.
    pub non_zero: Resources,
    /// How many non-terminal pods are bound (or assumed) here.
    pub pods: u64,
    /// Pods per controller uid, sorted by uid.
    owners: Vec<(Box<str>, u32)>,
}

impl NodeUsage {
    /// How many pods of the controller `uid` are on this node.
    pub fn owner_count(&self, uid: &str) -> u32 {
        self.owners
            .binary_search_by(|(o, _)| (**o).cmp(uid))
            .map_or(0, |i| self.owners[i].1)
    }

    fn add(&mut self, pod: &PodEntry) {
        self.requested.add(pod.requests);
        self.non_zero.add(pod.non_zero);
        self.pods += 1;
        if let Some(owner) = &pod.owner {
            match self.owners.binary_search_by(|(o, _)| o.cmp(owner)) {
                Ok(i) => self.owners[i].1 += 1,
                Err(i) => self.owners.insert(i, (owner.clone(), 1)),
            }
        }
    }

    fn remove(&mut self, pod: &PodEntry) {
        self.requested.sub(pod.requests);
        self.non_zero.sub(pod.non_zero);
        self.pods = self.pods.saturating_sub(1);
        if let Some(owner) = &pod.owner
            && let Ok(i) = self.owners.binary_search_by(|(o, _)| o.cmp(owner))
        {
            self.owners[i].1 -= 1;
            if self.owners[i].1 == 0 {
                self.owners.remove(i);
            }
        }
    }
}

/// What the scheduler knows about one node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its `NoSchedule` and `NoExecute` taints (`PreferNoSchedule` never filters).
    pub taints: Vec<Taint>,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `status.allocatable` cpu and memory (capacity when allocatable is missing).
    pub allocatable: Resources,
    /// `status.allocatable` pods.
    pub allowed_pods: u64,
    /// What its pods use.
    pub usage: NodeUsage,
}

impl NodeInfo {
    /// The scheduling-relevant view of `node`, with nothing bound yet.
    pub fn new(node: &Node) -> NodeInfo {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let resources = status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref()));
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
                .cloned()
                .collect(),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: resources.map(podinfo::resources_of).unwrap_or_default(),
            allowed_pods: resources
                .and_then(|r| r.get("pods"))
                .and_then(|q| quantity::units(&q.0))
                .unwrap_or(0),
            usage: NodeUsage::default(),
        }
    }

    /// Whether everything the filters read is the same (heartbeats change nothing here).
    fn same_constraints(&self, other: &NodeInfo) -> bool {
        self.labels == other.labels
            && self.taints == other.taints
            && self.ready == other.ready
            && self.unschedulable == other.unschedulable
            && self.allocatable == other.allocatable
            && self.allowed_pods == other.allowed_pods
    }
}

/// One pod counted on a node.
#[derive(Debug, Clone)]
struct PodEntry {
    node: String,
    requests: Resources,
    non_zero: Resources,
    owner: Option<Box<str>>,
    /// Assumed by this scheduler (not yet seen bound); `true` once its bind succeeded.
    assumed: Option<bool>,
}

impl PodEntry {
    fn new(pod: &Pod, node: &str, assumed: Option<bool>) -> PodEntry {
        let info = podinfo::PodInfo::new(pod);
        PodEntry {
            node: node.to_string(),
            requests: info.requests,
            non_zero: info.non_zero,
            owner: controller_uid(pod).map(Box::from),
            assumed,
        }
    }
}

/// The node-info cache. Node order is arrival order; decisions break ties by name, so
/// they do not depend on it.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    /// Usage of pods bound to nodes the cache does not have (yet, or any more).
    orphans: HashMap<String, NodeUsage>,
    /// kube-scheduler's `percentageOfNodesToScore`; 0 is its adaptive default.
    percentage_of_nodes_to_score: u32,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Sets `percentageOfNodesToScore` (1-100; 0 = adaptive, kube-scheduler's default): how
    /// many feasible nodes a decision looks for before it stops filtering, in large clusters.
    pub fn set_percentage_of_nodes_to_score(&mut self, percentage: u32) {
        self.percentage_of_nodes_to_score = percentage.min(100);
    }

    /// The configured `percentageOfNodesToScore`.
    pub fn percentage_of_nodes_to_score(&self) -> u32 {
        self.percentage_of_nodes_to_score
    }

    /// Every node, in arrival order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// One node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Adds or updates a node; `true` when something the filters read changed (a new node
    /// counts), which may make unschedulable pods fit.
    pub fn set_node(&mut self, node: &Node) -> bool {
        let mut info = NodeInfo::new(node);
        match self.index.get(&info.name) {
            Some(&i) => {
                info.usage = std::mem::take(&mut self.nodes[i].usage);
                let changed = !self.nodes[i].same_constraints(&info);
                self.nodes[i] = info;
                changed
            }
            None => {
                info.usage = self.orphans.remove(&info.name).unwrap_or_default();
                self.index.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
                true
            }
        }
    }

    /// Removes a node; its pods' usage is kept in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        if info.usage != NodeUsage::default() {
            self.orphans.insert(info.name, info.usage);
        }
    }

    /// Records a pod as the watch shows it: a bound, unfinished pod counts on its node
    /// (replacing an assumption); a finished one counts nowhere; an unbound one changes
    /// nothing (an assumption stays until the watch catches up). `true` when this freed
    /// resources on some node.
    pub fn update_pod(&mut self, pod: &Pod) -> bool {
        let key = pod_key(pod);
        match bound_node(pod) {
            Some(node) if !is_terminal(pod) => {
                let entry = PodEntry::new(pod, node, None);
                let freed = self.pods.get(&key).is_some_and(|old| {
                    old.node != entry.node
                        || old.requests.milli_cpu > entry.requests.milli_cpu
                        || old.requests.memory > entry.requests.memory
                });
                self.remove_entry(&key);
                self.insert_entry(key, entry);
                freed
            }
            Some(_) => self.remove_entry(&key),
            None if is_terminal(pod) => self.remove_entry(&key),
            None => false,
        }
    }

    /// Forgets a deleted pod; `true` when it was counted somewhere.
    pub fn remove_pod(&mut self, pod: &Pod) -> bool {
        self.remove_entry(&pod_key(pod))
    }

    /// Counts `pod` on `node` now, before its bind is confirmed.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let key = pod_key(pod);
        self.remove_entry(&key);
        self.insert_entry(key, PodEntry::new(pod, node, Some(false)));
    }

    /// The assumed pod `key`'s bind succeeded; it stays counted until the watch shows it.
    pub fn finish_binding(&mut self, key: &str) {
        if let Some(PodEntry {
            assumed: Some(done),
            ..
        }) = self.pods.get_mut(key)
        {
            *done = true;
        }
    }

    /// The assumed pod `key`'s bind failed: it no longer counts.
    pub fn forget(&mut self, key: &str) {
        if self.is_assumed(key) {
            self.remove_entry(key);
        }
    }

    /// Whether `key` is assumed (decided, not yet seen bound).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed.is_some())
    }

    /// Rebuilds from complete lists (after a watch (re)start), keeping assumed pods whose
    /// bind is in flight or that the list still shows unbound.
    pub fn rebuild(&mut self, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) {
        let listed: HashMap<String, &Pod> = pods.iter().map(|p| (pod_key(p), &**p)).collect();
        let assumed: Vec<(String, PodEntry)> = self
            .pods
            .drain()
            .filter(|(key, entry)| match (entry.assumed, listed.get(key)) {
                (Some(_), Some(pod)) => bound_node(pod).is_none() && !is_terminal(pod),
                (Some(done), None) => !done,
                (None, _) => false,
            })
            .collect();
        self.nodes.clear();
        self.index.clear();
        self.orphans.clear();
        for node in nodes {
            self.set_node(node);
        }
        for pod in pods {
            self.update_pod(pod);
        }
        for (key, entry) in assumed {
            self.insert_entry(key, entry);
        }
    }

    fn insert_entry(&mut self, key: String, entry: PodEntry) {
        match self.index.get(&entry.node) {
            Some(&i) => self.nodes[i].usage.add(&entry),
            None => self
                .orphans
                .entry(entry.node.clone())
                .or_default()
                .add(&entry),
        }
        self.pods.insert(key, entry);
    }

    fn remove_entry(&mut self, key: &str) -> bool {
        let Some(entry) = self.pods.remove(key) else {
            return false;
        };
        match self.index.get(&entry.node) {
            Some(&i) => self.nodes[i].usage.remove(&entry),
            None => {
                if let Some(usage) = self.orphans.get_mut(&entry.node) {
                    usage.remove(&entry);
                    if *usage == NodeUsage::default() {
                        self.orphans.remove(&entry.node);
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A Ready node with `cpu` cores, `memory` and room for `pods`.
    pub(crate) fn node(name: &str, cpu: &str, memory: &str, pods: u32) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": pods.to_string()},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .unwrap()
    }

    /// A pod requesting `cpu` and `memory`, optionally owned by `owner` and bound to `node`.
    pub(crate) fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        }))
        .unwrap()
    }

    pub(crate) fn owned(mut p: Pod, owner: &str) -> Pod {
        p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true,
        }))
        .unwrap()]);
        p
    }

    pub(crate) fn bound(mut p: Pod, node: &str) -> Pod {
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        p
    }

    #[test]
    fn bound_pods_add_their_requests_to_the_node() {
        let mut cache = Cache::new();
        cache.set_node(&node("n1", "4", "16Gi", 110));
        cache.update_pod(&bound(owned(pod("a", "500m", "1Gi"), "rs1"), "n1"));
        cache.update_pod(&bound(pod("b", "250m", "1Gi"), "n1"));
        let n = cache.node("n1").unwrap();
        assert_eq!(n.allocatable.milli_cpu, 4000);
        assert_eq!(n.allowed_pods, 110);
        assert_eq!(n.usage.requested.milli_cpu, 750);
        assert_eq!(n.usage.requested.memory, 2 << 30);
        assert_eq!(n.usage.pods, 2);
        assert_eq!(n.usage.owner_count("rs1"), 1);
        assert_eq!(n.usage.owner_count("rs2"), 0);
    }

    #[test]
    fn finished_and_deleted_pods_free_their_node() {
        let mut cache = Cache::new();
        cache.set_node(&node("n1", "4", "16Gi", 110));
        let p = bound(pod("a", "1", "1Gi"), "n1");
        cache.update_pod(&p);
        let mut done = p.clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        assert!(cache.update_pod(&done));
        assert_eq!(cache.node("n1").unwrap().usage, NodeUsage::default());
        cache.update_pod(&p);
        assert!(cache.remove_pod(&p));
        assert_eq!(cache.node("n1").unwrap().usage.pods, 0);
    }

    #[test]
    fn assumed_pods_count_until_the_watch_shows_them_bound() {
        let mut cache = Cache::new();
        cache.set_node(&node("n1", "4", "16Gi", 110));
        let p = pod("a", "1", "1Gi");
        cache.assume(&p, "n1");
        assert!(cache.is_assumed("default/a"));
        assert_eq!(cache.node("n1").unwrap().usage.requested.milli_cpu, 1000);
        // A stale unbound event does not drop the assumption.
        cache.update_pod(&p);
        assert_eq!(cache.node("n1").unwrap().usage.pods, 1);
        cache.finish_binding("default/a");
        cache.update_pod(&bound(p, "n1"));
        assert!(!cache.is_assumed("default/a"));
        assert_eq!(cache.node("n1").unwrap().usage.pods, 1, "counted once");
    }

    #[test]
    fn forgetting_a_failed_bind_frees_the_node() {
        let mut cache = Cache::new();
        cache.set_node(&node("n1", "4", "16Gi", 110));
        cache.assume(&owned(pod("a", "1", "1Gi"), "rs"), "n1");
        cache.forget("default/a");
        assert_eq!(cache.node("n1").unwrap().usage, NodeUsage::default());
    }

    #[test]
    fn pods_of_an_unknown_node_count_once_it_arrives() {
        let mut cache = Cache::new();
        cache.update_pod(&bound(pod("a", "1", "1Gi"), "late"));
        cache.set_node(&node("late", "4", "16Gi", 110));
        assert_eq!(cache.node("late").unwrap().usage.pods, 1);
        cache.remove_node("late");
        cache.set_node(&node("late", "4", "16Gi", 110));
        assert_eq!(cache.node("late").unwrap().usage.pods, 1);
    }

    #[test]
    fn heartbeats_are_not_node_changes() {
        let mut cache = Cache::new();
        assert!(cache.set_node(&node("n1", "4", "16Gi", 110)));
        assert!(!cache.set_node(&node("n1", "4", "16Gi", 110)));
        assert!(cache.set_node(&node("n1", "8", "16Gi", 110)));
    }

    #[test]
    fn rebuild_keeps_assumptions_whose_bind_is_in_flight() {
        let mut cache = Cache::new();
        let n = Arc::new(node("n1", "4", "16Gi", 110));
        cache.set_node(&n);
        let a = pod("a", "1", "1Gi");
        cache.assume(&a, "n1");
        cache.assume(&pod("gone", "1", "1Gi"), "n1");
        cache.finish_binding("default/gone");
        let b = bound(pod("b", "1", "1Gi"), "n1");
        cache.rebuild(&[n], &[Arc::new(a), Arc::new(b)]);
        let usage = &cache.node("n1").unwrap().usage;
        assert_eq!(usage.pods, 2, "a (assumed) and b (bound); gone was dropped");
        assert!(cache.is_assumed("default/a"));
    }
}
