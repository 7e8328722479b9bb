//! Fixtures shared by the end-to-end tests: a [`Cluster`] that runs the real `wasmkube server` binary
//! on a random loopback port with its own data directory, and helpers to drive it with the real
//! kubectl 1.37, the `wasmkube` CLI, Python, or a tiny raw HTTP client.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{HttpResponse, http_request};
use crate::server::Server;
pub use crate::server::kubeconfig_server;

/// How long one client command (kubectl, python, wasmkube) may run before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// The kubectl minor version the project is tested against.
const KUBECTL_VERSION: &str = "v1.37.";

/// The repository root (the root package's manifest directory).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A manifest under `tests/manifests/`.
pub fn manifest(name: &str) -> PathBuf {
    repo_root().join("tests/manifests").join(name)
}

/// Whether peers (kubectl, Python) must be present: in CI a missing one fails instead of skipping.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds a peer program through `env_var`, else at `<repo>/<default>`. Missing: panics in CI,
/// otherwise prints a skip line for `test` and returns `None`.
fn find_peer(test: &str, env_var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    if path.is_file() {
        return Some(path);
    }
    let msg = format!(
        "{} not found (set {env_var} or run scripts/test.sh to create .venv)",
        path.display()
    );
    if in_ci() {
        panic!("{test}: {msg}");
    }
    println!("skipping {test}: {msg}");
    None
}

/// Docker's registry (`apt-get install docker-registry`), or `None` (after printing a skip
/// line) when it is missing outside CI.
pub fn registry_path(test: &str) -> Option<PathBuf> {
    find_peer(test, "WASMKUBE_REGISTRY", "/usr/bin/docker-registry")
}

/// The kubectl 1.37 binary, or `None` (after printing a skip line) when it is missing outside CI.
pub fn kubectl_path(test: &str) -> Option<PathBuf> {
    let path = find_peer(test, "WASMKUBE_KUBECTL", ".venv/bin/kubectl")?;
    static CHECKED: OnceLock<String> = OnceLock::new();
    let version = CHECKED.get_or_init(|| {
        let out = run(Command::new(&path).args(["version", "--client"]), None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    assert!(
        version.contains(&format!("Client Version: {KUBECTL_VERSION}")),
        "{} is not kubectl {KUBECTL_VERSION}x: {version}",
        path.display()
    );
    Some(path)
}

/// The venv's Python with the `kubernetes` client, or `None` (after a skip line) outside CI.
pub fn python_path(test: &str) -> Option<PathBuf> {
    find_peer(test, "WASMKUBE_PYTHON", ".venv/bin/python")
}

/// Runs a command to completion with an optional stdin, killing it after [`COMMAND_TIMEOUT`].
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let status = wait_timeout(&mut child, COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{what} did not finish within {COMMAND_TIMEOUT:?}"));
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` to exit; kills it and returns `None` after `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `check` every 100 ms until it returns `Ok`, failing the test with the last error after
/// `timeout`.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("condition not met within {timeout:?}; last: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Stdout and stderr of a finished command, as text.
pub trait OutputExt {
    /// Stdout as UTF-8 (lossy).
    fn stdout_text(&self) -> String;
    /// Stderr as UTF-8 (lossy).
    fn stderr_text(&self) -> String;
    /// A summary for assertion messages.
    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.status_code(),
            self.stdout_text(),
            self.stderr_text()
        )
    }
    /// The exit code, or -1 when killed by a signal.
    fn status_code(&self) -> i32;
}

impl OutputExt for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn status_code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// One compile cache for every test cluster: each image is compiled once per run.
pub const COMPILE_CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/wasm-cache");

/// A pod range of its own for each cluster of a test run (they share the loopback network).
pub fn next_cluster_cidr() -> String {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let block = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 16;
    format!("127.{}.0.0/14", 64 + 4 * block)
}

/// A `toolbox` pod (the busybox stand-in) that sleeps, for `kubectl exec` into the cluster.
pub const TOOLBOX: &str = "apiVersion: v1
kind: Pod
metadata:
  name: toolbox
spec:
  containers:
  - name: busybox
    image: busybox
    command: [sleep, '3600']
";

/// Whether the tests run as root, and the command prefix that runs a server as an ordinary
/// user: as root, `nobody` through setpriv; as anyone else, nothing.
pub fn as_ordinary_user() -> (bool, &'static [&'static str]) {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let prefix: &[&str] = if root {
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        &[]
    };
    (root, prefix)
}

/// Flags that shorten the node agent's timers so restarts show within seconds.
pub const FAST: &[&str] = &[
    "--backoff-base",
    "1s",
    "--backoff-max",
    "4s",
    "--sync-frequency",
    "2s",
    "--node-status-update-frequency",
    "2s",
];

/// A `wasmkube server` with its own temporary data directory, killed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    server: Option<Server>,
    kubectl: Option<PathBuf>,
    /// `server`, or `up` with its flags.
    command: Vec<String>,
    /// What the server runs under (`setpriv ...`), if anything.
    prefix: Vec<String>,
}

impl Cluster {
    /// Starts a server on a random port; only the `wasmkube` CLI and raw HTTP are available.
    pub fn start() -> Cluster {
        Cluster::start_with(&["server"])
    }

    /// Starts `wasmkube COMMAND...` (e.g. `up --nodes 1 ...`) with a random API port.
    pub fn start_with(command: &[&str]) -> Cluster {
        Cluster::start_as(command, &[])
    }

    /// Starts `PREFIX... wasmkube COMMAND...`, e.g. under `setpriv` as another user (the data
    /// directory is then open to everyone).
    pub fn start_as(command: &[&str], prefix: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("wasmkube-e2e-")
            .tempdir()
            .expect("temp data dir");
        if !prefix.is_empty() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("open the data dir to the other user");
        }
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        let server = Server::start(dir.path(), &command, &prefix);
        let cluster = Cluster {
            dir,
            server: Some(server),
            kubectl: None,
            command,
            prefix,
        };
        eventually(Duration::from_secs(5), || {
            let path = cluster.kubeconfig();
            match kubeconfig_server(&path) {
                Some(s) if s == cluster.url() => Ok(()),
                other => Err(format!("{}: server {other:?}", path.display())),
            }
        });
        cluster
    }

    /// Starts a server and finds kubectl 1.37; `None` (the test should return) when kubectl is
    /// missing outside CI.
    pub fn with_kubectl(test: &str) -> Option<Cluster> {
        let kubectl = kubectl_path(test)?;
        let mut cluster = Cluster::start();
        cluster.kubectl = Some(kubectl);
        Some(cluster)
    }

    /// Starts `wasmkube server` (with `flags`) and finds kubectl 1.37, for clusters whose
    /// nodes are separate `wasmkube node` processes (`nodes.rs`).
    pub fn server_with_kubectl(test: &str, flags: &[&str]) -> Option<Cluster> {
        let kubectl = kubectl_path(test)?;
        let cidr = next_cluster_cidr();
        let mut command = vec!["server", "--cluster-cidr", &cidr];
        command.extend_from_slice(flags);
        let mut cluster = Cluster::start_with(&command);
        cluster.kubectl = Some(kubectl);
        Some(cluster)
    }

    /// Starts a whole cluster (`wasmkube up` with node agents, timers shortened by `extra`
    /// flags) and finds kubectl 1.37; `None` when kubectl is missing outside CI.
    pub fn up_with_kubectl(test: &str, extra: &[&str]) -> Option<Cluster> {
        Cluster::up_with_kubectl_as(test, extra, &[])
    }

    /// [`Cluster::up_with_kubectl`] with the server started through `prefix` (`setpriv`).
    pub fn up_with_kubectl_as(test: &str, extra: &[&str], prefix: &[&str]) -> Option<Cluster> {
        let kubectl = kubectl_path(test)?;
        let cidr = next_cluster_cidr();
        let mut command = vec![
            "up",
            "--kubelet-port",
            "0",
            "--unschedulable-retry-interval",
            "1s",
            "--cluster-cidr",
            &cidr,
        ];
        // Another user (`prefix`) may not reach the target directory: it compiles into its
        // own data directory instead.
        if prefix.is_empty() {
            command.extend_from_slice(&["--compile-cache", COMPILE_CACHE]);
        }
        command.extend_from_slice(extra);
        let mut cluster = Cluster::start_as(&command, prefix);
        cluster.kubectl = Some(kubectl);
        Some(cluster)
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DATA_DIR/kubeconfig`, written by the server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.server().url
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url().trim_start_matches("http://")
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the server is running")
    }

    /// Runs the venv's kubectl against this cluster (own discovery cache, no stdin).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `stdin` as its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(&mut self.kubectl_command(args), stdin)
    }

    /// A kubectl command line for this cluster, to spawn by hand (e.g. a long-running watch).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let kubectl = self
            .kubectl
            .as_ref()
            .expect("use Cluster::with_kubectl for kubectl tests");
        let mut cmd = Command::new(kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("NO_PROXY", "127.0.0.1,localhost");
        cmd
    }

    /// Runs `tests/python/SCRIPT` with `python` (the venv's) against this cluster's kubeconfig.
    pub fn python_script(&self, python: &Path, script: &str) -> Output {
        run(
            Command::new(python)
                .arg(repo_root().join("tests/python").join(script))
                .arg(self.kubeconfig())
                .env_remove("KUBECONFIG")
                .env("NO_PROXY", "127.0.0.1,localhost"),
            None,
        )
    }

    /// A kubectl command that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n--- server stderr (tail)\n{}",
            out.describe(),
            self.server_log_tail()
        );
        out.stdout_text()
    }

    /// A kubectl command that must fail with exit code 1; returns its stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_eq!(
            out.status_code(),
            1,
            "kubectl {args:?} should fail with exit code 1: {}",
            out.describe()
        );
        out.stderr_text()
    }

    /// `kubectl get ... -o jsonpath=EXPR`, which must succeed.
    pub fn jsonpath(&self, target: &[&str], expr: &str) -> String {
        let output = format!("-o=jsonpath={expr}");
        let mut args = vec!["get"];
        args.extend_from_slice(target);
        args.push(&output);
        self.kubectl_ok(&args)
    }

    /// `kubectl apply -f -` of `yaml`; panics with kubectl's output if it fails.
    pub fn apply_yaml(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], Some(yaml.as_bytes()));
        assert!(out.status.success(), "apply:\n{yaml}\n{}", out.describe());
    }

    /// `kubectl exec POD -- sh -c SCRIPT`'s output; panics if it fails.
    pub fn exec_sh(&self, pod: &str, script: &str) -> String {
        self.kubectl_ok(&["exec", pod, "--", "sh", "-c", script])
    }

    /// `kubectl apply -f tests/manifests/FILE`.
    pub fn apply_manifest(&self, file: &str) {
        let path = manifest(file);
        self.kubectl_ok(&["apply", "-f", path.to_str().expect("a UTF-8 path")]);
    }

    /// The pod's `status.phase`.
    pub fn phase(&self, pod: &str) -> String {
        self.jsonpath(&["pod", pod], "{.status.phase}")
    }

    /// Waits up to 60 s for `kubectl get pod POD -o jsonpath=EXPR` to print `want`.
    pub fn wait_for(&self, pod: &str, expr: &str, want: &str) {
        eventually(Duration::from_secs(60), || {
            let got = self.jsonpath(&["pod", pod], expr);
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "pod {pod}: {expr} is {got:?}, waiting for {want:?}"
                ))
            }
        });
    }

    /// Waits up to 60 s for the pod to be Running; fails with `kubectl describe` otherwise.
    pub fn wait_running(&self, pod: &str) {
        eventually(Duration::from_secs(60), || match self.phase(pod).as_str() {
            "Running" => Ok(()),
            other => Err(format!(
                "pod {pod} is {other:?}\n{}",
                self.kubectl(&["describe", "pod", pod]).describe()
            )),
        });
    }

    /// Waits up to 30 s for `kubectl logs ARGS` to contain `needle`; returns the logs.
    pub fn logs_contain(&self, args: &[&str], needle: &str) -> String {
        eventually(Duration::from_secs(30), || {
            let mut full = vec!["logs"];
            full.extend_from_slice(args);
            let out = self.kubectl(&full);
            let text = out.stdout_text();
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(format!(
                    "kubectl {full:?} lacks {needle:?}: {}",
                    out.describe()
                ))
            }
        })
    }

    /// Runs the `wasmkube` binary's client verbs against this cluster.
    pub fn wasmkube(&self, args: &[&str]) -> Output {
        self.wasmkube_stdin(args, None)
    }

    /// Runs `wasmkube` with `stdin` as its standard input.
    pub fn wasmkube_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmkube"));
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .current_dir(repo_root())
            .env_remove("KUBECONFIG")
            .env("NO_PROXY", "127.0.0.1,localhost");
        run(&mut cmd, stdin)
    }

    /// Stops the server with SIGTERM (as Ctrl-C or a service manager would) and returns its exit
    /// status; fails the test if it does not stop within 10 s.
    pub fn stop(&mut self) -> ExitStatus {
        let mut server = self.server.take().expect("the server is running");
        let pid = server.child.id().to_string();
        let kill = run(Command::new("kill").args(["-TERM", &pid]), None);
        assert!(
            kill.status.success(),
            "kill -TERM {pid}: {}",
            kill.describe()
        );
        let status = wait_timeout(&mut server.child, Duration::from_secs(10));
        let log = server.stderr();
        status.unwrap_or_else(|| panic!("server ignored SIGTERM for 10 s\n--- stderr\n{log}"))
    }

    /// Kills the server with SIGKILL (`kill -9`: no shutdown, no flush) and waits for it.
    pub fn kill(&mut self) {
        let mut server = self.server.take().expect("the server is running");
        server.child.kill().expect("kill -9 the server");
        let _ = server.child.wait();
    }

    /// Starts the server again on the same data directory (after [`Cluster::stop`]).
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "stop the server first");
        self.server = Some(Server::start(self.dir.path(), &self.command, &self.prefix));
    }

    /// The last few KiB the server wrote to stderr.
    pub fn server_log_tail(&self) -> String {
        let log = self.server.as_ref().map(Server::stderr).unwrap_or_default();
        let start = log.len().saturating_sub(4096);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(0);
        log[start..].to_string()
    }

    /// One raw HTTP/1.1 request (`Connection: close`) to the API server.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> HttpResponse {
        http_request(self.addr(), method, path, content_type, body)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.child.kill();
            let _ = server.child.wait();
            if thread::panicking() {
                let log = server.stderr();
                let start = log.len().saturating_sub(8192);
                let start = (start..log.len())
                    .find(|&i| log.is_char_boundary(i))
                    .unwrap_or(0);
                eprintln!("--- wasmkube server stderr (tail)\n{}", &log[start..]);
            }
        }
    }
}
