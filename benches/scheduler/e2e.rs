//! The end-to-end part: binds per second through a real API server.
//!
//! Starts `wasmkube server` as a process, registers simulated nodes through the API as a
//! node agent would (create, then `nodes/status` with allocatable and `Ready=True`; the node
//! monitor grace period is raised so the node lifecycle controller leaves them Ready without
//! Leases), creates a backlog of pods, then starts the scheduler and times until the watch
//! has shown every pod bound. Each bind is two writes (the Binding and the `Scheduled`
//! Event). Then, with the scheduler running, a burst of creates from 32 clients and the time
//! until all are bound (creates and binds share the server).
//!
//! The scheduler runs in this process, talking to the server over HTTP like any client,
//! unless the server already binds pods by itself (once it runs its own scheduler): then
//! that one is measured and the report says so.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the end-to-end part measured.
pub struct Report {
    nodes: usize,
    pods: usize,
    scheduler: &'static str,
    backlog: Duration,
    burst: Duration,
    busiest: usize,
}

impl Report {
    /// Prints the Markdown table.
    pub fn print(&self) {
        println!(
            "\n### End to end (`wasmkube server`, {} simulated nodes, scheduler {})\n",
            self.nodes, self.scheduler
        );
        println!("| phase | pods | time | pods bound/s |");
        println!("|---|---:|---:|---:|");
        let rate = |d: Duration| self.pods as f64 / d.as_secs_f64();
        println!(
            "| backlog: scheduler started with all pods pending | {} | {:.2} s | {:.0} |",
            self.pods,
            self.backlog.as_secs_f64(),
            rate(self.backlog)
        );
        println!(
            "| burst: 32 clients create, scheduler running | {} | {:.2} s | {:.0} |",
            self.pods,
            self.burst.as_secs_f64(),
            rate(self.burst)
        );
        println!("\nBusiest node afterwards: {} pods (of 110).", self.busiest);
    }
}

/// Starts `wasmkube server` in `dir`; returns the child (killed on drop) and the API URL.
async fn start_server(dir: &std::path::Path) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args([
            "server",
            "--port",
            "0",
            "--node-monitor-grace-period",
            "1h",
            "--data-dir",
        ])
        .arg(dir.join("server"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `wasmkube server`")?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.trim().strip_prefix("wasmkube: API server ready at ") {
                return Ok(url.trim_end_matches('/').to_string());
            }
        }
        bail!("wasmkube server exited before it was ready")
    })
    .await
    .context("wasmkube server was not ready within 30 s")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

/// A simulated node as the API should hold it: created, then its status written.
async fn register(nodes: &Api<Node>, i: usize) -> anyhow::Result<()> {
    let mut node = super::node(i);
    let status = node.status.take();
    nodes.create(&PostParams::default(), &node).await?;
    let name = node.metadata.name.clone().unwrap_or_default();
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// Pod `i` for the API: the decision bench's mix, in `default`, without a uid.
fn api_pod(prefix: &str, i: usize) -> Pod {
    let mut pod = super::pod(i);
    pod.metadata.name = Some(format!("{prefix}-{i}"));
    pod.metadata.namespace = None;
    pod.metadata.uid = None;
    pod
}

async fn create_pods(pods: &Api<Pod>, prefix: &str, count: usize) -> anyhow::Result<()> {
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            let pod = api_pod(prefix, i);
            async move { pods.create(&PostParams::default(), &pod).await.map(drop) }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Names of pods as they are first seen bound.
fn watch_bound(pods: Api<Pod>) -> mpsc::UnboundedReceiver<(String, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default())
            .applied_objects()
            .boxed();
        let mut told = HashSet::new();
        while let Some(Ok(pod)) = stream.next().await {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if told.insert(name.clone()) && tx.send((name, node)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits until `count` pods whose name starts with `prefix` were seen bound.
async fn wait_bound(
    rx: &mut mpsc::UnboundedReceiver<(String, String)>,
    per_node: &mut BTreeMap<String, usize>,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    let mut seen = 0;
    while seen < count {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some((name, node))) => {
                if name.starts_with(prefix) {
                    seen += 1;
                }
                *per_node.entry(node).or_default() += 1;
            }
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => bail!("only {seen} of {count} {prefix} pods were bound within 120 s"),
        }
    }
    Ok(())
}

/// Runs the end-to-end part.
pub async fn run(pods_count: usize, node_count: usize) -> anyhow::Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix("wasmkube-bench-scheduler-")
        .tempdir()?;
    eprintln!("bench: starting wasmkube server, {node_count} nodes, {pods_count} pending pods");
    let (_server, url) = start_server(dir.path()).await?;
    let client = kube::Client::try_from(kube::Config::new(url.parse()?))?;
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..node_count)
        .map(|i| register(&nodes, i))
        .buffer_unordered(32)
        .try_collect::<()>()
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut bound = watch_bound(pods.clone());
    let mut per_node = BTreeMap::new();
    create_pods(&pods, "backlog", pods_count).await?;

    // Does the server schedule by itself? Then measure that scheduler, not a second one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server_schedules = bound.try_recv().is_ok();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let scheduler = if server_schedules {
        eprintln!("bench: the server binds pods itself; measuring its scheduler");
        None
    } else {
        let options = controlplane::scheduler::SchedulerOptions::default();
        Some(tokio::spawn(controlplane::scheduler::run(
            client.clone(),
            options,
            stop.clone(),
        )))
    };
    let already = usize::from(server_schedules);
    wait_bound(&mut bound, &mut per_node, "backlog", pods_count - already).await?;
    let backlog = started.elapsed();

    eprintln!("bench: burst of {pods_count} creates while the scheduler runs");
    let started = Instant::now();
    let (created, waited) = tokio::join!(
        create_pods(&pods, "burst", pods_count),
        wait_bound(&mut bound, &mut per_node, "burst", pods_count)
    );
    created?;
    waited?;
    let burst = started.elapsed();

    stop.cancel();
    if let Some(task) = scheduler {
        task.await?;
    }
    Ok(Report {
        nodes: node_count,
        pods: pods_count,
        scheduler: if server_schedules {
            "in the server"
        } else {
            "in the bench process, over HTTP"
        },
        backlog,
        burst,
        busiest: per_node.values().copied().max().unwrap_or(0),
    })
}
