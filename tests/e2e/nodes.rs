//! Node agents as their own processes (`wasmkube node --server URL`), so a test can kill one
//! the way a machine dies.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{COMPILE_CACHE, Cluster, FAST, eventually};

/// One `wasmkube node` process, killed on drop.
pub struct NodeProcess {
    /// The Node's name.
    pub name: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts node `name` at `127.1.index.1` joining `cluster`, with shortened timers and
    /// `extra` flags.
    pub fn start(cluster: &Cluster, name: &str, index: u8, extra: &[&str]) -> NodeProcess {
        let dir = tempfile::Builder::new()
            .prefix("wasmkube-node-")
            .tempdir()
            .expect("node data dir");
        let address = format!("127.1.{index}.1");
        let child = Command::new(env!("CARGO_BIN_EXE_wasmkube"))
            .args([
                "node",
                "--server",
                cluster.url(),
                "--name",
                name,
                "--address",
                &address,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--kubelet-port", "0", "--compile-cache", COMPILE_CACHE])
            .args(["--node-lease-renew-interval", "1s"])
            .args(FAST)
            .args(extra)
            .env("XDG_DATA_HOME", dir.path().join("xdg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("node.log")).expect("node log"),
            ))
            .spawn()
            .expect("spawn wasmkube node");
        NodeProcess {
            name: name.into(),
            child: Some(child),
            _dir: dir,
        }
    }

    /// The node agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self._dir.path().join("node.log")
    }

    /// `kill -9`: the machine is gone, nothing is cleaned up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail = &log[log.len().saturating_sub(3000)..];
            eprintln!("--- node {} log (tail)\n{tail}", self.name);
        }
        self.kill();
    }
}

/// Starts `names.len()` node processes and waits until all are Ready.
pub fn start_nodes(cluster: &Cluster, names: &[&str], extra: &[&str]) -> Vec<NodeProcess> {
    let nodes: Vec<NodeProcess> = names
        .iter()
        .enumerate()
        .map(|(i, n)| NodeProcess::start(cluster, n, i as u8 + 1, extra))
        .collect();
    eventually(Duration::from_secs(30), || {
        let ready = cluster.kubectl_ok(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}"#,
        ]);
        let all = names.iter().all(|n| ready.contains(&format!("{n}=True")));
        if all {
            Ok(())
        } else {
            Err(format!("nodes: {ready}"))
        }
    });
    nodes
}
