//! Running one container: a [`ContainerSpec`] in, an [`Exit`] out.
//!
//! Each container is one wasmtime `Store` whose data holds its WASI context (args, env,
//! stdio, preopens, sockets), the pod's socket state and its memory limiter. wasip2
//! components run through `wasi:cli/run` with the shadowed sockets of [`super::net`]; wasip1
//! core modules run `_start` through the preview-1 linker, so `proc_exit(n)` keeps `n` (the
//! component adapter would turn it into 1).
//!
//! How a run maps to an exit code and reason is in `exit.rs`. A spinning guest is interrupted at the next epoch tick; a
//! guest blocked in WASI is dropped with its future. Failures before the guest starts (not
//! wasm, no entry point, a bad mount) -> 128 `StartError`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::Error;
use super::cache::{CompileCache, Prepared, Program};
use super::cpu::{CpuMeter, CpuShare, Metered, Now};
use super::engine::WasmEngine;
use super::exit::{Exit, exit_of};
use super::http::{self, NoOutgoing};
use super::limits::{ContainerLimiter, Usage};
use super::net::{self, PodCluster, PodNetwork, PodSockets, PodTcpView};
use super::output::{Discard, OutputSink, SinkStream};
use super::stdin::StdinPipe;
use crate::images::Image;

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it: an absolute path without `..`.
    pub guest: String,
    /// Whether writes are refused (`readOnly: true`).
    pub read_only: bool,
}

/// Everything needed to run one container instance.
pub struct ContainerSpec {
    /// The program.
    pub image: Image,
    /// The full argument vector, `argv[0]` included; empty means `[image short name]`.
    pub argv: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The working directory, if not `/`.
    pub working_dir: Option<String>,
    /// The container's ephemeral root directory, preopened read-write at `/`.
    pub root: PathBuf,
    /// Volumes mounted over the root.
    pub mounts: Vec<Mount>,
    /// The pod's IP and egress policy.
    pub network: PodNetwork,
    /// The node's Services and the pod's DNS names (namespace, hostname).
    pub cluster: PodCluster,
    /// Memory limit per linear memory in bytes (`limits.memory`); `None` means the node cap
    /// ([`super::EngineConfig::max_memory_bytes`]).
    pub memory_limit: Option<u64>,
    /// Where stdout goes.
    pub stdout: Arc<dyn OutputSink>,
    /// Where stderr goes.
    pub stderr: Arc<dyn OutputSink>,
    /// Where stdin comes from (`stdin: true` containers, exec sessions); `None` is an empty
    /// stdin.
    pub stdin: Option<StdinPipe>,
    /// Whether the guest's stdio is a terminal (`tty: true`): `isatty` says yes. The line
    /// discipline itself is the host's (`node/terminal.rs`).
    pub tty: bool,
    /// Cancelled to kill the container (exit 137 within one epoch tick).
    pub stop: CancellationToken,
    /// A one-shot latch the runtime cancels once the image is compiled and the instance
    /// exists (a `wasi:http` handler: once it listens), so the container shows Running only
    /// then. Never cancelled when the container fails to start.
    pub instantiated: CancellationToken,
    /// Live usage figures, updated while the container runs.
    pub usage: Arc<Usage>,
    /// `requests.cpu` and `limits.cpu`.
    pub cpu: CpuShare,
    /// Cancelled when the pod starts terminating: the pod's listening sockets stop
    /// accepting (accept fails with `invalid-state`), so a server finishes its open
    /// connections and exits, as it would on SIGTERM.
    pub drain: CancellationToken,
    /// Where a `wasi:http` handler component is served (the first `containerPort`, else
    /// `PORT`, else 8080).
    pub http_port: u16,
}

impl ContainerSpec {
    /// A spec with no arguments, no env, no mounts, discarded output, the node's memory cap
    /// and a fresh stop token.
    pub fn new(image: Image, root: impl Into<PathBuf>, pod_ip: Ipv4Addr) -> ContainerSpec {
        ContainerSpec {
            image,
            argv: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            root: root.into(),
            mounts: Vec::new(),
            network: PodNetwork {
                pod_ip,
                allow_external: false,
                map_low_ports: false,
            },
            cluster: PodCluster::default(),
            memory_limit: None,
            stdout: Arc::new(Discard),
            stderr: Arc::new(Discard),
            stdin: None,
            tty: false,
            stop: CancellationToken::new(),
            instantiated: CancellationToken::new(),
            usage: Arc::default(),
            cpu: CpuShare::default(),
            drain: CancellationToken::new(),
            http_port: 8080,
        }
    }
}

/// Store data of a component container.
pub(crate) struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    sockets: PodSockets,
    limits: ContainerLimiter,
    http: WasiHttpCtx,
    http_hooks: NoOutgoing,
}

impl ComponentState {
    pub(crate) fn new(wasi: WasiCtx, sockets: PodSockets, limits: ContainerLimiter) -> Self {
        let (http, http_hooks) = http::new_ctx();
        ComponentState {
            wasi,
            table: ResourceTable::new(),
            sockets,
            limits,
            http,
            http_hooks,
        }
    }

    pub(crate) fn oom(&self) -> bool {
        self.limits.oom()
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limits.limit()
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Store data of a core-module (wasip1) container.
pub(crate) struct ModuleState {
    wasi: WasiP1Ctx,
    limits: ContainerLimiter,
}

/// The node's linkers: every container of a kind links against the same one.
pub(crate) struct Linkers {
    pub(crate) component: Linker<ComponentState>,
    pub(crate) module: wasmtime::Linker<ModuleState>,
}

impl Linkers {
    fn new(engine: &wasmtime::Engine) -> Result<Linkers, Error> {
        let err = |e: wasmtime::Error| Error::Engine(format!("building the linker: {e:#}"));
        let mut component = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component).map_err(err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component).map_err(err)?;
        net::add_to_linker(&mut component, |s: &mut ComponentState| PodTcpView {
            inner: WasiSocketsCtxView {
                ctx: s.wasi.sockets(),
                table: &mut s.table,
            },
            pod: &mut s.sockets,
        })
        .map_err(err)?;
        let mut module = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module, |s: &mut ModuleState| &mut s.wasi)
            .map_err(err)?;
        Ok(Linkers { component, module })
    }
}

/// Runs containers: the engine, its linkers and the compile cache. One per node agent
/// process, shared by every pod.
pub struct ContainerRuntime {
    engine: WasmEngine,
    linkers: Linkers,
    cache: CompileCache,
}

impl ContainerRuntime {
    /// A runtime on `engine`, keeping compiled images under `cache_dir` (memory only when
    /// `None`).
    pub fn new(engine: WasmEngine, cache_dir: Option<&Path>) -> Result<ContainerRuntime, Error> {
        let linkers = Linkers::new(engine.engine())?;
        let cache = CompileCache::new(&engine, cache_dir)?;
        Ok(ContainerRuntime {
            engine,
            linkers,
            cache,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// The compile cache.
    pub fn cache(&self) -> &CompileCache {
        &self.cache
    }

    /// Compiles (or loads) and links an image without running it: the "pull" step, so
    /// errors such as "not wasm" surface before a container is created.
    pub async fn prepare(&self, image: &Image) -> Result<Arc<Prepared>, Error> {
        self.cache.get(image, &self.linkers).await
    }

    /// Runs a container to its end and says how it ended. Never panics on a hostile guest.
    #[tracing::instrument(skip_all, fields(image = %spec.image.name, pod_ip = %spec.network.pod_ip))]
    pub async fn run(&self, spec: ContainerSpec) -> Exit {
        let started = Instant::now();
        let prepared = match self.prepare(&spec.image).await {
            Ok(prepared) => prepared,
            Err(e) => return Exit::start_error(&e),
        };
        if spec.stop.is_cancelled() {
            return Exit::killed();
        }
        let limit = spec
            .memory_limit
            .unwrap_or(self.engine.config().max_memory_bytes);
        if let Program::Http(pre) = &prepared.program {
            return http::serve(pre.clone(), spec, limit).await;
        }
        let limits = ContainerLimiter::new(limit, spec.usage.clone());
        let mut builder = match wasi_builder(&spec) {
            Ok(builder) => builder,
            Err(e) => return Exit::start_error(&e),
        };
        let engine = self.engine.engine();
        let meter = CpuMeter::new(spec.cpu, spec.usage.clone());
        let sockets = PodSockets::new(
            spec.network,
            spec.cluster.clone(),
            spec.drain.clone(),
            spec.usage.clone(),
        );
        let mut draining =
            std::pin::pin!(net::wake_on_drain(spec.drain.clone(), sockets.listening()));
        let exit = match &prepared.program {
            Program::Command(pre) => {
                let state = ComponentState::new(builder.build(), sockets, limits);
                let mut store = new_store(engine, state, &spec.stop, &meter);
                let run = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    spec.instantiated.cancel();
                    tracing::debug!(
                        start_us = started.elapsed().as_micros() as u64,
                        "container instantiated"
                    );
                    command.wasi_cli_run().call_run(&mut store).await
                };
                let outcome = race(run, &spec.stop, &meter, draining.as_mut()).await;
                let limits = &store.data().limits;
                exit_of(
                    outcome,
                    limits.oom(),
                    limits.limit(),
                    spec.stop.is_cancelled(),
                )
            }
            Program::Http(_) => unreachable!("served above"),
            Program::Module(pre) => {
                let state = ModuleState {
                    wasi: builder.build_p1(),
                    limits,
                };
                let mut store = new_store(engine, state, &spec.stop, &meter);
                let run = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    spec.instantiated.cancel();
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await.map(Ok)
                };
                let outcome = race(run, &spec.stop, &meter, draining.as_mut()).await;
                let limits = &store.data().limits;
                exit_of(
                    outcome,
                    limits.oom(),
                    limits.limit(),
                    spec.stop.is_cancelled(),
                )
            }
        };
        tracing::debug!(code = exit.code, reason = %exit.reason, run_ms = started.elapsed().as_millis() as u64, "container exited");
        exit
    }
}

/// Store data with a memory limiter.
pub(crate) trait Limited: 'static {
    fn limiter(&mut self) -> &mut ContainerLimiter;
}

impl Limited for ModuleState {
    fn limiter(&mut self) -> &mut ContainerLimiter {
        &mut self.limits
    }
}

impl Limited for ComponentState {
    fn limiter(&mut self) -> &mut ContainerLimiter {
        &mut self.limits
    }
}

/// A store for one instance: its memory limiter and epoch handling armed.
pub(crate) fn new_store<T: Limited>(
    engine: &wasmtime::Engine,
    state: T,
    stop: &CancellationToken,
    meter: &Arc<CpuMeter>,
) -> Store<T> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s.limiter());
    arm_epoch(&mut store, stop, meter);
    store
}

/// Runs a guest with its polls timed until it ends, or `None` once the stop token wins.
/// `draining` (which never completes) wakes the guest's listeners when the pod terminates.
async fn race<T>(
    run: impl Future<Output = T>,
    stop: &CancellationToken,
    meter: &Arc<CpuMeter>,
    mut draining: std::pin::Pin<&mut impl Future<Output = std::convert::Infallible>>,
) -> Option<T> {
    tokio::select! {
        biased;
        () = stop.cancelled() => None,
        outcome = Metered::new(run, meter.clone()) => Some(outcome),
        never = &mut draining => match never {},
    }
}

/// At every epoch tick: interrupts the guest once the stop token is cancelled, else lets
/// its [`CpuMeter`] decide whether it yields (its slice is used up, so no guest starves the
/// others on its thread) or sleeps (over its CPU limit).
fn arm_epoch<T: 'static>(store: &mut Store<T>, stop: &CancellationToken, meter: &Arc<CpuMeter>) {
    let stop = stop.clone();
    let meter = meter.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if stop.is_cancelled() {
            UpdateDeadline::Interrupt
        } else {
            meter.deadline(meter.tick(Now::read()))
        })
    });
}

/// The WASI context of a container: args, env, stdio, filesystem, sockets.
pub(crate) fn wasi_builder(spec: &ContainerSpec) -> Result<WasiCtxBuilder, Error> {
    let mut b = WasiCtxBuilder::new();
    if spec.argv.is_empty() {
        b.arg(spec.image.short_name());
    } else {
        b.args(&spec.argv);
    }
    b.envs(&spec.env);
    b.stdout(SinkStream::new(spec.stdout.clone(), spec.tty));
    b.stderr(SinkStream::new(spec.stderr.clone(), spec.tty));
    if let Some(stdin) = &spec.stdin {
        b.stdin(stdin.clone());
    }
    if let Some(dir) = &spec.working_dir {
        b.initial_cwd(dir);
    }

    let sandbox = |path: &Path, e: wasmtime::Error| Error::Sandbox {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    // What a Linux root offers every program: `/tmp`, and the working directory.
    let mut dirs = vec![PathBuf::from("tmp")];
    if let Some(dir) = &spec.working_dir
        && let Ok(dir) = guest_path(dir)
    {
        dirs.push(dir);
    }
    for dir in dirs {
        let dir = spec.root.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| sandbox(&dir, wasmtime::format_err!(e)))?;
    }
    b.preopened_dir(&spec.root, "/", FsPerms::ReadWrite)
        .map_err(|e| sandbox(&spec.root, e))?;
    for mount in &spec.mounts {
        let relative = guest_path(&mount.guest)?;
        // The mount point exists in the root, so `ls /` and `cd` see it like on Linux.
        let point = spec.root.join(&relative);
        std::fs::create_dir_all(&point).map_err(|e| sandbox(&point, wasmtime::format_err!(e)))?;
        let perms = if mount.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&mount.host, &mount.guest, perms)
            .map_err(|e| sandbox(&mount.host, e))?;
    }

    let network = spec.network;
    let services = spec.cluster.services.clone();
    b.allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(true)
        .socket_addr_check(move |addr, usage| {
            // An endpoint the balancer chose is reachable even outside the pod range (the
            // `kubernetes` Service's is the API server's own address).
            let endpoint = match (addr, usage) {
                (SocketAddr::V4(a), SocketAddrUse::TcpConnect) => services.is_endpoint(a),
                _ => false,
            };
            let allowed = endpoint || network.allows(addr, usage);
            if !allowed {
                tracing::debug!(%addr, ?usage, pod_ip = %network.pod_ip, "socket address refused");
            }
            Box::pin(std::future::ready(allowed))
        });
    Ok(b)
}

/// Checks a mount path and returns it relative to the root.
fn guest_path(guest: &str) -> Result<PathBuf, Error> {
    let invalid = |reason| Error::InvalidMount {
        guest: guest.to_string(),
        reason,
    };
    let path = Path::new(guest);
    if !path.is_absolute() {
        return Err(invalid("a mount path must be absolute"));
    }
    let mut relative = PathBuf::new();
    for part in path.components() {
        match part {
            PathComponent::RootDir | PathComponent::CurDir => {}
            PathComponent::Normal(p) => relative.push(p),
            PathComponent::ParentDir | PathComponent::Prefix(_) => {
                return Err(invalid("a mount path may not contain '..'"));
            }
        }
    }
    if relative.as_os_str().is_empty() {
        return Err(invalid("a volume cannot be mounted over /"));
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_absolute_and_stay_inside() {
        assert_eq!(
            guest_path("/usr/share/nginx/html").unwrap(),
            PathBuf::from("usr/share/nginx/html")
        );
        assert_eq!(guest_path("/data/./x/").unwrap(), PathBuf::from("data/x"));
        for bad in ["data", "/data/../etc", "/", ""] {
            assert!(guest_path(bad).is_err(), "{bad:?}");
        }
    }
}
