//! Resource usage of the node's containers, served as the kubelet's `/metrics/resource`
//! (Prometheus text, what metrics-server scrapes): CPU seconds and working-set bytes per
//! container, summed per pod and for the node.
//!
//! Each running instance has a [`Usage`] the runtime updates (CPU time inside its polls,
//! linear memory grown); [`Usages`] indexes the live ones by pod and container.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::wasm::Usage;

/// `(namespace, pod, container)`.
type Key = (String, String, String);

/// The live usage of every container on the node.
#[derive(Debug, Default)]
pub struct Usages {
    live: Mutex<BTreeMap<Key, (Arc<Usage>, jiff::Timestamp)>>,
}

impl Usages {
    /// A new, empty index.
    pub fn new() -> Arc<Usages> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, (Arc<Usage>, jiff::Timestamp)>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A container instance started: its usage is now reported (replacing the last run's).
    pub fn started(&self, namespace: &str, pod: &str, container: &str, usage: Arc<Usage>) {
        let key = (namespace.into(), pod.into(), container.into());
        self.lock().insert(key, (usage, jiff::Timestamp::now()));
    }

    /// The pod is gone from the node.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.lock()
            .retain(|(ns, p, _), _| !(ns == namespace && p == pod));
    }

    /// `/metrics/resource` in the Prometheus text format, as of `now`.
    pub fn render(&self, now: jiff::Timestamp) -> String {
        let live = self.lock();
        let container = |ns: &str, pod: &str, c: &str| {
            format!("{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}}")
        };
        let mut pods: BTreeMap<(&str, &str), (f64, u64)> = BTreeMap::new();
        let (mut cpu_rows, mut mem_rows, mut start_rows) = (Vec::new(), Vec::new(), Vec::new());
        for ((ns, pod, c), (usage, started)) in live.iter() {
            let (cpu, mem) = (usage.cpu().as_secs_f64(), usage.memory_bytes());
            cpu_rows.push((container(ns, pod, c), cpu.to_string()));
            mem_rows.push((container(ns, pod, c), mem.to_string()));
            let start = started.as_millisecond() as f64 / 1000.0;
            start_rows.push((container(ns, pod, c), start.to_string()));
            let entry = pods.entry((ns, pod)).or_default();
            entry.0 += cpu;
            entry.1 += mem;
        }
        let pod_label = |ns: &str, pod: &str| format!("{{namespace=\"{ns}\",pod=\"{pod}\"}}");
        let node_cpu: f64 = pods.values().map(|p| p.0).sum();
        let node_mem: u64 = pods.values().map(|p| p.1).sum();
        let families = [
            (
                "container_cpu_usage_seconds_total",
                "Cumulative cpu time consumed by the container in core-seconds",
                "counter",
                cpu_rows,
            ),
            (
                "container_memory_working_set_bytes",
                "Current working set of the container in bytes",
                "gauge",
                mem_rows,
            ),
            (
                "container_start_time_seconds",
                "Start time of the container since unix epoch in seconds",
                "gauge",
                start_rows,
            ),
            (
                "node_cpu_usage_seconds_total",
                "Cumulative cpu time consumed by the node in core-seconds",
                "counter",
                vec![(String::new(), node_cpu.to_string())],
            ),
            (
                "node_memory_working_set_bytes",
                "Current working set of the node in bytes",
                "gauge",
                vec![(String::new(), node_mem.to_string())],
            ),
            (
                "pod_cpu_usage_seconds_total",
                "Cumulative cpu time consumed by the pod in core-seconds",
                "counter",
                pods.iter()
                    .map(|((ns, pod), (cpu, _))| (pod_label(ns, pod), cpu.to_string()))
                    .collect(),
            ),
            (
                "pod_memory_working_set_bytes",
                "Current working set of the pod in bytes",
                "gauge",
                pods.iter()
                    .map(|((ns, pod), (_, mem))| (pod_label(ns, pod), mem.to_string()))
                    .collect(),
            ),
        ];
        let ts = now.as_millisecond();
        let mut out = String::new();
        for (name, help, kind, rows) in families {
            let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{labels} {value} {ts}");
            }
        }
        out.push_str("# HELP scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n");
        out.push_str("# TYPE scrape_error gauge\nscrape_error 0\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_containers_pods_and_the_node() {
        let usages = Usages::new();
        usages.started("default", "web", "nginx", Arc::default());
        usages.started("default", "web", "sidecar", Arc::default());
        usages.started("kube-system", "dns", "coredns", Arc::default());
        let text = usages.render(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"nginx\",namespace=\"default\",pod=\"web\"} 0 1700000000000\n"
        ), "{text}");
        assert!(
            text.contains("pod_memory_working_set_bytes{namespace=\"default\",pod=\"web\"} 0 ")
        );
        assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter\n"));
        assert!(text.ends_with("scrape_error 0\n"));
        usages.remove_pod("default", "web");
        let text = usages.render(jiff::Timestamp::now());
        assert!(!text.contains("pod=\"web\""), "{text}");
        assert!(text.contains("pod=\"dns\""));
    }
}
