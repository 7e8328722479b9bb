//! Resource usage of the node's containers (the kubelet's cAdvisor, ARCHITECTURE D9).
//!
//! Each running container has a [`Usage`] the runtime updates: CPU time inside its polls,
//! linear memory grown, bytes through its sockets. [`Usages`] indexes them by pod and
//! container, with what the summary also reports (the pod's volumes, the container's
//! ephemeral root), and keeps the last two CPU samples of each container, taken every
//! `--housekeeping-interval`, for `usageNanoCores`.
//!
//! Served as `/metrics/resource` (Prometheus text, what metrics-server scrapes; this file),
//! `/stats/summary` (JSON, `summary.rs`) and the agent's own `/metrics` (`prometheus.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::wasm::{ContainerRuntime, Usage};

/// `(namespace, pod, container)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerKey {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
}

impl ContainerKey {
    /// The key of `container` in `namespace/pod`.
    pub fn new(namespace: &str, pod: &str, container: &str) -> ContainerKey {
        ContainerKey {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
        }
    }
}

/// One CPU reading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: jiff::Timestamp,
    pub(crate) cpu: Duration,
}

/// A running container as the metrics see it.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub(crate) usage: Arc<Usage>,
    pub(crate) started: jiff::Timestamp,
    /// The container's ephemeral root (its writable layer).
    pub(crate) root: PathBuf,
    /// The previous and the last housekeeping samples.
    pub(crate) samples: (Option<Sample>, Option<Sample>),
}

impl Running {
    /// CPU use between the last two housekeeping samples, in nanocores.
    pub(crate) fn nano_cores(&self) -> Option<u64> {
        let (Some(a), Some(b)) = self.samples else {
            return None;
        };
        let wall = b.at.duration_since(a.at).as_secs_f64();
        (wall > 0.0).then(|| (b.cpu.saturating_sub(a.cpu).as_secs_f64() / wall * 1e9) as u64)
    }
}

/// A pod with running containers.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodEntry {
    pub(crate) uid: String,
    pub(crate) started: Option<jiff::Timestamp>,
    /// Its volumes: name and host directory.
    pub(crate) volumes: Vec<(String, PathBuf)>,
    pub(crate) containers: BTreeMap<String, Running>,
}

/// The live usage of every container on the node.
#[derive(Default)]
pub struct Usages {
    pods: Mutex<BTreeMap<(String, String), PodEntry>>,
    /// The node's name and when its agent started.
    pub(crate) node: String,
    pub(crate) started: Option<jiff::Timestamp>,
    /// The compile cache's figures, when a runtime is known.
    pub(crate) runtime: Option<Arc<ContainerRuntime>>,
    /// Containers that started again after a previous run on this agent.
    pub(crate) restarts: AtomicU64,
    /// Containers started, first runs included.
    pub(crate) starts: AtomicU64,
}

impl std::fmt::Debug for Usages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usages").field("node", &self.node).finish()
    }
}

impl Usages {
    /// A new, empty index (tests).
    pub fn new() -> Arc<Usages> {
        Arc::default()
    }

    /// The index of node `node`, whose containers run on `runtime`.
    pub fn for_node(node: &str, runtime: Arc<ContainerRuntime>) -> Arc<Usages> {
        Arc::new(Usages {
            node: node.into(),
            started: Some(jiff::Timestamp::now()),
            runtime: Some(runtime),
            ..Usages::default()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), PodEntry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A container instance started: its usage is now reported (replacing the last run's).
    pub fn started(&self, key: ContainerKey, uid: &str, usage: Arc<Usage>, root: PathBuf) {
        let now = jiff::Timestamp::now();
        let mut pods = self.lock();
        let pod = pods.entry((key.namespace, key.pod)).or_default();
        if pod.uid != uid {
            *pod = PodEntry {
                uid: uid.into(),
                started: Some(now),
                ..PodEntry::default()
            };
        }
        let first = Sample {
            at: now,
            cpu: usage.cpu(),
        };
        let previous = pod.containers.insert(
            key.container,
            Running {
                usage,
                started: now,
                root,
                samples: (None, Some(first)),
            },
        );
        self.starts.fetch_add(1, Ordering::Relaxed);
        if previous.is_some() {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The pod's volumes (name and host directory), for the summary's volume stats.
    pub fn pod_volumes(&self, namespace: &str, pod: &str, volumes: Vec<(String, PathBuf)>) {
        if let Some(entry) = self.lock().get_mut(&(namespace.into(), pod.into())) {
            entry.volumes = volumes;
            entry.volumes.sort();
        }
    }

    /// The pod is gone from the node.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.lock().remove(&(namespace.into(), pod.into()));
    }

    /// A copy of the index, for rendering without holding the lock.
    pub(crate) fn snapshot(&self) -> BTreeMap<(String, String), PodEntry> {
        self.lock().clone()
    }

    /// Records a CPU sample of every container (housekeeping).
    pub fn sample(&self, now: jiff::Timestamp) {
        for pod in self.lock().values_mut() {
            for c in pod.containers.values_mut() {
                let sample = Sample {
                    at: now,
                    cpu: c.usage.cpu(),
                };
                c.samples = (c.samples.1, Some(sample));
            }
        }
    }

    /// Samples every `interval` until `stop`.
    pub async fn housekeeping(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => self.sample(jiff::Timestamp::now()),
            }
        }
    }

    /// `/metrics/resource` in the Prometheus text format, as of `now`.
    pub fn render(&self, now: jiff::Timestamp) -> String {
        let pods = self.snapshot();
        let container = |ns: &str, pod: &str, c: &str| {
            format!("{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}}")
        };
        let mut totals: BTreeMap<(&str, &str), (f64, u64)> = BTreeMap::new();
        let (mut cpu_rows, mut mem_rows, mut start_rows) = (Vec::new(), Vec::new(), Vec::new());
        for ((ns, pod), entry) in &pods {
            for (c, running) in &entry.containers {
                let usage = &running.usage;
                let (cpu, mem) = (usage.cpu().as_secs_f64(), usage.memory_bytes());
                cpu_rows.push((container(ns, pod, c), cpu.to_string()));
                mem_rows.push((container(ns, pod, c), mem.to_string()));
                let start = running.started.as_millisecond() as f64 / 1000.0;
                start_rows.push((container(ns, pod, c), start.to_string()));
                let total = totals.entry((ns, pod)).or_default();
                total.0 += cpu;
                total.1 += mem;
            }
        }
        let pod_label = |ns: &str, pod: &str| format!("{{namespace=\"{ns}\",pod=\"{pod}\"}}");
        let node_cpu: f64 = totals.values().map(|p| p.0).sum();
        let node_mem: u64 = totals.values().map(|p| p.1).sum();
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
                totals
                    .iter()
                    .map(|((ns, pod), (cpu, _))| (pod_label(ns, pod), cpu.to_string()))
                    .collect(),
            ),
            (
                "pod_memory_working_set_bytes",
                "Current working set of the pod in bytes",
                "gauge",
                totals
                    .iter()
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

    fn start(usages: &Usages, ns: &str, pod: &str, c: &str) -> Arc<Usage> {
        let usage = Arc::new(Usage::default());
        usages.started(
            ContainerKey::new(ns, pod, c),
            &format!("{ns}-{pod}"),
            usage.clone(),
            PathBuf::from("/nonexistent"),
        );
        usage
    }

    #[test]
    fn renders_containers_pods_and_the_node() {
        let usages = Usages::new();
        start(&usages, "default", "web", "nginx");
        start(&usages, "default", "web", "sidecar");
        start(&usages, "kube-system", "dns", "coredns");
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

    #[test]
    fn samples_give_a_rate_and_restarts_are_counted() {
        let usages = Usages::new();
        let usage = start(&usages, "ns", "p", "c");
        let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        usages.sample(t0);
        usage.add_cpu(Duration::from_millis(500));
        usages.sample(t0 + jiff::SignedDuration::from_secs(1));
        let pods = usages.snapshot();
        let running = &pods[&("ns".to_string(), "p".to_string())].containers["c"];
        assert_eq!(running.nano_cores(), Some(500_000_000));
        start(&usages, "ns", "p", "c");
        assert_eq!(usages.restarts.load(Ordering::Relaxed), 1);
        // The same name with a new UID is a new pod, not a restart of the old one.
        usages.started(
            ContainerKey::new("ns", "p", "c"),
            "another-uid",
            Arc::default(),
            PathBuf::new(),
        );
        assert_eq!(usages.restarts.load(Ordering::Relaxed), 1);
    }
}
