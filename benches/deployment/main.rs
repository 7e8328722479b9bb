//! `cargo bench --bench deployment`: a 1,000-replica Deployment on `wasmkube up --nodes 3`
//! (issue 6): the time from the create request until every replica is Ready (through the
//! Deployment and ReplicaSet controllers, the scheduler and three in-process node agents),
//! and the process's memory before and after.
//!
//! `-- --replicas N` changes the size. Results print as a Markdown table for
//! docs/benchmarks.md.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[allow(
    dead_code,
    reason = "shared with the pods benchmark, which uses more of it"
)]
#[path = "../pods/procs.rs"]
mod procs;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut replicas: i32 = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--replicas" {
            replicas = args
                .next()
                .and_then(|v| v.parse().ok())
                .context("--replicas N")?;
        }
    }
    let dir = tempfile::tempdir()?;
    let max_pods = (replicas / 3 + 50).to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args(["up", "--port", "0", "--nodes", "3", "--kubelet-port", "0"])
        .args([
            "--max-pods",
            &max_pods,
            "--cluster-cidr",
            "127.96.0.0/14",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("WASMKUBE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("up.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `wasmkube up`")?;
    let pid = child.id().unwrap_or(0);
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.trim().strip_prefix("wasmkube: API server ready at ") {
                return Ok(url.to_string());
            }
        }
        bail!("wasmkube up exited before it was ready")
    })
    .await??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = kube::Client::try_from(kube::Config::new(url.parse()?))?;

    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while nodes.list(&Default::default()).await?.items.len() < 3 {
        if Instant::now() > deadline {
            bail!("3 nodes did not register within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the image compile once before timing (a warm-up Deployment of one).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let make = |name: &str, n: i32| -> anyhow::Result<Deployment> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "web", "image": "wasmkube/web:latest",
                        "imagePullPolicy": "IfNotPresent"}]}}}
        }))?)
    };
    deployments
        .create(&PostParams::default(), &make("warm", 1)?)
        .await?;
    wait_ready(&deployments, "warm", 1, Duration::from_secs(120)).await?;
    let idle = procs::memory(pid)?;

    let started = Instant::now();
    deployments
        .create(&PostParams::default(), &make("web", replicas)?)
        .await?;
    let half = wait_ready(&deployments, "web", replicas / 2, Duration::from_secs(600)).await?;
    let all = wait_ready(&deployments, "web", replicas, Duration::from_secs(600)).await?;
    let _ = half;
    let half_at = half.duration_since(started);
    let all_at = all.duration_since(started);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = procs::memory(pid)?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("{}", procs::machine());
    println!("| metric | value |\n|---|---:|");
    println!("| replicas | {replicas} |");
    println!("| half Ready after | {:.2} s |", half_at.as_secs_f64());
    println!("| all Ready after | {:.2} s |", all_at.as_secs_f64());
    println!(
        "| pods Ready per second | {:.0} |",
        f64::from(replicas) / all_at.as_secs_f64()
    );
    println!(
        "| RSS of `up` (control plane + 3 nodes), 1 pod | {:.1} MiB |",
        mib(idle.rss)
    );
    println!(
        "| RSS of `up`, {replicas} more pods | {:.1} MiB |",
        mib(loaded.rss)
    );
    println!(
        "| RSS per pod | {:.0} KiB |",
        (loaded.rss.saturating_sub(idle.rss)) as f64 / 1024.0 / f64::from(replicas)
    );
    let _ = child.kill().await;
    Ok(())
}

/// Waits until the Deployment has `want` ready replicas; returns when.
async fn wait_ready(
    api: &Api<Deployment>,
    name: &str,
    want: i32,
    limit: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let ready = api
            .get(name)
            .await?
            .status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if ready >= want {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{name}: {ready} of {want} ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
