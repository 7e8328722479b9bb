//! The guests' own promises, inside a cluster (issue 5): kv keeps every acknowledged write
//! through a `kill -9` of the node agent in the middle of a write stream; web serves 100
//! keep-alive clients at once while a slow client holds a half-sent request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::support::{Cluster, FAST, eventually};

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// Sends a request and reads the whole response: `(status, body)`.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

const KV_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kv
spec:
  containers:
  - name: kv
    image: wasmkube/kv
    ports:
    - containerPort: 8080
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    emptyDir: {}
";

/// A connection once `GET path` answers 200 (a server listens a moment after Running).
fn connect_when_listening(addr: &str, path: &str) -> Conn {
    eventually(Duration::from_secs(30), || {
        let mut conn = Conn::open(addr).map_err(|e| e.to_string())?;
        match conn.request("GET", path, b"") {
            Ok((200, _)) => Ok(conn),
            other => Err(format!("{other:?}")),
        }
    })
}

#[test]
fn kv_keeps_acknowledged_writes_through_a_kill_9() {
    let Some(mut cluster) = Cluster::up_with_kubectl("guests::kv_kill", FAST) else {
        return;
    };
    cluster.apply_yaml(KV_POD);
    cluster.wait_running("kv");
    let addr = format!(
        "{}:8080",
        cluster.jsonpath(&["pod", "kv"], "{.status.podIP}")
    );
    connect_when_listening(&addr, "/healthz");

    // A writer acknowledges keys as fast as kv syncs them; the agent dies under it.
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (acked, addr) = (acked.clone(), addr.clone());
        std::thread::spawn(move || {
            let Ok(mut conn) = Conn::open(&addr) else {
                return;
            };
            for i in 0.. {
                let value = format!("value-{i}-{}", "x".repeat(i % 300));
                match conn.request("PUT", &format!("/keys/k{i}"), value.as_bytes()) {
                    Ok((code, _)) if code < 300 => acked.store(i + 1, Ordering::SeqCst),
                    _ => return,
                }
            }
        })
    };
    eventually(Duration::from_secs(30), || {
        let n = acked.load(Ordering::SeqCst);
        if n >= 200 {
            Ok(())
        } else {
            Err(format!("{n} writes acknowledged"))
        }
    });
    cluster.kill();
    writer.join().unwrap();
    let acknowledged = acked.load(Ordering::SeqCst);

    cluster.restart();
    cluster.wait_for("kv", "{.status.containerStatuses[0].restartCount}", "1");
    let mut conn = connect_when_listening(&addr, "/healthz");
    for i in 0..acknowledged {
        let (code, body) = conn.request("GET", &format!("/keys/k{i}"), b"").unwrap();
        let want = format!("value-{i}-{}", "x".repeat(i % 300));
        assert_eq!(
            (code, String::from_utf8_lossy(&body).into_owned()),
            (200, want),
            "key k{i} of {acknowledged} acknowledged"
        );
    }
}

#[test]
fn web_serves_100_keep_alive_clients_past_a_slow_one() {
    let Some(cluster) = Cluster::up_with_kubectl("guests::web_clients", FAST) else {
        return;
    };
    cluster.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    \
         image: wasmkube/web\n    env:\n    - {name: PORT, value: \"8080\"}\n",
    );
    cluster.wait_running("web");
    let addr = format!(
        "{}:8080",
        cluster.jsonpath(&["pod", "web"], "{.status.podIP}")
    );
    connect_when_listening(&addr, "/");

    // The slow client sends half a request and then nothing.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        .unwrap();

    let clients = 100;
    let per_client = 20;
    let start = Arc::new(Barrier::new(clients));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, start, done, failed) =
                (addr.clone(), start.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr).expect("connect");
                start.wait();
                for _ in 0..per_client {
                    match conn.request("GET", "/", b"") {
                        Ok((200, body)) if !body.is_empty() => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!("request failed: {other:?}");
                            failed.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        !failed.load(Ordering::Relaxed),
        "every keep-alive request was answered"
    );
    assert_eq!(done.load(Ordering::Relaxed), clients * per_client);
    eprintln!(
        "{} requests on {clients} keep-alive connections in {:?}",
        clients * per_client,
        began.elapsed()
    );
    // The slow client is still being waited for, not dropped or answered early.
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(slow.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the half-sent request is neither answered nor dropped"
    );
    slow.write_all(b"1\r\n\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(slow);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}
