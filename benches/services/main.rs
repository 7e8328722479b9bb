//! `cargo bench --bench services`: what a Service costs (issue 8), side by side in one run.
//!
//! A `wasmkube server` and one `wasmkube node` run one `web` pod behind a ClusterIP Service
//! and a NodePort Service, and a toolbox pod. From inside the toolbox, `ab` (the toolbox's
//! sequential ApacheBench, a new connection per request) fetches the page straight from the
//! pod IP, through the ClusterIP (balanced at connect time in the socket layer), and by the
//! Service's name (cluster DNS on every connect); rounds alternate so drift hits all alike.
//! From the host, the same client loop in this process fetches it from the pod IP and through
//! the NodePort (the agent's host-side proxy).
//!
//! `-- --requests N` (default 2000 per round) and `-- --rounds R` (default 3). Results print
//! as a Markdown table for docs/benchmarks.md.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::api::{AttachParams, PostParams};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

#[allow(
    dead_code,
    reason = "shared with the pods benchmark, which uses more of it"
)]
#[path = "../pods/procs.rs"]
mod procs;

/// Requests per second and latency percentiles of one run.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mut requests, mut rounds) = (2000usize, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--requests" => {
                requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--requests N")?
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--rounds R")?
            }
            _ => {}
        }
    }
    let dir = tempfile::tempdir()?;
    let server = procs::start_server(dir.path()).await?;
    let _node = procs::start_node(dir.path(), &server.url, 20).await?;
    let client = kube::Client::try_from(kube::Config::new(server.url.parse()?))?;
    procs::wait_ready(&Api::<Node>::all(client.clone())).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, image: &str, extra: serde_json::Value| -> anyhow::Result<Pod> {
        let mut container = json!({"name": "main", "image": image});
        if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container]}
        }))?)
    };
    pods.create(
        &PostParams::default(),
        &pod(
            "web",
            "wasmkube/web",
            json!({"env": [{"name": "PORT", "value": "8080"}],
                "ports": [{"containerPort": 8080}]}),
        )?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("toolbox", "busybox", json!({"command": ["sleep", "3600"]}))?,
    )
    .await?;
    for (name, ty) in [("web", "ClusterIP"), ("web-np", "NodePort")] {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"type": ty, "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}]}
        }))?;
        services.create(&PostParams::default(), &svc).await?;
    }
    let pod_ip = running_ip(&pods, "web").await?;
    running_ip(&pods, "toolbox").await?;
    let cluster_ip = services
        .get("web")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("web has no ClusterIP")?;
    let node_port = services
        .get("web-np")
        .await?
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p.first().and_then(|p| p.node_port))
        .context("web-np has no nodePort")?;

    // Warm up: the first exec compiles nothing (the images are compiled by then), but the
    // endpoints reach the node's table a moment after the pod is ready.
    let warm = ab(&pods, &format!("http://{cluster_ip}/"), 50).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warm = warm;
    while warm.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        warm = ab(&pods, &format!("http://{cluster_ip}/"), 50).await;
    }
    warm.context("the ClusterIP never answered")?;
    host_get(&format!("127.0.0.1:{node_port}"), 50)?;

    let targets = [
        ("pod → pod IP", format!("http://{pod_ip}:8080/")),
        ("pod → ClusterIP", format!("http://{cluster_ip}/")),
        (
            "pod → Service name (DNS + ClusterIP)",
            "http://web/".to_string(),
        ),
    ];
    let mut inside = vec![Vec::new(); targets.len()];
    let mut outside = vec![Vec::new(); 2];
    for _ in 0..rounds {
        for (i, (_, url)) in targets.iter().enumerate() {
            inside[i].push(ab(&pods, url, requests).await?);
        }
        outside[0].push(host_get(&format!("{pod_ip}:8080"), requests)?);
        outside[1].push(host_get(&format!("127.0.0.1:{node_port}"), requests)?);
    }

    println!("{}", procs::machine());
    println!(
        "{requests} requests × {rounds} rounds per path, one at a time, a new connection each; \
         medians of the rounds.\n"
    );
    println!("| path | requests/s | p50 | p99 | vs direct (req/s) |\n|---|---:|---:|---:|---:|");
    let direct = median(&inside[0]);
    for (i, (name, _)) in targets.iter().enumerate() {
        row(name, median(&inside[i]), direct);
    }
    let host_direct = median(&outside[0]);
    row("host → pod IP", host_direct, host_direct);
    row(
        "host → NodePort (agent proxy)",
        median(&outside[1]),
        host_direct,
    );
    Ok(())
}

fn row(name: &str, run: Run, base: Run) {
    println!(
        "| {name} | {:.0} | {:.3} ms | {:.3} ms | {:.2}× |",
        run.rps,
        run.p50_ms,
        run.p99_ms,
        run.rps / base.rps
    );
}

/// The median round by requests per second.
fn median(runs: &[Run]) -> Run {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted[sorted.len() / 2]
}

/// Waits for a pod to run; its IP.
async fn running_ip(pods: &Api<Pod>, name: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = pods.get(name).await?.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Running")
            && let Some(ip) = status.pod_ip
        {
            return Ok(ip);
        }
        if Instant::now() > deadline {
            bail!("pod {name} not Running within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the toolbox's `ab -n N URL` and reads its summary.
async fn ab(pods: &Api<Pod>, url: &str, n: usize) -> anyhow::Result<Run> {
    let n = n.to_string();
    let mut proc = pods
        .exec(
            "toolbox",
            ["ab", "-n", n.as_str(), url],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await?;
    let mut out = String::new();
    proc.stdout()
        .context("stdout")?
        .read_to_string(&mut out)
        .await?;
    proc.join().await?;
    let field = |prefix: &str| -> Option<f64> {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    if field("Failed requests:") != Some(0.0) {
        bail!("ab {url} failed:\n{out}");
    }
    Ok(Run {
        rps: field("Requests per second:").context("no rate")?,
        p50_ms: field("50%").context("no p50")?,
        p99_ms: field("99%").context("no p99")?,
    })
}

/// `n` GETs of `/` at `addr` from this process, a new connection each.
fn host_get(addr: &str, n: usize) -> anyhow::Result<Run> {
    let mut times = Vec::with_capacity(n);
    let started = Instant::now();
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut buf = Vec::with_capacity(4096);
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        s.write_all(request.as_bytes())?;
        buf.clear();
        s.read_to_end(&mut buf)?;
        if !buf.starts_with(b"HTTP/1.1 200") {
            bail!("{addr}: {}", String::from_utf8_lossy(&buf));
        }
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Run {
        rps: n as f64 / total.as_secs_f64(),
        p50_ms: ms(times[n / 2]),
        p99_ms: ms(times[(n * 99).div_ceil(100).clamp(1, n) - 1]),
    })
}
