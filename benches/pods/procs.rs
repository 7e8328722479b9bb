//! The processes of the pod benchmark: `wasmkube server`, `wasmkube node`, and the native
//! `web` servers it is compared with; their memory from `/proc`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The bench node's name.
pub const NODE: &str = "bench";

/// A child process, killed when dropped.
pub struct Child {
    child: tokio::process::Child,
    /// Where the API is, for the server.
    pub url: String,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// Starts `wasmkube server` with a pod range of its own; waits for its ready line.
pub async fn start_server(dir: &Path) -> anyhow::Result<Child> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args([
            "server",
            "--port",
            "0",
            "--cluster-cidr",
            "127.96.0.0/14",
            "--data-dir",
        ])
        .arg(dir.join("server"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
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
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child { child, url })
}

/// Starts `wasmkube node` joining `server`, sized for `max_pods`.
pub async fn start_node(dir: &Path, server: &str, max_pods: usize) -> anyhow::Result<Child> {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmkube"))
        .args([
            "node",
            "--server",
            server,
            "--name",
            NODE,
            "--kubelet-port",
            "0",
        ])
        .args(["--max-pods", &max_pods.to_string(), "--node-cpu", "2"])
        .arg("--data-dir")
        .arg(dir.join("node"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("node.log"))?)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `wasmkube node`")?;
    Ok(Child {
        child,
        url: String::new(),
    })
}

/// Waits until the bench node is Ready.
pub async fn wait_ready(nodes: &Api<Node>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(node) = nodes.get(NODE).await {
            let ready = node
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node {NODE} was not Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident and proportional set sizes, in bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
}

/// `Rss:` and `Pss:` of `/proc/PID/smaps_rollup`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading the memory of process {pid}"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    Ok(Memory {
        rss: field("Rss:"),
        pss: field("Pss:"),
    })
}

/// What `count` native web servers cost.
pub struct Native {
    pub rss: u64,
    pub pss: u64,
    pub start: Duration,
    /// The host build of `web`.
    pub binary: std::path::PathBuf,
}

/// Builds the `web` guest for the host and runs `count` copies, each on its own port, until
/// each answers; returns their summed memory and the time to start them all.
pub async fn native_web(dir: &Path, count: usize) -> anyhow::Result<Native> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("wasm-examples-native");
    eprintln!("bench: building the `web` guest for the host (cargo build --release)");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "web",
            "--manifest-path",
        ])
        .arg(root.join("wasm-examples/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .await?;
    if !status.success() {
        bail!("building the native web server failed");
    }
    let binary = target.join("release").join("web");
    let content = dir.join("native-root");
    std::fs::create_dir_all(&content)?;
    let t0 = Instant::now();
    let mut children = Vec::with_capacity(count);
    for i in 0..count {
        let port = 20000 + i;
        children.push(
            Command::new(&binary)
                .env("PORT", port.to_string())
                .env("WEB_ROOT", &content)
                .env("HOSTNAME", format!("native-{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    for i in 0..count {
        let addr = format!("127.0.0.1:{}", 20000 + i);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            if Instant::now() > deadline {
                bail!("native web server on {addr} did not start");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let start = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut total = Memory::default();
    for c in &children {
        let m = memory(c.id().unwrap_or(0))?;
        total.rss += m.rss;
        total.pss += m.pss;
    }
    drop(children);
    Ok(Native {
        rss: total.rss,
        pss: total.pss,
        start,
        binary,
    })
}

/// The machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("Machine: {cores} cores ({cpu}), Linux {}", kernel.trim())
}
