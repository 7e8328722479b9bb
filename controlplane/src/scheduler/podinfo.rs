//! What the scheduler derives from a Pod once per decision: its resource requests (as the
//! kubelet will account them), owner, tolerations and node constraints, borrowed from the
//! typed `Pod` so the per-node loop touches no JSON and clones nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, NodeSelector, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::quantity;

/// The scheduler's name in `spec.schedulerName` and in its Events' source.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// The CPU a container without a CPU request is assumed to use when scoring (not when
/// fitting): kube-scheduler's `DefaultMilliCPURequest`, so empty pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: u64 = 100;
/// The memory assumed for scoring a container without a memory request
/// (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: u64 = 200 << 20;

/// CPU and memory, the two resources fitted and scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub milli_cpu: u64,
    /// Memory in bytes.
    pub memory: u64,
}

impl Resources {
    /// Adds `other`, saturating.
    pub fn add(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    /// Subtracts `other`, saturating at zero.
    pub fn sub(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
    }

    fn max(self, other: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(other.milli_cpu),
            memory: self.memory.max(other.memory),
        }
    }

    fn plus(mut self, other: Resources) -> Resources {
        self.add(other);
        self
    }
}

/// A pod as the filters and scores see it.
#[derive(Debug, Clone)]
pub struct PodInfo<'a> {
    /// What the pod needs reserved on its node (used by the fit filter).
    pub requests: Resources,
    /// `requests` with kube-scheduler's defaults for containers that request nothing (used
    /// by the scores).
    pub non_zero: Resources,
    /// `spec.nodeSelector`.
    pub node_selector: Option<&'a BTreeMap<String, String>>,
    /// `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    pub required_affinity: Option<&'a NodeSelector>,
    /// `spec.tolerations`.
    pub tolerations: &'a [Toleration],
    /// The uid of the controller that owns the pod (its replicas are spread).
    pub owner: Option<&'a str>,
}

impl<'a> PodInfo<'a> {
    /// Derives everything the filters and scores need from `pod`.
    pub fn new(pod: &'a Pod) -> PodInfo<'a> {
        let spec = pod.spec.as_ref();
        PodInfo {
            requests: spec.map(|s| pod_requests(s, false)).unwrap_or_default(),
            non_zero: spec.map(|s| pod_requests(s, true)).unwrap_or_default(),
            node_selector: spec.and_then(|s| s.node_selector.as_ref()),
            required_affinity: spec
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            tolerations: spec
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default(),
            owner: controller_uid(pod),
        }
    }
}

/// A pod's effective request, as kube-scheduler and the kubelet compute it: the sum of its
/// containers (a limit without a request counts as the request, as API defaulting makes
/// it), plus its restartable (sidecar) init containers, at least the largest init
/// container's (which runs beside the sidecars started before it), plus `spec.overhead`.
///
/// With `non_zero`, containers that request no CPU or memory count
/// [`DEFAULT_MILLI_CPU_REQUEST`] and [`DEFAULT_MEMORY_REQUEST`], as the scores assume.
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(own);
            init = init.max(sidecars);
        } else {
            init = init.max(own.plus(sidecars));
        }
    }
    let mut total = sum.plus(sidecars).max(init);
    if let Some(overhead) = &spec.overhead {
        total.add(resources_of(overhead));
    }
    total
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let r = c.resources.as_ref();
    let pick = |name: &str| {
        r.and_then(|r| r.requests.as_ref())
            .and_then(|m| m.get(name))
            .or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)))
    };
    let milli_cpu = match pick("cpu") {
        Some(q) => quantity::millis(&q.0).unwrap_or(0),
        None if non_zero => DEFAULT_MILLI_CPU_REQUEST,
        None => 0,
    };
    let memory = match pick("memory") {
        Some(q) => quantity::units(&q.0).unwrap_or(0),
        None if non_zero => DEFAULT_MEMORY_REQUEST,
        None => 0,
    };
    Resources { milli_cpu, memory }
}

/// CPU and memory of a resource list (`overhead`, a node's `allocatable`).
pub fn resources_of(list: &BTreeMap<String, Quantity>) -> Resources {
    Resources {
        milli_cpu: list
            .get("cpu")
            .and_then(|q| quantity::millis(&q.0))
            .unwrap_or(0),
        memory: list
            .get("memory")
            .and_then(|q| quantity::units(&q.0))
            .unwrap_or(0),
    }
}

/// The uid of the pod's controller (the `ownerReference` with `controller: true`).
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// `namespace/name`, the key pods are queued and cached under.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The node the pod is bound to, if any.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Whether the pod has finished (`Succeeded` or `Failed`) and so holds no resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether this scheduler should place the pod: unbound, not being deleted, not finished,
/// and asking for the default scheduler (or none).
pub fn wants_scheduling(pod: &Pod) -> bool {
    bound_node(pod).is_none()
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn requests_sum_containers_and_count_limits_without_requests() {
        let s = spec(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "c"},
        ]}));
        let r = pod_requests(&s, false);
        assert_eq!(r.milli_cpu, 1250);
        assert_eq!(r.memory, (64 << 20) + (1 << 30));
    }

    #[test]
    fn requests_are_at_least_the_largest_init_container_plus_overhead() {
        let s = spec(json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "10Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}],
            "overhead": {"cpu": "10m", "memory": "1Mi"},
        }));
        let r = pod_requests(&s, false);
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 11 << 20);
    }

    #[test]
    fn sidecar_init_containers_add_to_the_containers() {
        let s = spec(json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "migrate", "resources": {"requests": {"cpu": "120m"}}},
            ],
        }));
        // max(100 + 50, 120 + 50 beside the sidecar)
        assert_eq!(pod_requests(&s, false).milli_cpu, 170);
    }

    #[test]
    fn non_zero_requests_default_empty_containers_for_scoring() {
        let s = spec(json!({"containers": [{"name": "a"}]}));
        assert_eq!(pod_requests(&s, false), Resources::default());
        let r = pod_requests(&s, true);
        assert_eq!(r.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.memory, DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn only_default_scheduler_pods_without_a_node_want_scheduling() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let c = json!([{"name": "a"}]);
        assert!(wants_scheduling(&pod(json!({"spec": {"containers": c}}))));
        assert!(wants_scheduling(&pod(
            json!({"spec": {"containers": c, "schedulerName": "default-scheduler"}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"spec": {"containers": c, "schedulerName": "other"}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"spec": {"containers": c, "nodeName": "n1"}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"containers": c}})
        )));
        assert!(!wants_scheduling(&pod(
            json!({"spec": {"containers": c}, "status": {"phase": "Failed"}})
        )));
    }
}
