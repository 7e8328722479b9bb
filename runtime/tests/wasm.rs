//! The wasm execution layer with the real guests of the built-in catalog: exit codes, files,
//! volumes, the pod network, memory limits, stopping, hostile images.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use runtime::images::{Catalog, Image};
use runtime::wasm::{
    ContainerRuntime, ContainerSpec, EngineConfig, Error, Exit, MemorySink, Mount, ProgramKind,
    WasmEngine,
};

/// Pod IPs for these tests: the last /16 of the pod range, away from clusters that other
/// tests start on this host (they allocate from 127.64.0.0/16 up).
const POD_A: Ipv4Addr = Ipv4Addr::new(127, 127, 250, 2);
const POD_B: Ipv4Addr = Ipv4Addr::new(127, 127, 250, 3);
const POD_C: Ipv4Addr = Ipv4Addr::new(127, 127, 250, 4);

fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_instances: 32,
        max_memory_bytes: 256 << 20,
        ..EngineConfig::default()
    }
}

/// One runtime for the whole test binary, as in the agent.
fn rt() -> &'static ContainerRuntime {
    static RT: OnceLock<ContainerRuntime> = OnceLock::new();
    RT.get_or_init(|| {
        let engine = WasmEngine::new(engine_config()).unwrap();
        ContainerRuntime::new(engine, Some(cache_dir())).unwrap()
    })
}

fn image(name: &str) -> Image {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG
        .get_or_init(Catalog::new)
        .get(&format!("wasmkube/{name}"))
        .unwrap()
}

/// A container builder for the tests.
struct Ctr {
    spec: ContainerSpec,
    stdout: Arc<MemorySink>,
    stderr: Arc<MemorySink>,
    _root: tempfile::TempDir,
}

impl Ctr {
    fn new(name: &str, pod_ip: Ipv4Addr, argv: &[&str]) -> Ctr {
        let root = tempfile::tempdir().unwrap();
        let mut spec = ContainerSpec::new(image(name), root.path(), pod_ip);
        spec.argv = argv.iter().map(|s| s.to_string()).collect();
        let (stdout, stderr) = (MemorySink::new(1 << 20), MemorySink::new(1 << 20));
        spec.stdout = stdout.clone();
        spec.stderr = stderr.clone();
        Ctr {
            spec,
            stdout,
            stderr,
            _root: root,
        }
    }

    fn env(mut self, k: &str, v: &str) -> Ctr {
        self.spec.env.push((k.into(), v.into()));
        self
    }

    async fn run(self) -> (Exit, String, String) {
        let exit = rt().run(self.spec).await;
        (exit, self.stdout.text(), self.stderr.text())
    }
}

#[tokio::test]
async fn crash_exits_with_its_code() {
    let (exit, _, stderr) = Ctr::new("crash", POD_C, &["crash", "0", "3"]).run().await;
    assert_eq!(
        (exit.code, exit.reason.as_str()),
        (3, "Error"),
        "{exit:?} {stderr}"
    );
}

#[tokio::test]
async fn trap_is_134_with_the_trap_text() {
    let (exit, _, _) = Ctr::new("crash", POD_C, &["crash", "--trap", "0"])
        .run()
        .await;
    assert_eq!(
        (exit.code, exit.reason.as_str()),
        (134, "Error"),
        "{exit:?}"
    );
    let message = exit.message.unwrap();
    assert!(message.contains("unreachable"), "{message}");
}

#[tokio::test]
async fn toolbox_shell_writes_and_reads_tmp() {
    let (exit, stdout, stderr) = Ctr::new(
        "toolbox",
        POD_C,
        &["sh", "-c", "echo hi > /tmp/x; cat /tmp/x"],
    )
    .run()
    .await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");
    assert_eq!(stdout, "hi\n");
}

#[tokio::test]
async fn read_only_mount_refuses_writes() {
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("f"), "from host\n").unwrap();
    let mut ctr = Ctr::new(
        "toolbox",
        POD_C,
        &["sh", "-c", "cat /data/f; echo x > /data/g; echo rc=$?"],
    );
    ctr.spec.mounts.push(Mount {
        host: volume.path().into(),
        guest: "/data".into(),
        read_only: true,
    });
    let (exit, stdout, stderr) = ctr.run().await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");
    assert!(stdout.starts_with("from host\n"), "{stdout}");
    assert!(!stdout.contains("rc=0"), "the write succeeded: {stdout}");
    assert!(
        stderr.to_lowercase().contains("not permitted")
            || stderr.to_lowercase().contains("permission"),
        "{stderr}"
    );
    assert!(!volume.path().join("g").exists());
}

#[tokio::test]
async fn dot_dot_does_not_leave_a_volume() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret"), "host secret\n").unwrap();
    let volume = outer.path().join("vol");
    std::fs::create_dir(&volume).unwrap();
    let mut ctr = Ctr::new(
        "toolbox",
        POD_C,
        &[
            "sh",
            "-c",
            "cat /data/../secret; cat /data/../../secret; cd /data && cat ../secret; echo alive",
        ],
    );
    ctr.spec.mounts.push(Mount {
        host: volume,
        guest: "/data".into(),
        read_only: false,
    });
    let (exit, stdout, stderr) = ctr.run().await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");
    assert!(
        !stdout.contains("host secret"),
        "escaped the volume: {stdout}"
    );
    assert!(stdout.contains("alive"), "{stdout} {stderr}");
}

#[tokio::test]
async fn writable_mount_is_shared_with_the_host() {
    let volume = tempfile::tempdir().unwrap();
    let mut ctr = Ctr::new(
        "toolbox",
        POD_C,
        &["sh", "-c", "echo written > /var/data/out"],
    );
    ctr.spec.mounts.push(Mount {
        host: volume.path().into(),
        guest: "/var/data".into(),
        read_only: false,
    });
    let (exit, _, stderr) = ctr.run().await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");
    assert_eq!(
        std::fs::read_to_string(volume.path().join("out")).unwrap(),
        "written\n"
    );
}

/// Port 80 needs root or CAP_NET_BIND_SERVICE; elsewhere the pods use 8080.
fn web_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::new(127, 127, 250, 9), 80)) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => 8080,
        _ => 80,
    }
}

async fn wait_listening(ip: Ipv4Addr, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(100))
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {ip}:{port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_listen_on_the_same_port_and_localhost_is_the_pod() {
    let port = web_port();
    let web = |pod: &str, ip| {
        Ctr::new("web", ip, &["web"])
            .env("HOSTNAME", pod)
            .env("PORT", &port.to_string())
    };
    let (a, b) = (web("pod-a", POD_A), web("pod-b", POD_B));
    let (stop_a, stop_b) = (a.spec.stop.clone(), b.spec.stop.clone());
    let a = tokio::spawn(a.run());
    let b = tokio::spawn(b.run());
    wait_listening(POD_A, port).await;
    wait_listening(POD_B, port).await;

    let url = format!("http://localhost:{port}/");
    let (exit, page_a, stderr) = Ctr::new("toolbox", POD_A, &["wget", "-qO-", &url])
        .run()
        .await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");
    assert!(
        page_a.contains("pod-a") && !page_a.contains("pod-b"),
        "{page_a}"
    );
    let (exit, page_b, stderr) = Ctr::new("toolbox", POD_B, &["wget", "-qO-", &url])
        .run()
        .await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");
    assert!(page_b.contains("pod-b"), "{page_b}");
    // Pod to pod by IP, and the server sees pod A's IP as the source.
    let url_b = format!("http://{POD_B}:{port}/");
    let (exit, _, stderr) = Ctr::new("toolbox", POD_A, &["wget", "-qO-", &url_b])
        .run()
        .await;
    assert_eq!(exit.code, 0, "{exit:?} {stderr}");

    stop_a.cancel();
    stop_b.cancel();
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((a.0.code, b.0.code), (137, 137));
    assert!(
        b.1.contains(&POD_A.to_string()),
        "pod B's access log shows pod A's IP: {}",
        b.1
    );
}

#[tokio::test]
async fn memory_limit_is_oomkilled() {
    let mut ctr = Ctr::new("stress", POD_C, &["stress", "--grow-until-oom"]);
    ctr.spec.memory_limit = Some(32 << 20);
    let usage = ctr.spec.usage.clone();
    let (exit, _, stderr) = ctr.run().await;
    assert_eq!(
        (exit.code, exit.reason.as_str()),
        (137, "OOMKilled"),
        "{exit:?} {stderr}"
    );
    // The instance is gone (its memory with it); at its largest it held nearly the limit.
    assert_eq!(usage.memory_bytes(), 0);
    let peak = usage.memory_peak();
    assert!(peak > 16 << 20 && peak <= 32 << 20, "{peak}");
}

#[tokio::test]
async fn spinning_guest_is_stopped_within_100ms() {
    let ctr = Ctr::new(
        "stress",
        POD_C,
        &["stress", "--cpu", "spin", "--report", "0.05"],
    );
    let (stop, stdout) = (ctr.spec.stop.clone(), ctr.stdout.clone());
    let running = tokio::spawn(ctr.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    while stdout.contents().is_empty() {
        assert!(Instant::now() < deadline, "stress never reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = Instant::now();
    stop.cancel();
    let (exit, _, _) = running.await.unwrap();
    let took = cancelled.elapsed();
    assert_eq!(exit.code, 137, "{exit:?}");
    assert!(took < Duration::from_millis(100), "took {took:?}");
    eprintln!("spinning guest stopped in {took:?}");
}

#[tokio::test]
async fn non_wasm_bytes_fail_with_a_clear_error() {
    let junk = Image::from_bytes("junk:latest", &b"#!/bin/sh\necho not wasm\n"[..]);
    let err = rt().prepare(&junk).await.err().unwrap();
    assert!(matches!(err, Error::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("not WebAssembly"), "{err}");
    let exit = rt()
        .run(ContainerSpec::new(
            junk,
            tempfile::tempdir().unwrap().path(),
            POD_C,
        ))
        .await;
    assert_eq!((exit.code, exit.reason.as_str()), (128, "StartError"));
    assert!(exit.message.unwrap().contains("not WebAssembly"));
}

#[tokio::test]
async fn images_without_entry_point_are_refused() {
    let module = Image::from_bytes("empty-module", &b"\0asm\x01\0\0\0"[..]);
    let err = rt().prepare(&module).await.err().unwrap();
    assert!(matches!(err, Error::NoEntryPoint { .. }), "{err}");
    let component = Image::from_bytes("empty-component", &b"\0asm\x0d\0\x01\0"[..]);
    let err = rt().prepare(&component).await.err().unwrap();
    assert!(matches!(err, Error::NoEntryPoint { .. }), "{err}");
    let truncated = Image::from_bytes("truncated", &image("web").bytes[..1000]);
    let err = rt().prepare(&truncated).await.err().unwrap();
    assert!(matches!(err, Error::Compile { .. }), "{err}");
}

/// `(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
///   (memory (export "memory") 1) (func (export "_start") i32.const 7 call 0))`
fn proc_exit_7() -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend([0x01, 0x08, 0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x00]); // types
    m.extend([0x02, 0x24, 0x01, 0x16]);
    m.extend(b"wasi_snapshot_preview1");
    m.push(0x09);
    m.extend(b"proc_exit");
    m.extend([0x00, 0x00]); // import func type 0
    m.extend([0x03, 0x02, 0x01, 0x01]); // one function of type 1
    m.extend([0x05, 0x03, 0x01, 0x00, 0x01]); // memory min 1
    m.extend([0x07, 0x13, 0x02, 0x06]);
    m.extend(b"memory");
    m.extend([0x02, 0x00, 0x06]);
    m.extend(b"_start");
    m.extend([0x00, 0x01]);
    m.extend([0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x07, 0x10, 0x00, 0x0b]); // code
    m
}

#[tokio::test]
async fn wasip1_modules_keep_their_proc_exit_code() {
    let image = Image::from_bytes("p1-exit", proc_exit_7());
    assert_eq!(
        rt().prepare(&image).await.unwrap().kind(),
        ProgramKind::Module
    );
    let exit = rt()
        .run(ContainerSpec::new(
            image,
            tempfile::tempdir().unwrap().path(),
            POD_C,
        ))
        .await;
    assert_eq!(exit.code, 7, "{exit:?}");
}

#[tokio::test]
async fn cached_starts_are_fast_and_survive_a_restart() {
    // Warm this process's memory cache (compiles unless another test did).
    let toolbox = image("toolbox");
    rt().prepare(&toolbox).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (exit, _, _) = Ctr::new("toolbox", POD_C, &["true"]).run().await;
        times.push(started.elapsed());
        assert_eq!(exit.code, 0);
    }
    times.sort();
    let median = times[times.len() / 2];

    // A "restarted agent": a new engine and runtime over the same cache directory.
    let engine = WasmEngine::new(engine_config()).unwrap();
    let restarted = ContainerRuntime::new(engine, Some(cache_dir())).unwrap();
    let started = Instant::now();
    restarted.prepare(&toolbox).await.unwrap();
    let from_disk = started.elapsed();
    eprintln!(
        "cached start+run of `toolbox true`: median {median:?} (of 20); load from .cwasm after restart: {from_disk:?}"
    );
    assert!(median < Duration::from_millis(50), "{median:?}");
    assert!(
        from_disk < Duration::from_millis(50),
        "{from_disk:?}: compiled instead of loaded?"
    );
}
