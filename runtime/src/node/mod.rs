//! The node agent (our kubelet): registers the Node, keeps its Lease, runs the pods bound to
//! it as WebAssembly instances and serves their logs.
//!
//! Start at [`run`]. The pieces, in the order a pod meets them:
//!
//! - `config.rs`: [`NodeConfig`] (Kubernetes defaults) and resource quantities;
//! - `register.rs`: the Node object (labels, capacity, nodeInfo, addresses, endpoint, Ready),
//!   its `spec.podCIDR`, and the status heartbeat; `lease.rs`: the `kube-node-lease` Lease;
//! - `pods.rs`: the watch on `spec.nodeName=<node>` and one worker per pod UID;
//! - `worker.rs`: a pod's state machine (Sandbox -> Init -> Main -> Done, Terminating) and
//!   the one place its status is written; `start.rs`: starting one container; `stop.rs`:
//!   exits, restarts, graceful deletion;
//!   `ephemeral.rs`: `kubectl debug`'s ephemeral containers;
//!   `container.rs`: one container's states, restart count and CrashLoopBackOff;
//!   `lifecycle.rs`: postStart/preStop hooks (exec, httpGet, sleep); `probes.rs`: startup,
//!   readiness and liveness probes;
//!   `status.rs`: phase and conditions from container states (pure);
//! - `ipam.rs`: pod IPs from the podCIDR, kept across restarts; `sandbox.rs`: the pod's
//!   directories and mounts; `volumes.rs`: emptyDir/configMap/secret/downwardAPI/projected;
//!   `env.rs`: env, `valueFrom`, `envFrom`, `$(VAR)`, argv;
//! - `events.rs`: core/v1 Events with aggregation; `logs.rs`: per-container CRI log files;
//!   `metrics.rs`: CPU, memory and network usage per container (`/metrics/resource`);
//!   `summary.rs`: the Summary API (`/stats/summary`, with volume and ephemeral storage);
//!   `prometheus.rs`: the agent's own `/metrics`;
//!   `server.rs`: the node's HTTP endpoint (`/containerLogs`, `/metrics/resource`,
//!   `/stats/summary`, `/metrics`, `/healthz`);
//! - `exec.rs`: running commands inside a running container (exec, exec probes and hooks);
//!   `stream.rs`: the exec and attach endpoints, `session.rs` their WebSocket side;
//!   `terminal.rs`: the host-side line discipline of `-t`; `attach.rs`: the streams of a
//!   `stdin: true` container; `portforward/`: `kubectl port-forward` (SPDY/3.1, tunnelled
//!   or not, and WebSocket channels) to a pod's ports.

mod attach;
pub mod claims;
pub mod config;
pub mod container;
pub mod env;
mod ephemeral;
pub mod events;
pub mod exec;
pub mod hostports;
pub mod ipam;
pub mod lease;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
mod pods;
pub mod portforward;
pub mod probes;
pub mod prometheus;
mod pull;
pub mod register;
pub mod sandbox;
pub mod server;
pub mod services;
mod session;
mod start;
pub mod status;
mod stop;
pub mod stream;
pub mod summary;
pub mod terminal;
pub mod volumes;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{
    NodeConfig, format_bytes, format_millis, parse_quantity, quantity_bytes, quantity_millis,
};
pub use logs::LogStore;
pub use register::{CONTAINER_RUNTIME_VERSION, KUBELET_VERSION};
pub use server::router as endpoint_router;

/// Why the node agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory could not be created.
    #[error("node data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node endpoint's port could not be bound.
    #[error("binding the node endpoint on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Registering the Node failed for good.
    #[error("registering the node")]
    Register(#[from] register::Error),
    /// The guest executor's threads could not be started.
    #[error("starting the guest executor")]
    Executor(#[source] std::io::Error),
    /// The pod IP allocations could not be opened.
    #[error("pod IP allocations")]
    Ipam(#[from] ipam::Error),
}

/// Runs the node agent until `shutdown` is cancelled: registers the Node (retrying while
/// the API server is unreachable), then keeps its Lease and status fresh, runs the pods
/// bound to it and serves their logs. On shutdown the pods' instances are stopped and their
/// directories and IPs kept, so the next run restarts them.
pub async fn run(
    client: kube::Client,
    runtime: Arc<crate::wasm::ContainerRuntime>,
    puller: Arc<crate::images::pull::Puller>,
    config: NodeConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let addr = SocketAddr::from((config.address, config.kubelet_port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?
        .port();

    let Some(registration) = register_with_retry(&client, &config, port, &shutdown).await? else {
        return Ok(());
    };
    tracing::info!(node = %config.name, pod_cidr = %format!("{}/{}", registration.pod_cidr.addr, registration.pod_cidr.prefix), port, "node registered");
    let ipam = ipam::Ipam::open(&config.data_dir.join("ipam"), registration.pod_cidr)?;

    // Everything below stops with `stop`, which also stops when `run` returns early.
    let stop = shutdown.child_token();
    let _stop_on_return = stop.clone().drop_guard();
    let logs = LogStore::new();
    let (recorder, receiver) = events::Recorder::new();
    let node_ref = ObjectReference {
        kind: Some("Node".into()),
        api_version: Some("v1".into()),
        name: Some(config.name.clone()),
        uid: Some(config.name.clone()),
        ..ObjectReference::default()
    };
    recorder.emit(
        node_ref.clone(),
        events::EventType::Normal,
        "Starting",
        "Starting kubelet.",
    );
    let (bindable, start) = crate::wasm::low_ports_bindable();
    let mut config = config;
    if config.map_low_ports || !bindable {
        config.map_low_ports = true;
        let why = if bindable {
            "as --map-low-ports asks".to_string()
        } else {
            format!(
                "this agent may not bind them (ip_unprivileged_port_start={})",
                start.map_or("unknown".into(), |s| s.to_string())
            )
        };
        let message = format!(
            "Pod ports below 1024 are served at {}+port on the host: {why}. Pods still see and \
             use their own ports.",
            crate::wasm::MAPPED_PORT_BASE
        );
        tracing::info!(node = %config.name, "{message}");
        recorder.emit(node_ref, events::EventType::Normal, "PortsMapped", message);
    }

    let mut tasks = JoinSet::new();
    tasks.spawn(events::run(
        client.clone(),
        config.name.clone(),
        receiver,
        stop.clone(),
    ));
    tasks.spawn(lease::run(
        client.clone(),
        config.name.clone(),
        registration.uid.clone(),
        config.lease_renew_interval,
        stop.clone(),
    ));
    tasks.spawn(register::heartbeat_loop(
        client.clone(),
        config.clone(),
        port,
        stop.clone(),
    ));
    let usages = metrics::Usages::for_node(&config.name, runtime.clone());
    tasks.spawn(
        usages
            .clone()
            .housekeeping(config.housekeeping_interval, stop.clone()),
    );
    let guests = crate::wasm::GuestExecutor::new(config.cpu_millis).map_err(Error::Executor)?;
    let builtin: Arc<dyn crate::images::ImageSource> = Arc::new(puller.builtin().clone());
    let exec = exec::Exec::new(runtime.clone(), guests.handle().clone(), builtin);
    let router = server::router(logs.clone(), usages.clone(), exec.clone());
    let services = services::ServiceCache::new(&config.cluster_domain);
    tasks.spawn(services.clone().run(client.clone(), stop.clone()));
    let host_ports = hostports::HostPorts {
        node_address: config.address,
        load_balancer: config.load_balancer_address,
        map_low_ports: config.map_low_ports,
        client: client.clone(),
        events: recorder.clone(),
    };
    tasks.spawn(host_ports.run(services.clone(), stop.clone()));
    tasks.spawn(claims::run(
        client.clone(),
        config.volumes(),
        config.volume_stats_period,
        recorder.clone(),
        stop.clone(),
    ));
    let server_stop = stop.clone();
    tasks.spawn(async move {
        let serve =
            axum::serve(listener, router).with_graceful_shutdown(server_stop.cancelled_owned());
        if let Err(error) = serve.await {
            tracing::error!(error = %error, "node endpoint failed");
        }
    });

    let ctx = Arc::new(worker::Context {
        client,
        runtime,
        guests,
        puller,
        config,
        ipam: Mutex::new(ipam),
        logs,
        usages,
        events: recorder,
        exec,
        services,
    });
    pods::run(ctx, stop.clone()).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Registers the node, retrying with back-off (0.2 s doubling to 5 s) while the API server
/// is unreachable. `None` if `shutdown` came first.
async fn register_with_retry(
    client: &kube::Client,
    config: &NodeConfig,
    port: u16,
    shutdown: &CancellationToken,
) -> Result<Option<register::Registration>, Error> {
    let mut delay = Duration::from_millis(200);
    loop {
        match register::register(client, config, port).await {
            Ok(registration) => return Ok(Some(registration)),
            Err(e @ (register::Error::NoPodCidr(_) | register::Error::PodCidr(_))) => {
                return Err(e.into());
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in = ?delay, "node registration failed")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
