//! `cargo bench --bench pods`: how fast pods start and how small they are, on a real node agent.
//!
//! Starts `wasmkube server` and `wasmkube node` as two processes (so the node agent's memory is
//! its own), then:
//!
//! 1. **latency**: creates `--latency` web pods one at a time and times each from the create
//!    request to the watch event that shows it `Running` (p50/p99). Pods carry
//!    `spec.nodeName`, so this is the node agent's path (the scheduler's cost is its own
//!    benchmark); the image is compiled by a warm-up pod first, so every start is
//!    "image present on machine".
//! 2. **burst**: creates `--burst` more web pods from 32 concurrent clients and measures pods
//!    reaching `Running` per second.
//! 3. **density**: the node agent's RSS and PSS before and after all those idle web pods are
//!    running, per pod; then the same `web` program built for the host runs as `--burst`
//!    native processes, and their summed RSS and PSS per process is the comparison.
//!
//! 4. **exec**: `--execs` times `web --version` in the warm-up pod through kube-rs's exec (a
//!    WebSocket through the API server to the node agent, a new instance in the pod's
//!    sandbox, the exit status back), one at a time, p50/p99; beside it, the host build of the
//!    same program spawned as a process as many times.
//!
//! Results and the machine's details are printed as a Markdown table for docs/benchmarks.md.

mod procs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, AttachParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

use procs::{memory, native_web, start_node, start_server};

/// The command line.
struct Opts {
    latency: usize,
    burst: usize,
    execs: usize,
    native: bool,
}

impl Opts {
    fn parse() -> anyhow::Result<Opts> {
        let mut o = Opts {
            latency: 200,
            burst: 1000,
            execs: 200,
            native: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut number = |name: &str| -> anyhow::Result<usize> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("{name} needs a number"))
            };
            match a.as_str() {
                "--latency" => o.latency = number("--latency")?,
                "--burst" => o.burst = number("--burst")?,
                "--execs" => o.execs = number("--execs")?,
                "--no-native" => o.native = false,
                // Cargo passes this to every bench target.
                "--bench" => {}
                other => {
                    bail!(
                        "unknown argument {other:?}; use --latency N, --burst N, --execs N, --no-native"
                    )
                }
            }
        }
        Ok(o)
    }
}

/// A web pod bound to the bench node.
fn web_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "nodeName": procs::NODE,
            "containers": [{"name": "web", "image": "wasmkube/web", "ports": [{"containerPort": 80}]}]
        }
    }))
    .expect("a valid pod")
}

/// Running pods as the watch reports them: name -> when first seen Running.
struct Running {
    rx: mpsc::UnboundedReceiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
}

impl Running {
    fn watch(pods: Api<Pod>) -> Running {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default())
                .applied_objects()
                .boxed();
            let mut told = std::collections::HashSet::new();
            while let Some(Ok(pod)) = stream.next().await {
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                let name = pod.metadata.name.clone().unwrap_or_default();
                if running && told.insert(name.clone()) && tx.send((name, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
        Running {
            rx,
            seen: HashMap::new(),
        }
    }

    /// Waits until `name` has been seen Running; returns when.
    async fn wait(&mut self, name: &str, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.seen.get(name) {
                return Ok(*t);
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((n, t))) => {
                    self.seen.insert(n, t);
                }
                Ok(None) => bail!("the pod watch ended"),
                Err(_) => bail!("pod {name} was not Running within {timeout:?}"),
            }
        }
    }
}

/// `kubectl exec warm -- web --version` through kube-rs; fails unless it printed the version
/// and succeeded.
async fn exec_version(pods: &Api<Pod>) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let params = AttachParams::default().stdout(true).stderr(false);
    let mut attached = pods.exec("warm", ["web", "--version"], &params).await?;
    let mut stdout = attached.stdout().context("no stdout")?;
    let status = attached.take_status().context("no status")?;
    let mut text = String::new();
    stdout.read_to_string(&mut text).await?;
    let status = status.await.context("no status message")?;
    attached.join().await?;
    if status.status.as_deref() != Some("Success") || !text.starts_with("web (wasmkube)") {
        bail!("exec failed: {status:?}, stdout {text:?}");
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn kib(bytes: u64) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse()?;
    let dir = tempfile::Builder::new()
        .prefix("wasmkube-bench-pods-")
        .tempdir()?;
    let pods_total = opts.latency + opts.burst + 1;
    eprintln!(
        "bench: starting wasmkube server and node (max-pods {})",
        pods_total + 10
    );
    let server = start_server(dir.path()).await?;
    let node = start_node(dir.path(), &server.url, pods_total + 10).await?;
    let client = kube::Client::try_from(kube::Config::new(server.url.parse()?))?;
    let nodes: Api<Node> = Api::all(client.clone());
    procs::wait_ready(&nodes).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut running = Running::watch(pods.clone());

    eprintln!("bench: warm-up pod (compiles wasmkube/web once)");
    pods.create(&PostParams::default(), &web_pod("warm"))
        .await?;
    running.wait("warm", Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = memory(node.pid())?;

    eprintln!("bench: {} pods one at a time", opts.latency);
    let mut latencies = Vec::with_capacity(opts.latency);
    for i in 0..opts.latency {
        let name = format!("lat-{i}");
        let t = Instant::now();
        pods.create(&PostParams::default(), &web_pod(&name)).await?;
        let at = running.wait(&name, Duration::from_secs(30)).await?;
        latencies.push(at.saturating_duration_since(t));
    }
    latencies.sort();

    eprintln!("bench: burst of {} pods from 32 clients", opts.burst);
    let names: Vec<String> = (0..opts.burst).map(|i| format!("burst-{i}")).collect();
    let queue = Arc::new(Mutex::new(names.clone()));
    let t0 = Instant::now();
    let mut creators = Vec::new();
    for _ in 0..32 {
        let (queue, pods) = (queue.clone(), pods.clone());
        creators.push(tokio::spawn(async move {
            loop {
                let Some(name) = queue.lock().await.pop() else {
                    return Ok::<(), kube::Error>(());
                };
                pods.create(&PostParams::default(), &web_pod(&name)).await?;
            }
        }));
    }
    for c in creators {
        c.await??;
    }
    let created = t0.elapsed();
    let mut last = t0;
    for name in &names {
        last = last.max(running.wait(name, Duration::from_secs(300)).await?);
    }
    let burst_time = last - t0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = memory(node.pid())?;
    let server_mem = memory(server.pid())?;
    let n = (opts.latency + opts.burst) as u64;
    let per_pod = |a: u64, b: u64| a.saturating_sub(b) / n.max(1);

    eprintln!("bench: {} execs of `web --version` in a pod", opts.execs);
    let mut execs = Vec::with_capacity(opts.execs);
    for _ in 0..opts.execs {
        let t = Instant::now();
        exec_version(&pods).await?;
        execs.push(t.elapsed());
    }
    execs.sort();

    let native = if opts.native {
        eprintln!("bench: {} native `web` processes", opts.burst);
        Some(native_web(dir.path(), opts.burst).await?)
    } else {
        None
    };
    let mut spawns = Vec::with_capacity(opts.execs);
    if let Some(native) = &native {
        for _ in 0..opts.execs {
            let t = Instant::now();
            let out = tokio::process::Command::new(&native.binary)
                .arg("--version")
                .output()
                .await?;
            if !out.status.success() || !out.stdout.starts_with(b"web (wasmkube)") {
                bail!("native `web --version` failed: {out:?}");
            }
            spawns.push(t.elapsed());
        }
        spawns.sort();
    }

    println!("{}", procs::machine());
    println!();
    println!("| metric | wasmkube | goal |");
    println!("|---|---:|---:|");
    println!(
        "| create -> Running p50 (1 at a time, {} pods) | {} | <= 15 ms |",
        opts.latency,
        ms(percentile(&latencies, 0.5))
    );
    println!(
        "| create -> Running p99 | {} | <= 50 ms |",
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "| burst: {} pods Running in | {:.2} s ({:.0} pods/s; creates took {:.2} s) | >= 300 pods/s |",
        opts.burst,
        burst_time.as_secs_f64(),
        opts.burst as f64 / burst_time.as_secs_f64(),
        created.as_secs_f64()
    );
    println!(
        "| node agent RSS: warm, 1 pod -> {} pods | {} -> {} | |",
        n + 1,
        mib(before.rss),
        mib(after.rss)
    );
    println!(
        "| RSS per idle web pod | {} | <= 128 KiB |",
        kib(per_pod(after.rss, before.rss))
    );
    println!(
        "| PSS per idle web pod | {} | |",
        kib(per_pod(after.pss, before.pss))
    );
    println!(
        "| API server RSS with {} pods stored | {} | |",
        n + 1,
        mib(server_mem.rss)
    );
    println!(
        "| exec `web --version` in a pod, p50 / p99 ({} execs) | {} / {} | |",
        opts.execs,
        ms(percentile(&execs, 0.5)),
        ms(percentile(&execs, 0.99))
    );
    if let Some(native) = &native {
        let k = opts.burst as u64;
        println!();
        println!(
            "| {} idle `web` servers | wasm pods (per pod) | native processes (per process) | ratio |",
            opts.burst
        );
        println!("|---|---:|---:|---:|");
        let (w_rss, w_pss) = (
            per_pod(after.rss, before.rss),
            per_pod(after.pss, before.pss),
        );
        let (n_rss, n_pss) = (native.rss / k, native.pss / k);
        println!(
            "| RSS | {} | {} | {:.2}x |",
            kib(w_rss),
            kib(n_rss),
            w_rss as f64 / n_rss.max(1) as f64
        );
        println!(
            "| PSS | {} | {} | {:.2}x |",
            kib(w_pss),
            kib(n_pss),
            w_pss as f64 / n_pss.max(1) as f64
        );
        println!(
            "| start all | {:.2} s | {:.2} s | {:.2}x |",
            burst_time.as_secs_f64(),
            native.start.as_secs_f64(),
            burst_time.as_secs_f64() / native.start.as_secs_f64().max(1e-6)
        );
        let ratio = |p: f64| {
            percentile(&execs, p).as_secs_f64() / percentile(&spawns, p).as_secs_f64().max(1e-9)
        };
        println!(
            "| `web --version`: kube-rs exec in a pod vs spawning the host binary, p50 | {} | {} | {:.1}x |",
            ms(percentile(&execs, 0.5)),
            ms(percentile(&spawns, 0.5)),
            ratio(0.5)
        );
        println!(
            "| same, p99 | {} | {} | {:.1}x |",
            ms(percentile(&execs, 0.99)),
            ms(percentile(&spawns, 0.99)),
            ratio(0.99)
        );
    }
    drop(node);
    drop(server);
    Ok(())
}
