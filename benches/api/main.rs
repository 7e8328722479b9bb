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

mod http;
mod servers;

use http::*;
use servers::*;

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
