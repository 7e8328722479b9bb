//! The API-server benchmark: Pod creates/s through wasmkube's API with 1 and 64 concurrent
//! clients, p50/p99 of one create and one get, and the server's RSS, side by side in the same
//! run with etcd 3.4's raw puts over its JSON gateway (`/v3/kv/put`, `/v3/kv/range`).
//!
//! The machine this runs on is noisy, so only the ratios within one run mean anything. Both
//! servers are separate processes, persist to the same disk, and are driven by the same minimal
//! HTTP/1.1 keep-alive client below, so the client's own cost is identical for both.
//!
//! Run: `cargo bench --bench api` (add `-- --no-etcd` to skip etcd, `-- --help` for the counts).
//! Results and their analysis live in `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Barrier;

const USAGE: &str = "\
usage: cargo bench --bench api -- [options]
  --creates N             creates in the 1-client run, per server  [3000, env BENCH_CREATES]
  --concurrent-creates N  creates in the concurrent run, in total  [20000, env BENCH_CONCURRENT_CREATES]
  --clients N             clients in the concurrent run            [64, env BENCH_CLIENTS]
  --gets N                gets of one object, 1 client             [2000, env BENCH_GETS]
  --warmup N              creates before measuring, per server     [200, env BENCH_WARMUP]
  --no-etcd               measure wasmkube alone";

/// How long a server gets to print its ready line or answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Failed requests whose responses are printed in full; the rest are only counted.
const SHOWN_FAILURES: usize = 5;

/// The counts, from flags over env over defaults.
struct Opts {
    creates: usize,
    concurrent_creates: usize,
    clients: usize,
    gets: usize,
    warmup: usize,
    etcd: bool,
}

impl Opts {
    fn parse() -> anyhow::Result<Self> {
        let env = |name: &str, default: usize| -> anyhow::Result<usize> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("{name}={v} is not a count")),
                Err(_) => Ok(default),
            }
        };
        let mut opts = Opts {
            creates: env("BENCH_CREATES", 3000)?,
            concurrent_creates: env("BENCH_CONCURRENT_CREATES", 20_000)?,
            clients: env("BENCH_CLIENTS", 64)?,
            gets: env("BENCH_GETS", 2000)?,
            warmup: env("BENCH_WARMUP", 200)?,
            etcd: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                // `cargo bench` passes `--bench` to every bench binary.
                "--bench" => continue,
                "--no-etcd" => {
                    opts.etcd = false;
                    continue;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--creates" => &mut opts.creates,
                "--concurrent-creates" => &mut opts.concurrent_creates,
                "--clients" => &mut opts.clients,
                "--gets" => &mut opts.gets,
                "--warmup" => &mut opts.warmup,
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            };
            let value = args
                .next()
                .with_context(|| format!("{arg} needs a count"))?;
            *slot = value
                .parse()
                .with_context(|| format!("{arg} {value}: not a count"))?;
        }
        if opts.creates == 0 || opts.clients == 0 || opts.gets == 0 {
            bail!("--creates, --clients and --gets must be at least 1");
        }
        opts.concurrent_creates = opts.concurrent_creates.max(opts.clients);
        Ok(opts)
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 client: one keep-alive connection, no pipelining.

/// One keep-alive HTTP/1.1 connection. Deliberately minimal (no TLS, no redirects) so that the
/// client costs the same per request whichever server it talks to.
struct Conn {
    addr: SocketAddr,
    io: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
    line: Vec<u8>,
    /// The last response's body.
    body: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let mut conn = Conn {
            addr,
            io: None,
            request: Vec::with_capacity(2048),
            line: Vec::with_capacity(256),
            body: Vec::with_capacity(4096),
        };
        conn.reconnect().await?;
        Ok(conn)
    }

    async fn reconnect(&mut self) -> std::io::Result<()> {
        let stream = TcpStream::connect(self.addr).await?;
        // The request goes out in one write, but a delayed ACK must never hold back a reply.
        stream.set_nodelay(true)?;
        self.io = Some(BufReader::with_capacity(16 * 1024, stream));
        Ok(())
    }

    /// Sends one request and reads the whole response; returns its status, the body is in
    /// `self.body`. After an error the connection is dropped and the next request reconnects.
    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<u16> {
        if self.io.is_none() {
            self.reconnect().await?;
        }
        let result = self.exchange(method, path, body).await;
        if !matches!(result, Ok((_, true))) {
            self.io = None;
        }
        result.map(|(status, _)| status)
    }

    /// Returns the status and whether the connection stays open.
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, bool)> {
        let io = self.io.as_mut().expect("connected above");
        self.request.clear();
        let mut head = String::with_capacity(160);
        let _ = write!(
            head,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.request.extend_from_slice(head.as_bytes());
        self.request.extend_from_slice(body);
        io.get_mut().write_all(&self.request).await?;

        read_line(io, &mut self.line).await?;
        let status = std::str::from_utf8(&self.line)
            .ok()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("bad status line {:?}", lossy(&self.line))))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut keep_alive = true;
        loop {
            read_line(io, &mut self.line).await?;
            if self.line.is_empty() {
                break;
            }
            let line = std::str::from_utf8(&self.line).map_err(|_| bad("header is not UTF-8"))?;
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!("bad header {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse().map_err(|_| bad("bad Content-Length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep_alive = !value.eq_ignore_ascii_case("close");
            }
        }

        self.body.clear();
        if chunked {
            loop {
                read_line(io, &mut self.line).await?;
                let size = std::str::from_utf8(&self.line)
                    .ok()
                    .map(|l| l.split(';').next().unwrap_or("").trim())
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .ok_or_else(|| bad(format!("bad chunk size {:?}", lossy(&self.line))))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        read_line(io, &mut self.line).await?;
                        if self.line.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = self.body.len();
                self.body.resize(start + size, 0);
                io.read_exact(&mut self.body[start..]).await?;
                read_line(io, &mut self.line).await?;
            }
        } else if let Some(n) = length {
            self.body.resize(n, 0);
            io.read_exact(&mut self.body).await?;
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // Neither length nor chunks: the body runs to the end of the connection.
            io.read_to_end(&mut self.body).await?;
            keep_alive = false;
        }
        Ok((status, keep_alive))
    }
}

/// Reads one line into `line`, without its CRLF.
async fn read_line(io: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<()> {
    line.clear();
    if io.read_until(b'\n', line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(())
}

fn bad(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned()
}

/// Standard base64 with padding, for etcd's JSON gateway (bytes fields are base64).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The two servers.

/// Which server a request goes to; decides the request's shape and its expected status.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wasmkube,
    Etcd,
}

/// A server process under test.
struct Server {
    kind: Kind,
    addr: SocketAddr,
    child: Child,
    /// Held so the server's later prints never hit a closed pipe.
    _stdout: Option<ChildStdout>,
    log: PathBuf,
}

impl Server {
    async fn wasmkube(dir: &Path) -> anyhow::Result<Self> {
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

    async fn etcd(dir: &Path) -> anyhow::Result<Self> {
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

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Wasmkube => "wasmkube",
            Kind::Etcd => "etcd 3.4",
        }
    }

    /// Resident memory from `/proc/PID/status`, in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// The request that creates pod `name` (for etcd: the raw put of its key), and the status
    /// that means success.
    fn create(&self, name: &str) -> (&'static str, &'static str, Vec<u8>, u16) {
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
    fn get(&self, name: &str) -> (&'static str, String, Vec<u8>) {
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
fn pod_json(name: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default","labels":{{"app":"bench","run":"{name}"}}}},"spec":{{"containers":[{{"name":"nginx","image":"nginx:1.27","ports":[{{"containerPort":80,"protocol":"TCP"}}],"resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}}}}}}],"restartPolicy":"Always"}}}}"#
    )
    .into_bytes()
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(binary).is_file()))
}

fn free_port() -> std::io::Result<u16> {
    // Bound and released at once; another process taking it in between is unlikely enough.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Workloads.

/// What one timed run measured.
#[derive(Default)]
struct Run {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    failures: Vec<String>,
    failed: usize,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied().unwrap_or_default()
    }

    fn absorb(&mut self, other: Run) {
        self.requests += other.requests;
        self.latencies.extend(other.latencies);
        self.failed += other.failed;
        for f in other.failures {
            if self.failures.len() < SHOWN_FAILURES {
                self.failures.push(f);
            }
        }
    }

    fn fail(&mut self, message: String) {
        self.failed += 1;
        if self.failures.len() < SHOWN_FAILURES {
            self.failures.push(message);
        }
    }
}

/// `total` creates spread over `clients` connections, each its own task; the clock starts once
/// every connection is open.
async fn creates(server: &Server, phase: &str, clients: usize, total: usize) -> Run {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let count = total / clients + usize::from(client < total % clients);
        let requests: Vec<_> = (0..count)
            .map(|i| server.create(&format!("bench-{phase}-{client}-{i}")))
            .collect();
        let (addr, barrier) = (server.addr, barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let conn = Conn::connect(addr).await;
            barrier.wait().await;
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    run.fail(format!("connect: {e}"));
                    return run;
                }
            };
            for (method, path, body, want) in requests {
                let start = Instant::now();
                let result = conn.request(method, path, &body).await;
                run.latencies.push(start.elapsed());
                run.requests += 1;
                match result {
                    Ok(status) if status == want => {}
                    Ok(status) => run.fail(format!("{path}: {status} {}", lossy(&conn.body))),
                    Err(e) => run.fail(format!("{path}: {e}")),
                }
            }
            run
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut run = Run::default();
    for task in tasks {
        match task.await {
            Ok(r) => run.absorb(r),
            Err(e) => run.fail(format!("client task: {e}")),
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// `count` sequential reads of pod `name` over one connection.
async fn gets(server: &Server, name: &str, count: usize) -> Run {
    let mut run = Run::default();
    let (method, path, body) = server.get(name);
    let mut conn = match Conn::connect(server.addr).await {
        Ok(c) => c,
        Err(e) => {
            run.fail(format!("connect: {e}"));
            return run;
        }
    };
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let result = conn.request(method, &path, &body).await;
        run.latencies.push(t.elapsed());
        run.requests += 1;
        match result {
            // An etcd range of a missing key is a 200 without `kvs`: that is a failure too.
            Ok(200)
                if server.kind == Kind::Wasmkube
                    || conn.body.windows(5).any(|w| w == b"\"kvs\"") => {}
            Ok(status) => run.fail(format!("{path}: {status} {}", lossy(&conn.body))),
            Err(e) => run.fail(format!("{path}: {e}")),
        }
    }
    run.elapsed = start.elapsed();
    run
}

// ---------------------------------------------------------------------------------------------
// The run and its report.

/// Everything measured for one server.
#[derive(Default)]
struct Results {
    idle_rss: Option<u64>,
    loaded_rss: Option<u64>,
    one: Run,
    many: Run,
    get: Run,
    warmup_failed: usize,
}

async fn measure_phase(
    servers: &[Server],
    results: &mut [Results],
    what: &str,
    pick: impl Fn(&mut Results) -> &mut Run,
    run: impl AsyncFnMut(&Server) -> Run,
) {
    let mut run = run;
    for (server, result) in servers.iter().zip(results.iter_mut()) {
        eprint!("{what}: {} ... ", server.name());
        let r = run(server).await;
        eprintln!("{:.0}/s, {} failed", r.per_sec(), r.failed);
        *pick(result) = r;
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "-".into()
    }
}

fn machine(etcd: bool) -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let mut etcd_version = String::new();
    if etcd && let Ok(out) = std::process::Command::new("etcd").arg("--version").output() {
        etcd_version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
    }
    format!("nproc {cores}, {cpu}, Linux {kernel}; {etcd_version}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse()?;
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    eprintln!("data under {}", dir.path().display());

    let mut servers = vec![Server::wasmkube(dir.path()).await?];
    if opts.etcd {
        servers.push(Server::etcd(dir.path()).await?);
    }
    // Let start-up work (bootstrap objects, controllers' first lists) settle before "idle".
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut results: Vec<Results> = servers.iter().map(|_| Results::default()).collect();
    for (server, result) in servers.iter().zip(results.iter_mut()) {
        result.idle_rss = server.rss_kib();
    }

    for (server, result) in servers.iter().zip(results.iter_mut()) {
        result.warmup_failed = creates(server, "warm", 4, opts.warmup.max(4)).await.failed;
    }
    let (n1, nc, clients) = (opts.creates, opts.concurrent_creates, opts.clients);
    measure_phase(
        &servers,
        &mut results,
        "creates, 1 client",
        |r| &mut r.one,
        async |s| creates(s, "c1", 1, n1).await,
    )
    .await;
    measure_phase(
        &servers,
        &mut results,
        &format!("creates, {clients} clients"),
        |r| &mut r.many,
        async |s| creates(s, &format!("c{clients}"), clients, nc).await,
    )
    .await;
    measure_phase(
        &servers,
        &mut results,
        "gets, 1 client",
        |r| &mut r.get,
        async |s| gets(s, "bench-c1-0-0", opts.gets).await,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (server, result) in servers.iter().zip(results.iter_mut()) {
        result.loaded_rss = server.rss_kib();
    }

    let names: Vec<&str> = servers.iter().map(Server::name).collect();
    let kinds: Vec<Kind> = servers.iter().map(|s| s.kind).collect();
    for server in servers {
        server.stop().await;
    }
    print_report(&opts, &names, &kinds, &results);

    let failed: usize = results
        .iter()
        .map(|r| r.warmup_failed + r.one.failed + r.many.failed + r.get.failed)
        .sum();
    if failed > 0 {
        for (name, r) in names.iter().zip(&results) {
            for f in [&r.one, &r.many, &r.get]
                .iter()
                .flat_map(|run| &run.failures)
            {
                eprintln!("{name}: {f}");
            }
        }
        bail!("{failed} request(s) did not get 201/200");
    }
    Ok(())
}

fn print_report(opts: &Opts, names: &[&str], kinds: &[Kind], results: &[Results]) {
    let wk = &results[0];
    let etcd = results.get(1).filter(|_| kinds.get(1) == Some(&Kind::Etcd));
    let clients = opts.clients;
    let pods = opts.warmup.max(4) + opts.creates + opts.concurrent_creates;

    println!();
    println!("machine: {}", machine(etcd.is_some()));
    println!(
        "counts: {} creates with 1 client, {} with {clients} clients, {} gets, {} warm-up creates \
         ({pods} pods stored per server at the end)",
        opts.creates,
        opts.concurrent_creates,
        opts.gets,
        opts.warmup.max(4)
    );
    println!();
    println!(
        "| metric | {} | {} | ratio (wasmkube ÷ etcd) |",
        names[0],
        names.get(1).copied().unwrap_or("etcd 3.4 (skipped)")
    );
    println!("|---|---:|---:|---:|");
    let row = |metric: &str, f: &dyn Fn(&Results) -> f64, show: &dyn Fn(f64) -> String| {
        let a = f(wk);
        match etcd {
            Some(e) => {
                let b = f(e);
                println!("| {metric} | {} | {} | {} |", show(a), show(b), ratio(a, b));
            }
            None => println!("| {metric} | {} | - | - |", show(a)),
        }
    };
    let rate = |v: f64| format!("{v:.0}/s");
    let millis = |v: f64| format!("{v:.2} ms");
    let rss = |v: f64| mib(Some(v as u64));
    let p = |run: &Run, q: f64| run.percentile(q).as_secs_f64() * 1000.0;
    row("Pod creates/s, 1 client", &|r| r.one.per_sec(), &rate);
    row(
        &format!("Pod creates/s, {clients} clients"),
        &|r| r.many.per_sec(),
        &rate,
    );
    row("create p50, 1 client", &|r| p(&r.one, 0.50), &millis);
    row("create p99, 1 client", &|r| p(&r.one, 0.99), &millis);
    row(
        &format!("create p50, {clients} clients"),
        &|r| p(&r.many, 0.50),
        &millis,
    );
    row(
        &format!("create p99, {clients} clients"),
        &|r| p(&r.many, 0.99),
        &millis,
    );
    row("get p50, 1 client", &|r| p(&r.get, 0.50), &millis);
    row("get p99, 1 client", &|r| p(&r.get, 0.99), &millis);
    row("gets/s, 1 client", &|r| r.get.per_sec(), &rate);
    row(
        "RSS idle (after start)",
        &|r| r.idle_rss.unwrap_or(0) as f64,
        &rss,
    );
    row(
        &format!("RSS after load ({pods} pods)"),
        &|r| r.loaded_rss.unwrap_or(0) as f64,
        &rss,
    );
    let failed = |r: &Results| r.warmup_failed + r.one.failed + r.many.failed + r.get.failed;
    println!(
        "\nfailed requests: {} {}{}",
        names[0],
        failed(wk),
        etcd.map_or(String::new(), |e| format!(", {} {}", names[1], failed(e)))
    );
    if let Some(e) = etcd {
        let verdict = |a: f64, b: f64| if a >= b { "met" } else { "missed" };
        println!(
            "goal (wasmkube creates/s ≥ etcd puts/s): 1 client {}, {clients} clients {}",
            verdict(wk.one.per_sec(), e.one.per_sec()),
            verdict(wk.many.per_sec(), e.many.per_sec())
        );
    }
}
