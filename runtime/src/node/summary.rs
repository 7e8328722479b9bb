//! `/stats/summary`: the kubelet's Summary API (`stats/v1alpha1`), the JSON `kubectl get
//! --raw /api/v1/nodes/NODE/proxy/stats/summary` shows on a real cluster.
//!
//! Per container: CPU (`usageCoreNanoSeconds` now, `usageNanoCores` between the last two
//! housekeeping samples), memory (`workingSetBytes` = linear memory of its live instances),
//! `rootfs` (its ephemeral root) and `logs`. Per pod: the sums, network bytes counted in the
//! socket layer (one `eth0`: a pod's containers share its network), and each volume's used
//! bytes and inodes. The node: the sums over its pods. Directory sizes are walked when asked
//! (bounded), on a blocking thread.

use std::path::Path;

use serde_json::{Value, json};

use super::metrics::{PodEntry, Usages};

/// The most directory entries one size walk visits (a huge volume reports what it saw).
const MAX_WALK: usize = 100_000;

/// Bytes and inodes under `path` (not following symlinks).
pub fn dir_usage(path: &Path) -> (u64, u64) {
    let (mut bytes, mut inodes, mut seen) = (0u64, 0u64, 0usize);
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_WALK {
                return (bytes, inodes);
            }
            let Ok(meta) = entry.metadata() else { continue };
            inodes += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    (bytes, inodes)
}

fn cpu(time: &str, core_nanos: u64, nano_cores: Option<u64>) -> Value {
    let mut v = json!({"time": time, "usageCoreNanoSeconds": core_nanos});
    if let Some(n) = nano_cores {
        v["usageNanoCores"] = json!(n);
    }
    v
}

fn memory(time: &str, bytes: u64) -> Value {
    json!({"time": time, "usageBytes": bytes, "workingSetBytes": bytes, "rssBytes": bytes,
        "pageFaults": 0, "majorPageFaults": 0})
}

fn fs(time: &str, (bytes, inodes): (u64, u64)) -> Value {
    json!({"time": time, "usedBytes": bytes, "inodesUsed": inodes})
}

/// The log directory of the container whose ephemeral root is `root`
/// (`pods/<uid>/containers/<name>/root` -> `pods/<uid>/logs/<name>`, see sandbox.rs).
fn logs_dir(root: &Path, container: &str) -> Option<std::path::PathBuf> {
    Some(
        root.parent()?
            .parent()?
            .parent()?
            .join("logs")
            .join(container),
    )
}

/// One pod's stats.
fn pod_stats(ns: &str, name: &str, pod: &PodEntry, time: &str) -> Value {
    let (mut core_nanos, mut nano_cores, mut mem, mut rx, mut tx) = (0u64, None, 0u64, 0u64, 0u64);
    let mut ephemeral = 0u64;
    let mut containers = Vec::new();
    for (c, running) in &pod.containers {
        let usage = &running.usage;
        let nanos = u64::try_from(usage.cpu().as_nanos()).unwrap_or(u64::MAX);
        core_nanos += nanos;
        if let Some(n) = running.nano_cores() {
            nano_cores = Some(nano_cores.unwrap_or(0) + n);
        }
        mem += usage.memory_bytes();
        rx += usage.rx_bytes();
        tx += usage.tx_bytes();
        let rootfs = dir_usage(&running.root);
        let log = logs_dir(&running.root, c)
            .map(|l| dir_usage(&l))
            .unwrap_or_default();
        ephemeral += rootfs.0 + log.0;
        containers.push(json!({"name": c, "startTime": running.started.to_string(),
            "cpu": cpu(time, nanos, running.nano_cores()),
            "memory": memory(time, usage.memory_bytes()),
            "rootfs": fs(time, rootfs), "logs": fs(time, log)}));
    }
    let volumes: Vec<Value> = pod
        .volumes
        .iter()
        .map(|(volume, dir)| {
            let mut v = fs(time, dir_usage(dir));
            v["name"] = json!(volume);
            v
        })
        .collect();
    let interface = json!({"name": "eth0", "rxBytes": rx, "txBytes": tx});
    json!({"podRef": {"name": name, "namespace": ns, "uid": pod.uid},
        "startTime": pod.started.map(|t| t.to_string()),
        "containers": containers,
        "cpu": cpu(time, core_nanos, nano_cores),
        "memory": memory(time, mem),
        "network": {"time": time, "name": "eth0", "rxBytes": rx, "txBytes": tx,
            "interfaces": [interface]},
        "volume": volumes,
        "ephemeral-storage": {"time": time, "usedBytes": ephemeral}})
}

/// The summary of every pod on the node, as of `now`. Walks directories: call it on a
/// blocking thread.
pub fn summary(usages: &Usages, now: jiff::Timestamp) -> Value {
    let time = now.to_string();
    let pods: Vec<Value> = usages
        .snapshot()
        .iter()
        .map(|((ns, name), pod)| pod_stats(ns, name, pod, &time))
        .collect();
    let sum = |pointer: &str| -> u64 {
        pods.iter()
            .filter_map(|p| p.pointer(pointer).and_then(Value::as_u64))
            .sum()
    };
    let rates: Vec<u64> = pods
        .iter()
        .filter_map(|p| p.pointer("/cpu/usageNanoCores").and_then(Value::as_u64))
        .collect();
    let nano_cores = (!rates.is_empty()).then(|| rates.iter().sum());
    let (rx, tx) = (sum("/network/rxBytes"), sum("/network/txBytes"));
    json!({"node": {
        "nodeName": usages.node,
        "startTime": usages.started.map(|t| t.to_string()),
        "cpu": cpu(&time, sum("/cpu/usageCoreNanoSeconds"), nano_cores),
        "memory": memory(&time, sum("/memory/workingSetBytes")),
        "network": {"time": time, "name": "lo", "rxBytes": rx, "txBytes": tx,
            "interfaces": [{"name": "lo", "rxBytes": rx, "txBytes": tx}]},
        "systemContainers": [],
    }, "pods": pods})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::metrics::ContainerKey;
    use std::sync::Arc;

    #[test]
    fn sums_containers_into_pods_and_measures_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(data.join("sub/b"), vec![0u8; 24]).unwrap();
        let usages = Usages::new();
        let usage = Arc::new(crate::wasm::Usage::default());
        usage.add_cpu(std::time::Duration::from_millis(5));
        usage.add_rx(100);
        usage.add_tx(7);
        usages.started(
            ContainerKey::new("ns", "p", "c"),
            "uid-1",
            usage,
            dir.path().join("root"),
        );
        usages.pod_volumes("ns", "p", vec![("data".into(), data)]);
        let s = summary(&usages, jiff::Timestamp::now());
        let pod = &s["pods"][0];
        assert_eq!(pod["podRef"]["uid"], "uid-1");
        assert_eq!(
            pod["containers"][0]["cpu"]["usageCoreNanoSeconds"],
            5_000_000
        );
        assert_eq!(pod["network"]["rxBytes"], 100);
        assert_eq!(pod["network"]["txBytes"], 7);
        assert_eq!(pod["volume"][0]["name"], "data");
        assert_eq!(pod["volume"][0]["usedBytes"], 1024);
        assert_eq!(pod["volume"][0]["inodesUsed"], 3);
        assert_eq!(s["node"]["cpu"]["usageCoreNanoSeconds"], 5_000_000);
    }
}
