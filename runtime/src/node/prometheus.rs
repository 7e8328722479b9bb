//! The node agent's own `/metrics` (Prometheus text, like the kubelet's): pods and containers
//! running, live wasm instances, container starts and restarts, compile-cache hits and
//! misses, the process's CPU time. Containers' resource usage is `/metrics/resource`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::metrics::Usages;

fn family(out: &mut String, name: &str, kind: &str, help: &str, rows: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in rows {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The agent's metrics, as of now.
pub fn render(usages: &Usages) -> String {
    let pods = usages.snapshot();
    let containers: usize = pods.values().map(|p| p.containers.len()).sum();
    let instances: u64 = pods
        .values()
        .flat_map(|p| p.containers.values())
        .map(|c| c.usage.instances())
        .sum();
    let mut out = String::new();
    family(
        &mut out,
        "kubelet_node_name",
        "gauge",
        "The node's name. The count is always 1.",
        &[(format!("{{node=\"{}\"}}", usages.node), 1.0)],
    );
    family(
        &mut out,
        "kubelet_running_pods",
        "gauge",
        "Number of pods that have a running container.",
        &[(String::new(), pods.len() as f64)],
    );
    family(
        &mut out,
        "kubelet_running_containers",
        "gauge",
        "Number of containers currently running.",
        &[(
            "{container_state=\"running\"}".to_string(),
            containers as f64,
        )],
    );
    family(
        &mut out,
        "wasmkube_wasm_instances",
        "gauge",
        "Live wasm instances of the node's containers (main instances, execs, wasi:http requests).",
        &[(String::new(), instances as f64)],
    );
    family(
        &mut out,
        "kubelet_started_containers_total",
        "counter",
        "Cumulative number of containers started.",
        &[(
            "{container_type=\"container\"}".to_string(),
            usages.starts.load(Ordering::Relaxed) as f64,
        )],
    );
    family(
        &mut out,
        "wasmkube_container_restarts_total",
        "counter",
        "Containers started again after an earlier run in the same pod.",
        &[(
            String::new(),
            usages.restarts.load(Ordering::Relaxed) as f64,
        )],
    );
    if let Some(runtime) = &usages.runtime {
        let stats = runtime.cache().stats();
        let rows = [
            ("memory_hit", &stats.memory_hits),
            ("disk_hit", &stats.disk_hits),
            ("compile", &stats.compiles),
        ]
        .map(|(result, n)| {
            (
                format!("{{result=\"{result}\"}}"),
                n.load(Ordering::Relaxed) as f64,
            )
        });
        family(
            &mut out,
            "wasmkube_compile_cache_requests_total",
            "counter",
            "Images prepared, by where they came from: prepared in memory, a .cwasm on disk, or compiled.",
            &rows,
        );
    }
    family(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds (the whole process).",
        &[(String::new(), crate::wasm::process_cpu_time().as_secs_f64())],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::metrics::ContainerKey;
    use std::sync::Arc;

    #[test]
    fn counts_pods_containers_and_restarts() {
        let usages = Usages::new();
        for c in ["a", "b", "a"] {
            usages.started(
                ContainerKey::new("ns", "p", c),
                "uid",
                Arc::default(),
                Default::default(),
            );
        }
        let text = render(&usages);
        assert!(text.contains("kubelet_running_pods 1\n"), "{text}");
        assert!(text.contains("kubelet_running_containers{container_state=\"running\"} 2\n"));
        assert!(
            text.contains("kubelet_started_containers_total{container_type=\"container\"} 3\n")
        );
        assert!(text.contains("wasmkube_container_restarts_total 1\n"));
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    }
}
