//! Resource metrics and the HorizontalPodAutoscaler (issue 10) with the real kubectl: `kubectl
//! top` of a CPU-limited `stress` container, the HPA walkthrough (`registry.k8s.io/hpa-example`
//! behind a Service, `kubectl autoscale`, a toolbox load loop, scale out and back in), the
//! notes' autoscaling/v2beta2 manifest in `my-namespace`, an HPA on a missing target, the
//! Prometheus endpoints; and on a standalone `wasmkube node` process, per-container CPU against
//! the process's own CPU time. Timers are shortened by flags.

use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::nodes::start_nodes;
use crate::support::{Cluster, FAST, OutputExt, TOOLBOX, eventually};

/// The control plane's and the node agents' metric and autoscaler timers, shortened.
const METRICS_FAST: &[&str] = &[
    "--metric-resolution",
    "1s",
    "--housekeeping-interval",
    "1s",
    "--horizontal-pod-autoscaler-sync-period",
    "1s",
    "--horizontal-pod-autoscaler-downscale-stabilization",
    "5s",
    "--horizontal-pod-autoscaler-cpu-initialization-period",
    "5s",
    "--horizontal-pod-autoscaler-initial-readiness-delay",
    "5s",
];

fn up(test: &str) -> Option<Cluster> {
    let flags: Vec<&str> = FAST.iter().chain(METRICS_FAST).copied().collect();
    Cluster::up_with_kubectl(test, &flags)
}

const STRESS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: stress
spec:
  containers:
  - name: stress
    image: wasmkube/stress
    args: ['--cpu', 'spin', '--memory', '32Mi']
    resources:
      limits: {cpu: 300m, memory: 64Mi}
";

/// Millicores in a `kubectl top` cell (`299m`).
fn millis(cell: &str) -> u64 {
    cell.trim_end_matches('m').parse().unwrap_or(0)
}

/// `GET path` on `host:port`, the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    body.to_string()
}

/// The node agent's endpoint `IP:PORT`, from the Node.
fn node_endpoint(cluster: &Cluster, node: &str) -> String {
    let ip = cluster.jsonpath(
        &["node", node],
        r#"{.status.addresses[?(@.type=="InternalIP")].address}"#,
    );
    let port = cluster.jsonpath(
        &["node", node],
        "{.status.daemonEndpoints.kubeletEndpoint.Port}",
    );
    format!("{ip}:{port}")
}

/// The value of an unlabelled (or first) sample of `name` in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| {
            l.rsplit_once('}')
                .map(|(_, v)| v)
                .or(l.split_once(' ').map(|(_, v)| v))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn top_shows_a_cpu_limit_and_the_hpa_scales_out_and_back_in() {
    let Some(cluster) = up("top_shows_a_cpu_limit_and_the_hpa_scales_out_and_back_in") else {
        return;
    };
    cluster.apply_yaml(STRESS);
    cluster.wait_running("stress");
    // ~300m within 20%, over a few metric windows.
    let cpu = eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["top", "pods", "--no-headers"]);
        let line = out.stdout_text();
        let cells: Vec<&str> = line.split_whitespace().collect();
        match cells.as_slice() {
            ["stress", cpu, mem] if (240..=360).contains(&millis(cpu)) => {
                Ok((millis(cpu), mem.to_string()))
            }
            _ => Err(format!("kubectl top pods: {}", out.describe())),
        }
    });
    assert!(cpu.1.ends_with("Mi") && cpu.1 != "0Mi", "memory {}", cpu.1);
    let containers = cluster.kubectl_ok(&["top", "pods", "--containers"]);
    assert!(
        containers.contains("POD") && containers.contains("stress   stress"),
        "{containers}"
    );
    let nodes = cluster.kubectl_ok(&["top", "nodes"]);
    assert!(
        nodes.contains("CPU(%)") && nodes.contains("node-1"),
        "{nodes}"
    );
    assert!(
        !nodes.contains("<unknown>"),
        "allocatable gives percentages: {nodes}"
    );
    let ours = cluster.wasmkube(&["top", "pods"]);
    assert!(
        ours.status.success() && ours.stdout_text().contains("stress"),
        "{}",
        ours.describe()
    );

    // The node's summary and Prometheus endpoints, and the API server's.
    let node = node_endpoint(&cluster, "node-1");
    let summary: serde_json::Value =
        serde_json::from_str(&http_get(&node, "/stats/summary")).expect("summary JSON");
    let pod = summary["pods"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["podRef"]["name"] == "stress"))
        .expect("stress in the summary");
    assert!(
        pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap_or(0) > 0,
        "{pod}"
    );
    assert!(
        pod["memory"]["workingSetBytes"].as_u64().unwrap_or(0) >= 32 << 20,
        "{pod}"
    );
    let agent = http_get(&node, "/metrics");
    assert_eq!(sample(&agent, "kubelet_running_pods"), Some(1.0), "{agent}");
    let api = cluster.kubectl_ok(&["get", "--raw", "/metrics"]);
    for family in [
        "apiserver_request_total{verb=\"list\"",
        "apiserver_request_duration_seconds_bucket",
        "apiserver_longrunning_requests{verb=\"WATCH\"",
        "wasmkube_store_commit_duration_seconds_count",
        "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}",
    ] {
        assert!(api.contains(family), "{family} in /metrics");
    }
    cluster.kubectl_ok(&["delete", "pod", "stress", "--grace-period=0", "--force"]);

    // The walkthrough: php-apache with CPU requests, `kubectl autoscale`, a load loop.
    cluster.apply_manifest("php-apache.yaml");
    cluster.apply_yaml(TOOLBOX);
    cluster.kubectl_ok(&[
        "autoscale",
        "deployment",
        "php-apache",
        "--cpu=50%",
        "--min=1",
        "--max=10",
    ]);
    cluster.wait_running("toolbox");
    eventually(Duration::from_secs(30), || {
        let row = cluster.kubectl_ok(&["get", "hpa", "php-apache", "--no-headers"]);
        if row.contains("cpu: 0%/50%") || row.contains("cpu: 1%/50%") {
            Ok(())
        } else {
            Err(format!("idle target: {row}"))
        }
    });
    let mut load = cluster
        .kubectl_command(&[
            "exec",
            "toolbox",
            "--",
            "sh",
            "-c",
            "while true; do wget -q -O- http://php-apache >/dev/null; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("load loop");
    let started = Instant::now();
    let scaled = eventually(Duration::from_secs(45), || {
        let replicas = cluster.jsonpath(&["hpa", "php-apache"], "{.status.currentReplicas}");
        let row = cluster.kubectl_ok(&["get", "hpa", "php-apache", "--no-headers"]);
        match replicas.parse::<u32>() {
            Ok(n) if n > 1 => Ok((n, row)),
            _ => Err(format!("not scaled out yet: {row}")),
        }
    });
    eprintln!(
        "scaled out to {} in {:?}: {}",
        scaled.0,
        started.elapsed(),
        scaled.1
    );
    // TARGETS reads `cpu: NN%/50%`.
    let targets = scaled
        .1
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(
        scaled.1.contains("cpu: ") && scaled.1.contains("%/50%"),
        "{} ({targets})",
        scaled.1
    );
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=SuccessfulRescale",
    ]);
    assert!(events.contains("New size:"), "{events}");
    let _ = load.kill();
    let _ = load.wait();
    // Stop the loop inside the pod too (the exec's instance ends with its session).
    eventually(Duration::from_secs(60), || {
        let replicas = cluster.jsonpath(&["hpa", "php-apache"], "{.status.currentReplicas}");
        if replicas == "1" {
            Ok(())
        } else {
            Err(format!("still {replicas} replicas"))
        }
    });
    let status = cluster.kubectl_ok(&["describe", "hpa", "php-apache"]);
    assert!(
        status.contains("ScalingActive") && status.contains("ValidMetricFound"),
        "{status}"
    );
    assert!(status.contains("All metrics below target"), "{status}");

    // The notes' manifest: autoscaling/v2beta2 in a namespace of its own; it acts (three idle
    // replicas are scaled in to one).
    cluster.kubectl_ok(&["create", "namespace", "my-namespace"]);
    let deployment = std::fs::read_to_string(crate::support::manifest("php-apache.yaml"))
        .unwrap()
        .replace("spec:\n  selector:", "spec:\n  replicas: 3\n  selector:");
    let out = cluster.kubectl_stdin(
        &["apply", "-n", "my-namespace", "-f", "-"],
        Some(deployment.as_bytes()),
    );
    assert!(out.status.success(), "{}", out.describe());
    let out = cluster.kubectl_stdin(&["apply", "-f", "-"], Some(V2BETA2.as_bytes()));
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stderr_text().contains("v2beta2"),
        "deprecation warning: {}",
        out.describe()
    );
    eventually(Duration::from_secs(45), || {
        let replicas = cluster.jsonpath(
            &["deployment", "php-apache", "-n", "my-namespace"],
            "{.spec.replicas}",
        );
        if replicas == "1" {
            Ok(())
        } else {
            Err(format!("my-namespace/php-apache at {replicas}"))
        }
    });
    let v2 = cluster.jsonpath(
        &[
            "hpa.v2beta2.autoscaling",
            "php-apache",
            "-n",
            "my-namespace",
        ],
        "{.status.desiredReplicas}",
    );
    assert_eq!(v2, "1");

    // An HPA whose target does not exist says why it cannot act.
    let out = cluster.kubectl_stdin(&["apply", "-f", "-"], Some(MISSING.as_bytes()));
    assert!(out.status.success(), "{}", out.describe());
    let reason = eventually(Duration::from_secs(20), || {
        let c = cluster.jsonpath(
            &["hpa", "orphan"],
            r#"{.status.conditions[?(@.type=="ScalingActive")].status}/{.status.conditions[?(@.type=="ScalingActive")].reason}"#,
        );
        if c.starts_with("False/") {
            Ok(c)
        } else {
            Err(format!("ScalingActive {c:?}"))
        }
    });
    assert_eq!(reason, "False/FailedGetScale");
    let describe = cluster.kubectl_ok(&["describe", "hpa", "orphan"]);
    assert!(
        describe.contains("deployments.apps \"nope\" not found"),
        "{describe}"
    );
    // Bad input is a 422, not a 500.
    let err = cluster.kubectl_err(&[
        "autoscale",
        "deployment",
        "php-apache",
        "--max=0",
        "--name=bad",
    ]);
    assert!(err.contains("maxReplicas") || err.contains("max"), "{err}");
}

const V2BETA2: &str = "apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata:
  name: php-apache
  namespace: my-namespace
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: php-apache
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
";

const MISSING: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: orphan
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nope}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
";

const SPINNERS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: spin
spec:
  replicas: 2
  selector:
    matchLabels: {app: spin}
  template:
    metadata:
      labels: {app: spin}
    spec:
      containers:
      - name: stress
        image: wasmkube/stress
        args: ['--cpu', 'spin']
        resources:
          limits: {cpu: 400m}
";

/// Per-container CPU time summed over the node's containers, from `/metrics/resource`.
fn containers_cpu(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("container_cpu_usage_seconds_total{"))
        .filter_map(|l| {
            l.rsplit_once('}')?
                .1
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

#[test]
fn container_cpu_adds_up_to_the_node_process_cpu() {
    let Some(cluster) = Cluster::server_with_kubectl(
        "container_cpu_adds_up_to_the_node_process_cpu",
        &["--metric-resolution", "1s"],
    ) else {
        return;
    };
    let _nodes = start_nodes(&cluster, &["solo"], &["--housekeeping-interval", "1s"]);
    let node = node_endpoint(&cluster, "solo");
    let process =
        |node: &str| sample(&http_get(node, "/metrics"), "process_cpu_seconds_total").unwrap();
    // The idle baseline: the agent with no pods (lease, heartbeats, watches, epoch ticker).
    let (t0, p0) = (Instant::now(), process(&node));
    std::thread::sleep(Duration::from_secs(4));
    let (t1, p1) = (Instant::now(), process(&node));
    let idle_rate = (p1 - p0) / (t1 - t0).as_secs_f64();

    cluster.apply_yaml(SPINNERS);
    eventually(Duration::from_secs(60), || {
        let running = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=spin",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name",
        ]);
        if running.lines().count() == 2 {
            Ok(())
        } else {
            Err(format!("running: {running}"))
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let read = || {
        let resource = http_get(&node, "/metrics/resource");
        (Instant::now(), process(&node), containers_cpu(&resource))
    };
    let (t2, p2, c2) = read();
    std::thread::sleep(Duration::from_secs(8));
    let (t3, p3, c3) = read();
    let wall = (t3 - t2).as_secs_f64();
    let process_cpu = (p3 - p2) - idle_rate * wall;
    let container_cpu = c3 - c2;
    let error = (process_cpu - container_cpu).abs() / process_cpu;
    eprintln!(
        "over {wall:.1} s: process {:.3} s (idle {idle_rate:.4}/s), containers {container_cpu:.3} s, \
         error {:.1}%",
        p3 - p2,
        error * 100.0
    );
    assert!(
        container_cpu > 0.5 * wall,
        "two 400m spinners use ~0.8 core: {container_cpu}"
    );
    assert!(
        error < 0.05,
        "containers {container_cpu:.3} s vs process minus idle {process_cpu:.3} s"
    );
    // And kubectl top sees the two limits.
    let top = eventually(Duration::from_secs(20), || {
        let out = cluster.kubectl_ok(&["top", "pods", "--no-headers", "-l", "app=spin"]);
        let cpus: Vec<u64> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(millis)
            .collect();
        if cpus.len() == 2 && cpus.iter().all(|c| (320..=480).contains(c)) {
            Ok(out)
        } else {
            Err(out)
        }
    });
    eprintln!("{top}");
}
