//! `wasmkube`: Kubernetes' desired-state model where every container is a WebAssembly instance.
//!
//! One binary: `server` runs the control plane, `up` runs a whole cluster in one process, and
//! the client verbs (`apply`, `get`, `describe`, `delete`, `scale`) talk to a running one.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use controlplane::server::{self, ControlPlane};
use tokio_util::sync::CancellationToken;

mod node;

/// Kubernetes' desired-state model, with WebAssembly instances for containers.
#[derive(Parser, Debug)]
#[command(name = "wasmkube", version, about)]
struct Cli {
    /// The kubeconfig client verbs use (default: $KUBECONFIG, ~/.kube/config, then the default
    /// data dir's).
    #[arg(long, global = true, env = "WASMKUBE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; the flag structs are not worth boxing"
)]
enum Command {
    /// Run the control plane (API server, store and controllers) in the foreground.
    Server(ServerArgs),
    /// Run a whole cluster in one process: the control plane and `--nodes` node agents.
    Up(UpArgs),
    /// Run a node agent that joins the cluster at `--server`.
    Node(NodeCmd),
    #[command(flatten)]
    Client(cli::Command),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Port of the API (0 picks a free one and prints it).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    /// Where the store (state.redb) and the kubeconfig live
    /// [default: ${XDG_DATA_HOME:-~/.local/share}/wasmkube].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How often watches that allow bookmarks get one.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    bookmark_interval: Duration,
    /// The longest a watch stays open when the client sets no timeoutSeconds.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    max_watch_duration: Duration,
    /// How often a terminating namespace with objects left in it is re-examined.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    namespace_retry_interval: Duration,
    /// The pod address range inside 127/8; each node gets a /16 of it.
    #[arg(long, default_value = "127.64.0.0/10")]
    cluster_cidr: controlplane::registry::ClusterCidr,
    /// The Service address range ClusterIPs come from (the `kubernetes` Service is its .1).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: controlplane::registry::ServiceCidr,
    /// How long a node's Lease may go unrenewed before it is `Ready=Unknown` and tainted
    /// unreachable (its pods are then evicted after their toleration, 300 s by default).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How often controllers re-examine every object even when nothing changed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    min_resync_period: Duration,
    /// A Job's first delay before it replaces a failed pod (doubling per failure).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    job_backoff_base: Duration,
    /// A Job's longest delay before it replaces a failed pod.
    #[arg(long, default_value = "6m", value_parser = parse_duration)]
    job_backoff_max: Duration,
    /// How often the volume controller re-examines every claim and volume when nothing
    /// changed.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pvclaimbinder_sync_period: Duration,
    /// How often the scheduler retries pods that fit nowhere, when nothing else changed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    unschedulable_retry_interval: Duration,
    /// How often node agents are scraped for metrics.k8s.io (kubectl top, the HPA).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    metric_resolution: Duration,
    /// How often every HorizontalPodAutoscaler is evaluated.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_sync_period: Duration,
    /// How long an HPA looks back for higher recommendations before it scales in.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// The usage/target ratio distance from 1.0 within which an HPA does not scale.
    #[arg(long, default_value_t = 0.1)]
    horizontal_pod_autoscaler_tolerance: f64,
    /// How long after a pod starts its CPU counts only from samples taken after it became ready.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// How long after start a not-yet-ready pod still counts as about to become ready.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_initial_readiness_delay: Duration,
}

#[derive(Args, Debug)]
struct UpArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    node: node::NodeArgs,
    /// How many node agents to run in this process (node i is `node-i` at 127.1.i.1).
    #[arg(long, default_value_t = 1)]
    nodes: u32,
}

#[derive(Args, Debug)]
struct NodeCmd {
    #[command(flatten)]
    node: node::NodeArgs,
    /// The API server to join.
    #[arg(long)]
    server: String,
    /// The Node's name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// The node's address (its InternalIP, where pods' hostIP and the log endpoint are).
    #[arg(long, default_value = "127.0.0.1")]
    address: std::net::Ipv4Addr,
    /// Where pod directories, pod IPs and the compile cache live
    /// [default: ${XDG_DATA_HOME:-~/.local/share}/wasmkube/nodes/NAME].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Parses `500ms`, `10s`, `5m`, `1h` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 10s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

impl ServerArgs {
    fn controllers(&self) -> controlplane::controllers::ControllerOptions {
        controlplane::controllers::ControllerOptions {
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_monitor_period: self.node_monitor_period,
            resync: self.min_resync_period,
            job_backoff_base: self.job_backoff_base,
            job_backoff_max: self.job_backoff_max,
            pvclaimbinder_sync_period: self.pvclaimbinder_sync_period,
            hpa: controlplane::controllers::hpa::HpaOptions {
                sync_period: self.horizontal_pod_autoscaler_sync_period,
                downscale_stabilization: self.horizontal_pod_autoscaler_downscale_stabilization,
                tolerance: self.horizontal_pod_autoscaler_tolerance,
                cpu_initialization_period: self.horizontal_pod_autoscaler_cpu_initialization_period,
                initial_readiness_delay: self.horizontal_pod_autoscaler_initial_readiness_delay,
            },
        }
    }

    fn scheduler(&self) -> controlplane::scheduler::SchedulerOptions {
        controlplane::scheduler::SchedulerOptions {
            retry_unschedulable: self.unschedulable_retry_interval,
        }
    }

    fn config(&self) -> server::Config {
        server::Config {
            address: self.address,
            port: self.port,
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(server::default_data_dir),
            bookmark_interval: self.bookmark_interval,
            max_watch: self.max_watch_duration,
            namespace_retry: self.namespace_retry_interval,
            cluster_cidr: self.cluster_cidr,
            service_cidr: self.service_cluster_ip_range,
            metric_resolution: self.metric_resolution,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let client = matches!(cli.command, Command::Client(_));
    let default_filter = if client { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMKUBE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => serve(args.config(), args.controllers(), args.scheduler())
                .await
                .map_err(anyhow::Error::from),
            Command::Up(args) => up(args).await,
            Command::Node(args) => join(args).await,
            Command::Client(command) => cli::run(command, cli.kubeconfig).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Client verbs print kubectl-style messages themselves.
            if e.downcast_ref::<cli::ErrorReported>().is_none() {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the control plane until Ctrl-C or SIGTERM.
async fn serve(
    config: server::Config,
    controllers: controlplane::controllers::ControllerOptions,
    scheduler: controlplane::scheduler::SchedulerOptions,
) -> Result<(), server::Error> {
    let mut plane = ControlPlane::start(config).await?;
    plane.start_controllers(controllers);
    plane.start_scheduler(scheduler);
    println!("wasmkube: API server ready at {}", plane.url);
    println!("wasmkube: kubeconfig at {}", plane.kubeconfig.display());
    wait_for_signal().await;
    eprintln!("wasmkube: shutting down");
    plane.stop().await;
    Ok(())
}

/// `wasmkube up`: the control plane, the stand-in scheduler and `--nodes` node agents in one
/// process sharing one wasm engine, until Ctrl-C or SIGTERM.
async fn up(args: UpArgs) -> anyhow::Result<()> {
    let config = args.server.config();
    let data_dir = config.data_dir.clone();
    let mut plane = ControlPlane::start(config).await?;
    plane.start_controllers(args.server.controllers());
    plane.start_scheduler(args.server.scheduler());
    let (runtime, puller) = args
        .node
        .runtime(&data_dir, args.nodes, authority(&plane.url))?;
    println!("wasmkube: API server ready at {}", plane.url);
    let agents = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 1..=args.nodes.clamp(1, 254) {
        let name = format!("node-{i}");
        let address = std::net::Ipv4Addr::new(127, 1, i as u8, 1);
        let dir = data_dir.join("nodes").join(&name);
        let mut node_config = args.node.config(name, address, dir)?;
        // The first node is the cluster's load balancer (k3s's servicelb), at 127.0.0.1
        // unless --load-balancer-address says otherwise.
        if i == 1 {
            node_config.load_balancer_address = Some(
                args.node
                    .load_balancer_address
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST),
            );
        }
        let client = plane.client();
        tasks.push(node::spawn_agent(
            client,
            runtime.clone(),
            puller.clone(),
            node_config,
            agents.clone(),
        ));
    }
    println!("wasmkube: cluster up with {} node(s)", args.nodes);
    println!("export KUBECONFIG={}", plane.kubeconfig.display());
    wait_for_signal().await;
    eprintln!("wasmkube: shutting down");
    agents.cancel();
    for task in tasks {
        let _ = task.await;
    }
    plane.stop().await;
    Ok(())
}

/// `wasmkube node`: one node agent joining the cluster at `--server`.
async fn join(args: NodeCmd) -> anyhow::Result<()> {
    let url: http::Uri = args
        .server
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid --server {:?}: {e}", args.server))?;
    let client = kube::Client::try_from(kube::Config::new(url))?;
    let name = args
        .name
        .unwrap_or_else(|| runtime::node::NodeConfig::default().name);
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| server::default_data_dir().join("nodes").join(&name));
    let config = args.node.config(name, args.address, data_dir)?;
    let (runtime, puller) = args
        .node
        .runtime(&config.data_dir, 1, authority(&args.server))?;
    let shutdown = CancellationToken::new();
    let agent = node::spawn_agent(client, runtime, puller, config, shutdown.clone());
    println!("wasmkube: node agent started (server {})", args.server);
    wait_for_signal().await;
    shutdown.cancel();
    let _ = agent.await;
    Ok(())
}

/// `host:port` of an API server URL: where its image store (`/v2/`) is.
fn authority(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let authority = uri.authority()?;
    Some(match authority.port_u16() {
        Some(_) => authority.to_string(),
        None if uri.scheme_str() == Some("http") => format!("{}:80", authority.host()),
        None => format!("{}:443", authority.host()),
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
