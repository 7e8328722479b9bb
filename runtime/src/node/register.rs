//! The node's own API object: registering the Node and keeping its status fresh.
//!
//! [`register`] creates the Node (or updates labels and status of an existing one, as a
//! restarted kubelet does) and reads back `spec.podCIDR`, which the API server assigns at
//! create time (a /16 in `127.64.0.0/10`). [`heartbeat`] then rewrites the status every
//! `status_update_interval`: capacity, nodeInfo, addresses, `daemonEndpoints` and the
//! conditions with a fresh `lastHeartbeatTime`. The Lease (lease.rs) is the cheap liveness
//! signal; this is the descriptive one `kubectl describe node` shows.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::config::{NodeConfig, format_bytes, format_millis};
use super::ipam;
use crate::wasm::Ipv4Cidr;

/// `status.nodeInfo.containerRuntimeVersion`.
pub const CONTAINER_RUNTIME_VERSION: &str = "wasmtime://48.0.8";
/// `status.nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.37.0-wasmkube";

/// What can go wrong registering the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action} node {node}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// The node name.
        node: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not give the node a pod CIDR.
    #[error("node {0} has no spec.podCIDR (the API server assigns one at registration)")]
    NoPodCidr(String),
    /// The assigned pod CIDR is malformed.
    #[error("node pod CIDR")]
    PodCidr(#[from] ipam::Error),
}

/// The registered node, as the agent needs it afterwards.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The Node's UID (owner of its Lease).
    pub uid: String,
    /// The node's pod range.
    pub pod_cidr: Ipv4Cidr,
}

/// The labels every wasmkube node carries.
pub fn labels(config: &NodeConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), config.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "wasm32".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "wasm32".to_string()),
    ])
}

/// The annotation that tells the local-path provisioner where this node keeps its volumes.
pub const LOCAL_PATH_ROOT: &str = "wasmkube.io/local-path-root";

/// The annotations every wasmkube node carries.
pub fn annotations(config: &NodeConfig) -> BTreeMap<String, String> {
    BTreeMap::from([(
        LOCAL_PATH_ROOT.to_string(),
        config.local_path_root.to_string_lossy().into_owned(),
    )])
}

/// The node's status as the agent reports it. `since` is when Ready last changed.
pub fn status(config: &NodeConfig, port: u16, since: jiff::Timestamp) -> NodeStatus {
    let resources = BTreeMap::from([
        (
            "cpu".to_string(),
            Quantity(format_millis(config.cpu_millis)),
        ),
        (
            "memory".to_string(),
            Quantity(format_bytes(config.memory_bytes)),
        ),
        ("pods".to_string(), Quantity(config.max_pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity("10Gi".to_string()),
        ),
    ]);
    let now = Time(jiff::Timestamp::now());
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(Time(since)),
    };
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.address.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "wasm32".into(),
            operating_system: "linux".into(),
            os_image: "WebAssembly (WASI 0.2)".into(),
            container_runtime_version: CONTAINER_RUNTIME_VERSION.into(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            system_uuid: read("/etc/machine-id"),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// Creates the Node, or updates the one a previous run registered, and returns its UID and
/// pod CIDR. The pod CIDR of an existing node is kept (the API server refuses to change it).
pub async fn register(
    client: &kube::Client,
    config: &NodeConfig,
    port: u16,
) -> Result<Registration, Error> {
    let api: Api<Node> = Api::all(client.clone());
    let err = |action: &'static str| {
        move |source| Error::Api {
            action,
            node: config.name.clone(),
            source,
        }
    };
    let node = Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels(config)),
            annotations: Some(annotations(config)),
            ..ObjectMeta::default()
        },
        status: Some(status(config, port, jiff::Timestamp::now())),
        ..Node::default()
    };
    let created = match api.create(&PostParams::default(), &node).await {
        Ok(node) => node,
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            let patch = json!({ "metadata": {
                "labels": labels(config),
                "annotations": annotations(config),
            } });
            api.patch(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(err("updating"))?
        }
        Err(e) => return Err(err("creating")(e)),
    };
    heartbeat(&api, config, port, jiff::Timestamp::now())
        .await
        .map_err(err("writing the status of"))?;

    let mut node = created;
    // A real cluster's node-ipam controller assigns the CIDR shortly after create; ours
    // does it in the create itself. Either way, wait a little for it.
    for _ in 0..50 {
        if let Some(cidr) = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .filter(|c| !c.is_empty())
        {
            let uid = node.metadata.uid.clone().unwrap_or_default();
            return Ok(Registration {
                uid,
                pod_cidr: ipam::parse_cidr(cidr)?,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        node = api.get(&config.name).await.map_err(err("reading"))?;
    }
    Err(Error::NoPodCidr(config.name.clone()))
}

/// Writes the node's status (a merge patch of `status`): the periodic heartbeat.
pub async fn heartbeat(
    api: &Api<Node>,
    config: &NodeConfig,
    port: u16,
    since: jiff::Timestamp,
) -> kube::Result<Node> {
    let patch = json!({ "status": status(config, port, since) });
    api.patch_status(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Rewrites the node status every `status_update_interval` until `shutdown`.
pub async fn heartbeat_loop(
    client: kube::Client,
    config: NodeConfig,
    port: u16,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let since = jiff::Timestamp::now();
    let mut tick = tokio::time::interval(config.status_update_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = heartbeat(&api, &config, port, since).await {
            tracing::warn!(node = %config.name, error = %error, "node status update failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_capacity_info_addresses_and_endpoint() {
        let config = NodeConfig {
            name: "n1".into(),
            cpu_millis: 1500,
            memory_bytes: 2 << 30,
            max_pods: 250,
            ..NodeConfig::default()
        };
        let s = serde_json::to_value(status(&config, 10250, jiff::Timestamp::UNIX_EPOCH)).unwrap();
        assert_eq!(s["capacity"]["cpu"], "1500m");
        assert_eq!(s["allocatable"]["memory"], "2097152Ki");
        assert_eq!(s["capacity"]["pods"], "250");
        assert_eq!(
            s["nodeInfo"]["containerRuntimeVersion"],
            CONTAINER_RUNTIME_VERSION
        );
        assert_eq!(s["nodeInfo"]["architecture"], "wasm32");
        assert_eq!(s["addresses"][0]["address"], "127.1.0.1");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("True"), Some("KubeletReady"))
        );
        assert_eq!(labels(&config)["kubernetes.io/arch"], "wasm32");
    }
}
