//! Node-agent flags (`wasmkube node` and the agents inside `wasmkube up`) and starting agents.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use runtime::images::Images;
use runtime::images::local::LocalImages;
use runtime::images::pull::Puller;
use runtime::images::registry::Registries;
use runtime::node::{self, NodeConfig};
use runtime::wasm::{ContainerRuntime, EngineConfig, WasmEngine};
use tokio_util::sync::CancellationToken;

use crate::parse_duration;

/// Flags every node agent takes.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// CPU capacity the node advertises, in cores or millicores (`2`, `1500m`) [default: the host's].
    #[arg(long)]
    pub node_cpu: Option<String>,
    /// Memory capacity the node advertises (`4Gi`) [default: the host's].
    #[arg(long)]
    pub node_memory: Option<String>,
    /// The most pods a node runs (also sizes the wasm instance pool).
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Memory cap of a container without `limits.memory` (also the pool's slot size).
    #[arg(long, default_value = "256Mi")]
    pub default_memory_limit: String,
    /// Port of each node's endpoint (logs); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// How often a node renews its Lease.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub node_lease_renew_interval: Duration,
    /// How often a node writes its status heartbeat.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub node_status_update_frequency: Duration,
    /// First CrashLoopBackOff delay.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub backoff_base: Duration,
    /// Longest CrashLoopBackOff delay.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// A container that ran this long starts its backoff afresh.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub backoff_reset: Duration,
    /// How often every pod is re-checked even when nothing changed.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub sync_frequency: Duration,
    /// Allow `hostPath` volumes (off: pod authors must not read host files).
    #[arg(long)]
    pub allow_host_path: bool,
    /// Allow `file://` image references (off: pod authors must not read host files).
    #[arg(long)]
    pub allow_file_images: bool,
    /// Allow containers to connect to addresses outside the cluster.
    #[arg(long)]
    pub allow_external_network: bool,
    /// Let pods resolve names outside the cluster through the host's resolver (off: cluster
    /// DNS answers alone and other lookups fail).
    #[arg(long)]
    pub allow_external_dns: bool,
    /// The longest a terminating pod's listeners wait for it to leave its Services'
    /// endpoints (bounded by the grace period too).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub endpoint_drain_timeout: Duration,
    /// How much longer they stay open after that, for other nodes to see the change.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub endpoint_propagation_delay: Duration,
    /// Serve LoadBalancer Services on this host address and report it as their ingress
    /// (`up`: its first node, at 127.0.0.1 by default).
    #[arg(long)]
    pub load_balancer_address: Option<Ipv4Addr>,
    /// Where the local-path StorageClass keeps this node's volumes [default: DATA_DIR/storage].
    #[arg(long)]
    pub local_path_root: Option<PathBuf>,
    /// How soon a pod whose claim is not bound yet looks again.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub volume_retry_interval: Duration,
    /// How often the usage of the node's claims is measured and reported on them.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub volume_stats_agg_period: Duration,
    /// How often containers' CPU is sampled for `/stats/summary`'s `usageNanoCores`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub housekeeping_interval: Duration,
    /// The cluster's DNS domain (Services are `NAME.NAMESPACE.svc.DOMAIN`).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Serve pod ports below 1024 at 61000+port on the host, as when the agent may not bind
    /// them (automatic then: not root and ip_unprivileged_port_start above them).
    #[arg(long)]
    pub map_low_ports: bool,
    /// Where compiled images (`.cwasm`) are cached [default: DATA_DIR/cache]; clusters may share one.
    #[arg(long)]
    pub compile_cache: Option<PathBuf>,
    /// A registry (`host:port`) to pull from over plain HTTP; repeatable. Loopback
    /// registries and the cluster's own image store always are.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
}

/// Why a node agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A quantity flag did not parse.
    #[error("invalid {flag} {value:?} (use e.g. 2, 1500m for cpu; 4Gi, 512Mi for memory)")]
    Quantity {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
    },
    /// The wasm engine or its compile cache could not start.
    #[error("cannot start the wasm runtime")]
    Runtime(#[from] runtime::wasm::Error),
}

impl NodeArgs {
    /// The node config for node `name` at `address`, keeping its data under `data_dir`.
    pub fn config(
        &self,
        name: String,
        address: Ipv4Addr,
        data_dir: PathBuf,
    ) -> Result<NodeConfig, Error> {
        let mut config = NodeConfig {
            name,
            address,
            local_path_root: self
                .local_path_root
                .clone()
                .unwrap_or_else(|| data_dir.join("storage")),
            volume_stats_period: self.volume_stats_agg_period,
            volume_retry: self.volume_retry_interval,
            data_dir,
            ..NodeConfig::default()
        };
        if let Some(cpu) = &self.node_cpu {
            config.cpu_millis =
                node::config::quantity_millis(cpu).ok_or_else(|| Error::Quantity {
                    flag: "--node-cpu",
                    value: cpu.clone(),
                })?;
        }
        if let Some(memory) = &self.node_memory {
            config.memory_bytes =
                node::config::quantity_bytes(memory).ok_or_else(|| Error::Quantity {
                    flag: "--node-memory",
                    value: memory.clone(),
                })?;
        }
        config.max_pods = self.max_pods;
        config.kubelet_port = self.kubelet_port;
        config.lease_renew_interval = self.node_lease_renew_interval;
        config.status_update_interval = self.node_status_update_frequency;
        config.backoff_base = self.backoff_base;
        config.backoff_max = self.backoff_max;
        config.backoff_reset = self.backoff_reset;
        config.sync_period = self.sync_frequency;
        config.allow_host_path = self.allow_host_path;
        config.allow_external_network = self.allow_external_network;
        config.allow_external_dns = self.allow_external_dns;
        config.cluster_domain = self.cluster_domain.clone();
        config.load_balancer_address = self.load_balancer_address;
        config.endpoint_drain_timeout = self.endpoint_drain_timeout;
        config.endpoint_propagation_delay = self.endpoint_propagation_delay;
        config.map_low_ports = self.map_low_ports;
        config.housekeeping_interval = self.housekeeping_interval;
        Ok(config)
    }

    /// The process's one wasm runtime (engine + compile cache under `data_dir/cache`), shared by
    /// every in-process agent, and its image puller: pulled images under
    /// `data_dir/node-images`, the cluster's image store at `cluster_registry` (the API
    /// server's `host:port`).
    pub fn runtime(
        &self,
        data_dir: &Path,
        agents: u32,
        cluster_registry: Option<String>,
    ) -> Result<(Arc<ContainerRuntime>, Arc<Puller>), Error> {
        let max_memory_bytes = node::config::quantity_bytes(&self.default_memory_limit)
            .ok_or_else(|| Error::Quantity {
                flag: "--default-memory-limit",
                value: self.default_memory_limit.clone(),
            })?;
        let engine = WasmEngine::new(EngineConfig {
            max_instances: self.max_pods.saturating_mul(agents.max(1)).max(16),
            max_memory_bytes,
            ..EngineConfig::default()
        })?;
        let cache = self
            .compile_cache
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        let runtime = ContainerRuntime::new(engine, Some(&cache))?;
        let puller = Puller::new(
            LocalImages::new(data_dir.join("node-images")),
            Images::builtin(self.allow_file_images),
            Registries::new(cluster_registry, self.insecure_registries.clone()),
        );
        Ok((Arc::new(runtime), Arc::new(puller)))
    }
}

/// Starts a node agent as a task; its error, if any, is logged.
pub fn spawn_agent(
    client: kube::Client,
    runtime: Arc<ContainerRuntime>,
    puller: Arc<Puller>,
    config: NodeConfig,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let name = config.name.clone();
        if let Err(e) = node::run(client, runtime, puller, config, shutdown).await {
            tracing::error!(node = %name, error = %anyhow::Error::from(e), "node agent stopped");
        }
    })
}
