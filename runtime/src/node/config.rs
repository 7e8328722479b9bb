//! The node agent's configuration ([`NodeConfig`]) and the resource quantities it reads and
//! writes (`cpu: 500m`, `memory: 128Mi`).
//!
//! Defaults are Kubernetes' (kubelet flags of the same meaning): port 10250, lease renewed
//! every 10 s, node status every 10 s, CrashLoopBackOff from 10 s doubling to 5 min and reset
//! after 10 min of running, a full resync every minute, 110 pods. Tests shrink the timers.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything one node agent needs to know about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The Node's name (`kubernetes.io/hostname` label too).
    pub name: String,
    /// The node's address: its `InternalIP`, where the log endpoint listens, the pods'
    /// `hostIP`. Node i of `wasmkube up` is `127.1.i.1`.
    pub address: Ipv4Addr,
    /// Where the agent keeps pod directories (volumes, ephemeral roots, logs) and pod IPs.
    pub data_dir: PathBuf,
    /// CPU capacity in millicores (`--node-cpu`).
    pub cpu_millis: u64,
    /// Memory capacity in bytes (`--node-memory`).
    pub memory_bytes: u64,
    /// The most pods this node runs (`--max-pods`).
    pub max_pods: u32,
    /// Port of the node's HTTP endpoint (logs, health); 0 picks a free one, and the Node's
    /// `daemonEndpoints` says which.
    pub kubelet_port: u16,
    /// How often the node Lease is renewed (`--node-lease-renew-interval`).
    pub lease_renew_interval: Duration,
    /// How often the Node's status (Ready condition heartbeat) is written.
    pub status_update_interval: Duration,
    /// The first CrashLoopBackOff delay (the first restart itself is immediate).
    pub backoff_base: Duration,
    /// The longest CrashLoopBackOff delay.
    pub backoff_max: Duration,
    /// A container that ran this long before exiting starts its backoff afresh.
    pub backoff_reset: Duration,
    /// How often every pod worker re-checks its pod even when nothing changed (and refreshes
    /// configMap and secret volumes).
    pub sync_period: Duration,
    /// Whether `hostPath` volumes are allowed (off: a pod author must not read host files).
    pub allow_host_path: bool,
    /// Whether containers may connect to non-loopback addresses.
    pub allow_external_network: bool,
    /// Map pod ports below 1024 to `61000 + port` on the host even if this process could
    /// bind them; the agent turns it on by itself when it cannot (see `wasm::PodNetwork`).
    pub map_low_ports: bool,
    /// Whether pods may resolve names outside the cluster through the host's resolver
    /// (`--allow-external-dns`); off, such lookups fail and cluster DNS answers alone.
    pub allow_external_dns: bool,
    /// The cluster domain (`--cluster-domain`, `cluster.local`).
    pub cluster_domain: String,
    /// Where this node serves LoadBalancer Services (`--load-balancer-address`; `up` gives
    /// its first node `127.0.0.1`); `None`: it is no load balancer.
    pub load_balancer_address: Option<Ipv4Addr>,
    /// Where the local-path provisioner's volumes of this node live (`--local-path-root`,
    /// `DATA_DIR/storage`); published in the Node's `wasmkube.io/local-path-root` annotation.
    pub local_path_root: PathBuf,
    /// How often the usage of the node's claims is measured and reported
    /// (`--volume-stats-agg-period`, the kubelet's 1 m).
    pub volume_stats_period: Duration,
    /// How soon a pod whose claim is not bound yet looks again (`--volume-retry-interval`).
    pub volume_retry: Duration,
    /// How often every container's CPU is sampled for the summary's `usageNanoCores`
    /// (`--housekeeping-interval`, cAdvisor's 10 s).
    pub housekeeping_interval: Duration,
    /// The longest a terminating pod's listeners stay open waiting for it to leave its
    /// Services' endpoints (`--endpoint-drain-timeout`; also bounded by the grace period).
    pub endpoint_drain_timeout: Duration,
    /// How long after that the listeners still stay open, for the other nodes' copies of the
    /// endpoints to catch up (`--endpoint-propagation-delay`).
    pub endpoint_propagation_delay: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        NodeConfig {
            data_dir: default_data_dir().join("nodes").join(&name),
            name,
            address: Ipv4Addr::new(127, 1, 0, 1),
            cpu_millis: cpus * 1000,
            memory_bytes: host_memory_bytes().unwrap_or(4 << 30),
            max_pods: 110,
            kubelet_port: 10250,
            lease_renew_interval: Duration::from_secs(10),
            status_update_interval: Duration::from_secs(10),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
            sync_period: Duration::from_secs(60),
            allow_host_path: false,
            allow_external_network: false,
            map_low_ports: false,
            allow_external_dns: false,
            cluster_domain: "cluster.local".into(),
            load_balancer_address: None,
            local_path_root: default_data_dir().join("storage"),
            volume_stats_period: Duration::from_secs(60),
            volume_retry: Duration::from_secs(1),
            housekeeping_interval: Duration::from_secs(10),
            endpoint_drain_timeout: Duration::from_secs(5),
            endpoint_propagation_delay: Duration::from_millis(100),
        }
    }
}

impl NodeConfig {
    /// What mounting claims and host directories needs.
    pub fn volumes(&self) -> super::claims::NodeVolumes {
        super::claims::NodeVolumes {
            node: self.name.clone(),
            local_path_root: self.local_path_root.clone(),
            allow_host_path: self.allow_host_path,
        }
    }
}

/// `${XDG_DATA_HOME:-~/.local/share}/wasmkube` (ARCHITECTURE D5).
fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("wasmkube")
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn host_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses a Kubernetes quantity (`128Mi`, `1G`, `500m`, `1.5`, `2e3`) as a number of units.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    let v = value * factor;
    v.is_finite().then_some(v)
}

/// A memory quantity in bytes, rounded up (`128Mi` -> 134217728).
pub fn quantity_bytes(q: &str) -> Option<u64> {
    parse_quantity(q)
        .filter(|v| *v >= 0.0)
        .map(|v| v.ceil() as u64)
}

/// A CPU quantity in millicores, rounded up (`0.5` -> 500, `250m` -> 250).
pub fn quantity_millis(q: &str) -> Option<u64> {
    parse_quantity(q)
        .filter(|v| *v >= 0.0)
        .map(|v| (v * 1000.0).ceil() as u64)
}

/// Formats millicores the way the kubelet reports CPU: whole cores as `2`, else `1500m`.
pub fn format_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes the way the kubelet reports memory: `Ki` when whole kibibytes.
pub fn format_bytes(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_decimal_and_milli_quantities() {
        assert_eq!(quantity_bytes("128Mi"), Some(128 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_millis("250m"), Some(250));
        assert_eq!(quantity_millis("0.5"), Some(500));
        assert_eq!(quantity_millis("2"), Some(2000));
        assert_eq!(quantity_bytes("12Qi"), None);
        assert_eq!(quantity_bytes("-1"), None);
    }

    #[test]
    fn formats_like_the_kubelet() {
        assert_eq!(format_millis(2000), "2");
        assert_eq!(format_millis(1500), "1500m");
        assert_eq!(format_bytes(4 << 30), "4194304Ki");
        assert_eq!(format_bytes(1000), "1000");
    }

    #[test]
    fn defaults_are_kubernetes_defaults() {
        let c = NodeConfig::default();
        assert_eq!((c.kubelet_port, c.max_pods), (10250, 110));
        assert_eq!(
            (c.backoff_base, c.backoff_max, c.backoff_reset),
            (
                Duration::from_secs(10),
                Duration::from_secs(300),
                Duration::from_secs(600)
            )
        );
        assert!(c.cpu_millis >= 1000 && c.memory_bytes > 0);
    }
}
