//! `kubectl port-forward` end to end: the real kubectl 1.37 over SPDY/3.1 tunnelled in
//! WebSocket (its default) and over a plain SPDY/3.1 upgrade, to a pod and through a
//! Service's named target port; a 2 MiB download (past every flow-control window); a port
//! nobody listens on; the Python client's WebSocket channel form; `wasmkube port-forward`;
//! and the API server's Status answers to requests that cannot be forwarded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Cluster, FAST, OutputExt, python_path};

/// A running `... port-forward` process, killed on drop.
struct Forwarding {
    child: Child,
    /// The local port it printed.
    port: u16,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Forwarding {
    /// Spawns `cmd` and waits (20 s at most) for its `Forwarding from 127.0.0.1:PORT` line.
    fn start(mut cmd: Command) -> Forwarding {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut forwarding = Forwarding {
            child,
            port: 0,
            stderr,
        };
        while forwarding.port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                        let port = rest.split_whitespace().next().unwrap_or_default();
                        forwarding.port = port.parse().expect("a local port");
                    }
                }
                Err(_) => panic!(
                    "{what} printed no `Forwarding from` line; stderr: {}",
                    forwarding.stderr_text()
                ),
            }
        }
        // Keep draining stdout (`Handling connection for ...`) so the process never blocks.
        thread::spawn(move || while received.recv().is_ok() {});
        forwarding
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// `GET path` through the forward: the status line and the body.
    fn get(&self, path: &str) -> (String, Vec<u8>) {
        http_get(self.port, path).unwrap_or_else(|e| {
            panic!(
                "GET {path} through port {}: {e}; stderr: {}",
                self.port,
                self.stderr_text()
            )
        })
    }

    /// Waits up to `timeout` for the process to exit by itself.
    fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().expect("try_wait").is_some() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `Connection: close` GET on 127.0.0.1:`port`, read to the end.
fn http_get(port: u16, path: &str) -> Result<(String, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {:?}", String::from_utf8_lossy(&reply)))?;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, reply[split + 4..].to_vec()))
}

#[test]
fn port_forward_reaches_pods_and_services_with_every_client() {
    let Some(cluster) = Cluster::up_with_kubectl("portforward::clients", FAST) else {
        return;
    };
    cluster.apply_manifest("portforward.yaml");
    cluster.wait_running("pf-web");

    // kubectl's default: SPDY/3.1 tunnelled in WebSocket. Two connections through one forward.
    let pod = Forwarding::start(cluster.kubectl_command(&["port-forward", "pod/pf-web", ":80"]));
    for _ in 0..2 {
        let (status, body) = pod.get("/");
        assert_eq!(status, "HTTP/1.1 200 OK", "{}", pod.stderr_text());
        let page = String::from_utf8_lossy(&body);
        assert!(page.contains("pf-web"), "{page}");
    }

    // 2 MiB, well past the 64 KiB windows, put there by `kubectl cp` and fetched back.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    let local = dir.path().join("big.bin");
    std::fs::write(&local, &big).unwrap();
    cluster.kubectl_ok(&[
        "cp",
        local.to_str().unwrap(),
        "pf-web:/usr/share/nginx/html/big.bin",
    ]);
    let (status, body) = pod.get("/big.bin");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body == big, "got {} bytes of {}", body.len(), big.len());
    drop(pod);

    // A Service: kubectl maps service port 8080 to the pod's port named `http` itself.
    let svc = Forwarding::start(cluster.kubectl_command(&["port-forward", "svc/pf-web", ":8080"]));
    let (status, _) = svc.get("/");
    assert_eq!(status, "HTTP/1.1 200 OK", "{}", svc.stderr_text());
    drop(svc);

    // The plain SPDY/3.1 upgrade, kubectl's path with its WebSocket tunnel turned off.
    let mut cmd = cluster.kubectl_command(&["port-forward", "pf-web", ":80"]);
    cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    let spdy = Forwarding::start(cmd);
    let (status, body) = spdy.get("/big.bin");
    assert_eq!(status, "HTTP/1.1 200 OK", "{}", spdy.stderr_text());
    assert!(body == big, "got {} bytes over SPDY", body.len());
    drop(spdy);

    // Nobody listens on 9999: the node's error reaches kubectl, which gives up on the pod.
    let mut refused =
        Forwarding::start(cluster.kubectl_command(&["port-forward", "pod/pf-web", ":9999"]));
    assert!(
        http_get(refused.port, "/").is_err(),
        "a reply from port 9999"
    );
    assert!(
        refused.exited_within(Duration::from_secs(10)),
        "kubectl kept running after the error; stderr: {}",
        refused.stderr_text()
    );
    let stderr = refused.stderr_text();
    assert!(
        stderr.contains("An error occurred forwarding")
            && stderr.contains("error forwarding port 9999 to pod default/pf-web")
            && stderr.contains("lost connection to pod"),
        "{stderr}"
    );
    drop(refused);

    // The Python client's WebSocket channels (`?ports=80`), including the error channel.
    if let Some(python) = python_path("portforward::clients") {
        let out = cluster.python_script(&python, "portforward.py");
        assert!(
            out.stdout_text().contains("python port-forward: ok"),
            "tests/python/portforward.py: {}",
            out.describe()
        );
        assert!(
            out.stdout_text().contains("error forwarding port 9999"),
            "{}",
            out.describe()
        );
    }

    // `wasmkube port-forward` (kube-rs, the same channel form), to the pod and the Service.
    for target in ["pod/pf-web", "svc/pf-web"] {
        let remote = if target.starts_with("svc") {
            ":8080"
        } else {
            ":80"
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmkube"));
        cmd.arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["port-forward", target, remote])
            .env_remove("KUBECONFIG")
            .env("NO_PROXY", "127.0.0.1,localhost");
        let ours = Forwarding::start(cmd);
        for _ in 0..2 {
            let (status, body) = ours.get("/");
            assert_eq!(status, "HTTP/1.1 200 OK", "{}", ours.stderr_text());
            assert!(String::from_utf8_lossy(&body).contains("pf-web"));
        }
    }

    // Bad requests get a Status, before anything reaches the node.
    let path = "/api/v1/namespaces/default/pods/pf-web/portforward";
    let plain = cluster.http("POST", path, None, b"");
    assert_eq!(plain.status, 400, "{plain:?}");
    assert_eq!(plain.json()["message"], "Upgrade request required");
    let named = cluster.http("POST", &format!("{path}?ports=http"), None, b"");
    assert_eq!(named.status, 400, "{named:?}");
    assert_eq!(named.json()["reason"], "BadRequest");
    let missing = cluster.http(
        "POST",
        "/api/v1/namespaces/default/pods/nope/portforward",
        None,
        b"",
    );
    assert_eq!(missing.status, 404, "{missing:?}");

    // The node agent is still serving after all of it.
    let after = Forwarding::start(cluster.kubectl_command(&["port-forward", "pod/pf-web", ":80"]));
    assert_eq!(after.get("/").0, "HTTP/1.1 200 OK");
}
