//! `cargo bench --bench scheduler`: how fast the scheduler decides, and how fast it binds
//! through the API.
//!
//! 1. **decisions**: `schedule_one` against the node-info cache, in memory, at 1,000 and
//!    5,000 simulated nodes (4 CPU, 16 GiB, 110 pods each; zone, disk and instance-type
//!    labels; every tenth node tainted `dedicated=infra:NoSchedule`). 20,000 pods are decided
//!    one after another, each assumed onto its node before the next, as the scheduler's loop
//!    does: 40% plain, 20% with a `nodeSelector` and requests, 20% with varied requests, 20%
//!    replicas of 8 owners (a quarter of them tolerating the taint). Once with
//!    kube-scheduler's default `percentageOfNodesToScore` (adaptive), once scoring every node.
//!    Reports decisions/s, p50/p99 per decision and the busiest node.
//! 2. **end to end** (`e2e.rs`): `wasmkube server` as a process, simulated Ready nodes
//!    created through the API, a backlog of pods; then the scheduler (in this process, a
//!    kube client over HTTP, or the server's own if it runs one) and the time until every pod
//!    is bound; then a burst of creates while it runs.
//!
//! Results print as Markdown tables for docs/benchmarks.md. Options: `--pods N`,
//! `--nodes 1000,5000`, `--e2e-pods N`, `--e2e-nodes N`, `--no-e2e`.

mod e2e;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use controlplane::scheduler::{Cache, schedule_one};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

/// The command line.
struct Opts {
    pods: usize,
    nodes: Vec<usize>,
    e2e: bool,
    e2e_pods: usize,
    e2e_nodes: usize,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts {
            pods: 20_000,
            nodes: vec![1000, 5000],
            e2e: true,
            e2e_pods: 2000,
            e2e_nodes: 100,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match a.as_str() {
                "--pods" => o.pods = value("--pods")?.parse()?,
                "--nodes" => {
                    o.nodes = value("--nodes")?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--e2e-pods" => o.e2e_pods = value("--e2e-pods")?.parse()?,
                "--e2e-nodes" => o.e2e_nodes = value("--e2e-nodes")?.parse()?,
                "--no-e2e" => o.e2e = false,
                // Cargo passes this to every bench target.
                "--bench" => {}
                other => bail!(
                    "unknown argument {other:?}; use --pods N, --nodes A,B, --e2e-pods N, --e2e-nodes N, --no-e2e"
                ),
            }
        }
        Ok(o)
    }
}

/// Simulated node `i`: 4 CPU, 16 GiB, 110 pods, Ready; every tenth one tainted.
pub fn node(i: usize) -> Node {
    let name = format!("node-{i:05}");
    let taints = if i.is_multiple_of(10) {
        json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
            "disk": if i.is_multiple_of(2) { "ssd" } else { "hdd" },
            "node.kubernetes.io/instance-type": "m4.xlarge",
        }},
        "spec": {"taints": taints},
        "status": {
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .expect("a valid node")
}

/// Pod `i` of the mix (see the module docs).
pub fn pod(i: usize) -> Pod {
    let requests =
        |cpu: String, memory: String| json!({"requests": {"cpu": cpu, "memory": memory}});
    let mut spec = json!({"containers": [{"name": "app", "image": "web"}]});
    let mut meta =
        json!({"name": format!("pod-{i}"), "namespace": "bench", "uid": format!("uid-{i}")});
    match i % 10 {
        0..=3 => {}
        4 | 5 => {
            spec["nodeSelector"] = json!({"disk": "ssd"});
            spec["containers"][0]["resources"] = requests("100m".into(), "256Mi".into());
        }
        6 | 7 => {
            let cpu = format!("{}m", 50 + (i % 5) * 50);
            let memory = format!("{}Mi", 128 << (i % 4));
            spec["containers"][0]["resources"] = requests(cpu, memory);
        }
        _ => {
            let owner = format!("rs-{}", (i / 10) % 8);
            meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": owner, "uid": owner, "controller": true}]);
            spec["containers"][0]["resources"] = requests("100m".into(), "128Mi".into());
            if (i / 10).is_multiple_of(4) {
                spec["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
            }
        }
    }
    serde_json::from_value(json!({"metadata": meta, "spec": spec})).expect("a valid pod")
}

/// One row of the decision table.
struct Decisions {
    nodes: usize,
    percentage: u32,
    pods: usize,
    build: Duration,
    elapsed: Duration,
    latencies: Vec<Duration>,
    unschedulable: usize,
    busiest: u64,
}

fn decide(nodes: usize, percentage: u32, pods: &[Pod]) -> Decisions {
    let started = Instant::now();
    let mut cache = Cache::new();
    cache.set_percentage_of_nodes_to_score(percentage);
    for i in 0..nodes {
        cache.set_node(&node(i));
    }
    let build = started.elapsed();
    let mut latencies = Vec::with_capacity(pods.len());
    let mut unschedulable = 0;
    let started = Instant::now();
    for pod in pods {
        let t = Instant::now();
        let decision = schedule_one(pod, &cache);
        latencies.push(t.elapsed());
        match decision {
            Ok(node) => cache.assume(pod, &node),
            Err(_) => unschedulable += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let busiest = cache
        .nodes()
        .iter()
        .map(|n| n.usage.pods)
        .max()
        .unwrap_or(0);
    Decisions {
        nodes,
        percentage,
        pods: pods.len(),
        build,
        elapsed,
        latencies,
        unschedulable,
        busiest,
    }
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse()?;
    let pods: Vec<Pod> = (0..opts.pods).map(pod).collect();
    let mut rows = Vec::new();
    for &nodes in &opts.nodes {
        for percentage in [0, 100] {
            eprintln!(
                "bench: {} pods on {nodes} nodes, percentageOfNodesToScore {percentage}",
                pods.len()
            );
            rows.push(decide(nodes, percentage, &pods));
        }
    }
    println!("\n### Decisions (`schedule_one` + assume, in memory)\n");
    println!(
        "| nodes | percentageOfNodesToScore | pods | decisions/s | p50 | p99 | unschedulable | busiest node | cache build |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let label = match r.percentage {
            0 => "adaptive (default)".to_string(),
            p => format!("{p}%"),
        };
        println!(
            "| {} | {label} | {} | {:.0} | {} | {} | {} | {} pods | {:.1} ms |",
            r.nodes,
            r.pods,
            r.pods as f64 / r.elapsed.as_secs_f64(),
            us(percentile(&r.latencies, 0.5)),
            us(percentile(&r.latencies, 0.99)),
            r.unschedulable,
            r.busiest,
            r.build.as_secs_f64() * 1e3,
        );
    }
    if opts.e2e {
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(e2e::run(opts.e2e_pods, opts.e2e_nodes))?;
        report.print();
    }
    Ok(())
}
