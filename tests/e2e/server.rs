//! One `wasmkube` process under test: started with a random API port, its stderr kept (the
//! tail) for failure messages, ready once it prints its URL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One running `wasmkube server` process.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `wasmkube COMMAND`, through `prefix` (e.g. `setpriv --reuid ...`) if not empty:
    /// then from a copy of the binary in the data directory, which the other user can reach
    /// wherever the checkout is.
    pub(crate) fn start(data_dir: &Path, command: &[String], prefix: &[String]) -> Server {
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let copy = data_dir.join("wasmkube");
                if !copy.exists() {
                    std::fs::copy(env!("CARGO_BIN_EXE_wasmkube"), &copy)
                        .expect("copy the wasmkube binary for the other user");
                }
                let mut cmd = Command::new(program);
                cmd.args(args).arg(copy);
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_wasmkube")),
        };
        let mut child = cmd
            .args(command)
            .args(["--port", "0", "--data-dir"])
            .arg(data_dir)
            .env("XDG_DATA_HOME", data_dir.join("xdg"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasmkube server");

        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let pipe = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut buf = sink.lock().expect("stderr buffer");
                // Keep the tail only: a chatty server must not grow the test's memory.
                if buf.len() > 256 * 1024 {
                    let cut = buf.len() - 128 * 1024;
                    let cut = (cut..buf.len())
                        .find(|&i| buf.is_char_boundary(i))
                        .unwrap_or(0);
                    buf.drain(..cut);
                }
                buf.push_str(&line);
                buf.push('\n');
            }
        });

        let lines = stdout_lines(child.stdout.take().expect("stdout is piped"));
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = String::new();
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                // `wasmkube: API server ready at http://...`; a word match, so "already" is not it.
                Ok(line)
                    if line
                        .split(|c: char| !c.is_alphanumeric())
                        .any(|w| w == "ready") =>
                {
                    break line;
                }
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => {
                            format!("no ready line within {READY_TIMEOUT:?}")
                        }
                        RecvTimeoutError::Disconnected => {
                            "stdout closed before the ready line".into()
                        }
                    };
                    let _ = child.kill();
                    let status = child.wait().ok();
                    thread::sleep(Duration::from_millis(50)); // let the stderr reader catch up
                    panic!(
                        "wasmkube server: {why} (exit: {status:?})\n--- stdout\n{seen}--- stderr\n{}",
                        stderr.lock().expect("stderr buffer")
                    );
                }
            }
        };

        // The contract is `... ready at http://127.0.0.1:PORT`; fall back to the kubeconfig.
        let url = match ready.split_whitespace().find(|w| w.starts_with("http://")) {
            Some(url) => url.trim_end_matches(['/', '.']).to_string(),
            None => kubeconfig_server(&data_dir.join("kubeconfig")).unwrap_or_else(|| {
                panic!("no URL in the ready line {ready:?} nor in the kubeconfig")
            }),
        };
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "the API server should listen on loopback, got {url}"
        );
        Server { child, url, stderr }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }
}

/// Forwards stdout lines over a channel, then keeps draining so the server never blocks on a full
/// pipe.
fn stdout_lines(pipe: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The `server:` of a kubeconfig, without a YAML parser.
pub fn kubeconfig_server(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().trim_matches(['"', '\'']).to_string())
        .next()
}
