//! The two servers under test: wasmkube's API server and etcd 3.4, each a child process.

use super::*;
use crate::http::*;
// ---------------------------------------------------------------------------------------------
// The two servers.

/// Which server a request goes to; decides the request's shape and its expected status.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Wasmkube,
    Etcd,
}

/// A server process under test.
pub(crate) struct Server {
    pub(crate) kind: Kind,
    pub(crate) addr: SocketAddr,
    pub(crate) child: Child,
    /// Held so the server's later prints never hit a closed pipe.
    pub(crate) _stdout: Option<ChildStdout>,
    pub(crate) log: PathBuf,
}

impl Server {
    pub(crate) async fn wasmkube(dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join("wasmkube.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmkube"))
            .arg("server")
            .args(["--port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start `wasmkube server`")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let url = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    bail!("wasmkube exited before it was ready");
                }
                if let Some(url) = line
                    .trim()
                    .strip_prefix("wasmkube: API server ready at http://")
                {
                    return Ok(url.trim_end_matches('/').to_string());
                }
            }
        })
        .await
        .map_err(|_| anyhow::anyhow!("wasmkube was not ready within {START_TIMEOUT:?}"))
        .and_then(|r| r)
        .with_context(|| format!("log:\n{}", tail(&log)))?;
        let addr = url
            .parse()
            .with_context(|| format!("bad address in the ready line: {url}"))?;
        Ok(Server {
            kind: Kind::Wasmkube,
            addr,
            child,
            _stdout: Some(lines.into_inner()),
            log,
        })
    }

    pub(crate) async fn etcd(dir: &Path) -> anyhow::Result<Self> {
        if !on_path("etcd") {
            bail!(
                "`etcd` is not on PATH: install etcd-server (apt-get install etcd-server), \
                 or pass --no-etcd"
            );
        }
        let client = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let log = dir.join("etcd.log");
        let child = Command::new("etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("bench={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start etcd")?;
        let addr = client
            .trim_start_matches("http://")
            .parse()
            .context("etcd client address")?;
        let mut server = Server {
            kind: Kind::Etcd,
            addr,
            child,
            _stdout: None,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut conn) = Conn::connect(addr).await
                && let Ok(200) = conn.request("GET", "/health", b"").await
                && conn.body.windows(6).any(|w| w == b"\"true\"")
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("etcd exited ({status}); log:\n{}", tail(&server.log));
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd was not healthy within {START_TIMEOUT:?}; log:\n{}",
                    tail(&server.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self.kind {
            Kind::Wasmkube => "wasmkube",
            Kind::Etcd => "etcd 3.4",
        }
    }

    /// Resident memory from `/proc/PID/status`, in KiB.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// The request that creates pod `name` (for etcd: the raw put of its key), and the status
    /// that means success.
    pub(crate) fn create(&self, name: &str) -> (&'static str, &'static str, Vec<u8>, u16) {
        let pod = pod_json(name);
        match self.kind {
            Kind::Wasmkube => ("POST", "/api/v1/namespaces/default/pods", pod, 201),
            Kind::Etcd => {
                let body = format!(
                    r#"{{"key":"{}","value":"{}"}}"#,
                    base64(format!("/registry/pods/default/{name}").as_bytes()),
                    base64(&pod)
                );
                ("POST", "/v3/kv/put", body.into_bytes(), 200)
            }
        }
    }

    /// The request that reads pod `name` back (for etcd: a range of its one key).
    pub(crate) fn get(&self, name: &str) -> (&'static str, String, Vec<u8>) {
        match self.kind {
            Kind::Wasmkube => (
                "GET",
                format!("/api/v1/namespaces/default/pods/{name}"),
                Vec::new(),
            ),
            Kind::Etcd => (
                "POST",
                "/v3/kv/range".to_string(),
                format!(
                    r#"{{"key":"{}"}}"#,
                    base64(format!("/registry/pods/default/{name}").as_bytes())
                )
                .into_bytes(),
            ),
        }
    }
}

/// A small, realistic Pod: what `kubectl run` or a Deployment would send.
pub(crate) fn pod_json(name: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default","labels":{{"app":"bench","run":"{name}"}}}},"spec":{{"containers":[{{"name":"nginx","image":"nginx:1.27","ports":[{{"containerPort":80,"protocol":"TCP"}}],"resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}}}}}}],"restartPolicy":"Always"}}}}"#
    )
    .into_bytes()
}

pub(crate) fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(binary).is_file()))
}

pub(crate) fn free_port() -> std::io::Result<u16> {
    // Bound and released at once; another process taking it in between is unlikely enough.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
