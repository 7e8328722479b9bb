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
        let ts = now.as_millisecond();
        let live = self.lock();
        let mut out = String::new();
        let mut pods: BTreeMap<(&str, &str), (f64, u64)> = BTreeMap::new();
        let (mut node_cpu, mut node_mem) = (0.0, 0u64);

        header(
            &mut out,
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed by the container in core-seconds",
            "counter",
        );
        for ((ns, pod, c), (usage, _)) in live.iter() {
            let cpu = usage.cpu().as_secs_f64();
            let _ = writeln!(
                out,
                "container_cpu_usage_seconds_total{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {cpu} {ts}"
            );
            let entry = pods.entry((ns, pod)).or_default();
            entry.0 += cpu;
            entry.1 += usage.memory_bytes();
            node_cpu += cpu;
            node_mem += usage.memory_bytes();
        }
        header(
            &mut out,
            "container_memory_working_set_bytes",
            "Current working set of the container in bytes",
            "gauge",
        );
        for ((ns, pod, c), (usage, _)) in live.iter() {
            let _ = writeln!(
                out,
                "container_memory_working_set_bytes{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {} {ts}",
                usage.memory_bytes()
            );
        }
        header(
            &mut out,
            "container_start_time_seconds",
            "Start time of the container since unix epoch in seconds",
            "gauge",
        );
        for ((ns, pod, c), (_, started)) in live.iter() {
            let _ = writeln!(
                out,
                "container_start_time_seconds{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {} {ts}",
                started.as_millisecond() as f64 / 1000.0
            );
        }
        header(
            &mut out,
            "node_cpu_usage_seconds_total",
            "Cumulative cpu time consumed by the node in core-seconds",
            "counter",
        );
        let _ = writeln!(out, "node_cpu_usage_seconds_total {node_cpu} {ts}");
        header(
            &mut out,
            "node_memory_working_set_bytes",
            "Current working set of the node in bytes",
            "gauge",
        );
        let _ = writeln!(out, "node_memory_working_set_bytes {node_mem} {ts}");
        header(
            &mut out,
            "pod_cpu_usage_seconds_total",
            "Cumulative cpu time consumed by the pod in core-seconds",
            "counter",
        );
        for ((ns, pod), (cpu, _)) in &pods {
            let _ = writeln!(
                out,
                "pod_cpu_usage_seconds_total{{namespace=\"{ns}\",pod=\"{pod}\"}} {cpu} {ts}"
            );
        }
        header(
            &mut out,
            "pod_memory_working_set_bytes",
            "Current working set of the pod in bytes",
            "gauge",
        );
        for ((ns, pod), (_, mem)) in &pods {
            let _ = writeln!(
                out,
                "pod_memory_working_set_bytes{{namespace=\"{ns}\",pod=\"{pod}\"}} {mem} {ts}"
            );
        }
        header(
            &mut out,
            "scrape_error",
            "1 if there was an error while getting container metrics, 0 otherwise",
            "gauge",
        );
        out.push_str("scrape_error 0\n");
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
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
