//! PersistentVolumeClaims on the node (ARCHITECTURE D8): a claim's volume is a host
//! directory preopened at each mount, like every other volume.
//!
//! A claim must be Bound; its PersistentVolume names the directory (`hostPath` or `local`) and,
//! through its node affinity, the node. Volumes the local-path provisioner made live under this
//! node's `--local-path-root` (announced in the Node's `wasmkube.io/local-path-root`
//! annotation) and are created on first use; a hand-made PV elsewhere on the host needs
//! `--allow-host-path`, as a `hostPath` volume does.
//!
//! Two loops run beside the pods ([`run`]): Released volumes of this node that the provisioner
//! made with reclaim policy `Delete` lose their directory and then their PV object (the
//! provisioner's cleanup; `Retain` keeps both); and every `--volume-stats-agg-period` the space
//! each claim's directory uses is written on the claim (`wasmkube.io/used-bytes`, which
//! `kubectl describe pvc` shows), with a Warning Event when it grows past the request (the
//! local-path class, like k3s's, does not enforce sizes).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::events::{EventType, Recorder};
use super::sandbox::VolumeDir;

/// The claim annotation with the bytes its directory uses.
pub const USED_BYTES: &str = "wasmkube.io/used-bytes";
/// The PV annotation naming the provisioner that made it.
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The provisioners whose volumes this node cleans up.
pub const PROVISIONERS: [&str; 2] = ["rancher.io/local-path", "wasmkube.io/local-path"];

/// What mounting a claim on this node needs to know.
#[derive(Debug, Clone)]
pub struct NodeVolumes {
    /// This node's name.
    pub node: String,
    /// Where provisioned volumes live.
    pub local_path_root: PathBuf,
    /// Whether volumes outside that root (hand-made PVs, `hostPath` volumes) are allowed.
    pub allow_host_path: bool,
}

/// Why a claim cannot be mounted (a `FailedMount` event; retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The claim does not exist.
    #[error("persistentvolumeclaim {0:?} not found")]
    NotFound(String),
    /// The claim has no volume yet.
    #[error(
        "persistentvolumeclaim {name:?} is not bound yet (phase {phase}); waiting for its volume"
    )]
    NotBound {
        /// The claim.
        name: String,
        /// Its phase.
        phase: String,
    },
    /// The claim's volume is not something this node can mount.
    #[error("volume {volume:?} of persistentvolumeclaim {claim:?}: {reason}")]
    Unusable {
        /// The claim.
        claim: String,
        /// The PersistentVolume.
        volume: String,
        /// Why.
        reason: String,
    },
    /// Reading the claim or volume failed.
    #[error("reading persistentvolumeclaim {0:?}")]
    Api(String, #[source] kube::Error),
    /// Creating the directory failed.
    #[error("creating {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the claim only has to wait (for the binder or the provisioner).
    pub fn is_waiting(&self) -> bool {
        matches!(self, Error::NotBound { .. })
    }
}

/// The directory of claim `source` in `namespace`, created if it is a provisioned one.
pub async fn claim_dir(
    client: &kube::Client,
    namespace: &str,
    source: &PersistentVolumeClaimVolumeSource,
    node: &NodeVolumes,
) -> Result<VolumeDir, Error> {
    let name = &source.claim_name;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = claims
        .get_opt(name)
        .await
        .map_err(|e| Error::Api(name.clone(), e))?
        .ok_or_else(|| Error::NotFound(name.clone()))?;
    let phase = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let (Some(volume_name), "Bound") = (volume_name, phase.as_str()) else {
        return Err(Error::NotBound {
            name: name.clone(),
            phase,
        });
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get_opt(&volume_name)
        .await
        .map_err(|e| Error::Api(name.clone(), e))?;
    let unusable = |reason: String| Error::Unusable {
        claim: name.clone(),
        volume: volume_name.clone(),
        reason,
    };
    let pv = pv.ok_or_else(|| unusable("the PersistentVolume does not exist".into()))?;
    let host = volume_path(&pv, node).map_err(unusable)?;
    std::fs::create_dir_all(&host).map_err(|source| Error::Io {
        path: host.clone(),
        source,
    })?;
    let read_only = source.read_only == Some(true)
        || pv
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.as_ref())
            .is_some_and(|m| m.len() == 1 && m[0] == "ReadOnlyMany");
    Ok(VolumeDir { host, read_only })
}

/// The directory of a PersistentVolume on `node`, or why it cannot be used here.
pub fn volume_path(pv: &PersistentVolume, node: &NodeVolumes) -> Result<PathBuf, String> {
    let spec = pv.spec.clone().unwrap_or_default();
    let path = spec
        .host_path
        .as_ref()
        .map(|h| h.path.clone())
        .or_else(|| spec.local.as_ref().map(|l| l.path.clone()))
        .ok_or("only hostPath and local volumes can be mounted on wasmkube nodes")?;
    let path = PathBuf::from(path);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{} is not an absolute path without ..",
            path.display()
        ));
    }
    if let Some(nodes) = affinity_nodes(pv)
        && !nodes.contains(&node.node)
    {
        return Err(format!(
            "it lives on node(s) {} and this is {}",
            nodes.join(", "),
            node.node
        ));
    }
    if !path.starts_with(&node.local_path_root) && !node.allow_host_path {
        return Err(format!(
            "{} is outside this node's local-path root {} (start the node with \
             --allow-host-path to mount other host directories)",
            path.display(),
            node.local_path_root.display()
        ));
    }
    Ok(path)
}

/// The nodes a PV's required affinity allows by `kubernetes.io/hostname`, if it says.
fn affinity_nodes(pv: &PersistentVolume) -> Option<Vec<String>> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    let nodes: Vec<String> = terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .filter(|e| e.key == "kubernetes.io/hostname" && e.operator == "In")
        .flat_map(|e| e.values.iter().flatten().cloned())
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// Runs the cleanup and usage loops until `shutdown`.
pub async fn run(
    client: kube::Client,
    node: NodeVolumes,
    period: std::time::Duration,
    events: Recorder,
    shutdown: CancellationToken,
) {
    let node = Arc::new(node);
    let mut tick = tokio::time::interval(period.min(std::time::Duration::from_secs(5)));
    let mut stats = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => reclaim(&client, &node).await,
            _ = stats.tick() => report_usage(&client, &node, &events).await,
        }
    }
}

/// Whether this node should delete `pv`'s directory and object.
fn is_ours_to_delete(pv: &PersistentVolume, node: &NodeVolumes) -> bool {
    let spec = pv.spec.clone().unwrap_or_default();
    let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
    let delete = spec.persistent_volume_reclaim_policy.as_deref() == Some("Delete");
    let ours = pv
        .annotations()
        .get(PROVISIONED_BY)
        .is_some_and(|p| PROVISIONERS.contains(&p.as_str()));
    released
        && delete
        && ours
        && volume_path(pv, node).is_ok_and(|p| p.starts_with(&node.local_path_root))
}

/// Deletes this node's Released `Delete` volumes: directory first, then the PV.
async fn reclaim(client: &kube::Client, node: &NodeVolumes) {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let Ok(list) = volumes.list(&ListParams::default()).await else {
        return;
    };
    for pv in list.items.iter().filter(|pv| is_ours_to_delete(pv, node)) {
        let Ok(path) = volume_path(pv, node) else {
            continue;
        };
        if let Err(e) = remove_dir(&path) {
            tracing::warn!(volume = %pv.name_any(), path = %path.display(), error = %e, "cannot remove a released volume");
            continue;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pv.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match volumes.delete(&pv.name_any(), &params).await {
            Ok(_) => {
                tracing::info!(volume = %pv.name_any(), path = %path.display(), "released volume deleted")
            }
            Err(e) => {
                tracing::debug!(volume = %pv.name_any(), error = %e, "deleting a released volume")
            }
        }
    }
}

fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Bytes used under `path` (files' lengths, directories not counted), without following
/// symlinks.
pub fn used_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// Writes each claim's usage on it (for this node's volumes) and warns past the request.
async fn report_usage(client: &kube::Client, node: &NodeVolumes, events: &Recorder) {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let Ok(list) = volumes.list(&ListParams::default()).await else {
        return;
    };
    for pv in &list.items {
        let (Some(claim_ref), Ok(path)) = (
            pv.spec.as_ref().and_then(|s| s.claim_ref.clone()),
            volume_path(pv, node),
        ) else {
            continue;
        };
        if affinity_nodes(pv).is_none() || !path.exists() {
            continue;
        }
        let (Some(ns), Some(name)) = (claim_ref.namespace.clone(), claim_ref.name.clone()) else {
            continue;
        };
        let used = tokio::task::spawn_blocking({
            let path = path.clone();
            move || used_bytes(&path)
        })
        .await
        .unwrap_or(0);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let Ok(Some(claim)) = claims.get_opt(&name).await else {
            continue;
        };
        let previous: Option<u64> = claim
            .annotations()
            .get(USED_BYTES)
            .and_then(|v| v.parse().ok());
        if previous == Some(used) {
            continue;
        }
        let patch = json!({"metadata": {"annotations": {USED_BYTES: used.to_string()}}});
        if let Err(e) = claims
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(claim = %name, error = %e, "writing volume usage");
            continue;
        }
        let request = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| super::config::quantity_bytes(&q.0));
        if let Some(request) = request
            && used > request
            && previous.is_none_or(|p| p <= request)
        {
            let mut object: ObjectReference = claim.object_ref(&());
            object.field_path = None;
            events.emit(
                object,
                EventType::Warning,
                "VolumeOverRequest",
                format!(
                    "volume {} uses {used} bytes, more than the {request} the claim requests \
                     (local-path does not enforce sizes)",
                    pv.name_any()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> NodeVolumes {
        NodeVolumes {
            node: "node-1".into(),
            local_path_root: PathBuf::from("/data/storage"),
            allow_host_path: false,
        }
    }

    fn pv(path: &str, nodes: &[&str]) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": "pvc-1", "annotations": {PROVISIONED_BY: "rancher.io/local-path"}},
            "spec": {"hostPath": {"path": path}, "persistentVolumeReclaimPolicy": "Delete",
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": nodes}]}]}}},
            "status": {"phase": "Released"},
        }))
        .unwrap()
    }

    #[test]
    fn provisioned_volumes_mount_on_their_node_only() {
        let ok = pv("/data/storage/pvc-1_default_data", &["node-1"]);
        assert_eq!(
            volume_path(&ok, &node()),
            Ok(PathBuf::from("/data/storage/pvc-1_default_data"))
        );
        let elsewhere = pv("/data/storage/pvc-1_default_data", &["node-2"]);
        assert!(
            volume_path(&elsewhere, &node())
                .unwrap_err()
                .contains("node-2")
        );
    }

    #[test]
    fn host_directories_outside_the_root_need_the_flag() {
        let outside = pv("/etc", &["node-1"]);
        assert!(
            volume_path(&outside, &node())
                .unwrap_err()
                .contains("--allow-host-path")
        );
        let allowed = NodeVolumes {
            allow_host_path: true,
            ..node()
        };
        assert_eq!(volume_path(&outside, &allowed), Ok(PathBuf::from("/etc")));
        let sneaky = pv("/data/storage/../../etc", &["node-1"]);
        assert!(volume_path(&sneaky, &allowed).is_err());
    }

    #[test]
    fn only_released_delete_volumes_of_ours_are_cleaned_up() {
        assert!(is_ours_to_delete(
            &pv("/data/storage/pvc-1_d_x", &["node-1"]),
            &node()
        ));
        let mut retained = pv("/data/storage/pvc-1_d_x", &["node-1"]);
        retained
            .spec
            .as_mut()
            .unwrap()
            .persistent_volume_reclaim_policy = Some("Retain".into());
        assert!(!is_ours_to_delete(&retained, &node()));
        let mut bound = pv("/data/storage/pvc-1_d_x", &["node-1"]);
        bound.status.as_mut().unwrap().phase = Some("Bound".into());
        assert!(!is_ours_to_delete(&bound, &node()));
        assert!(!is_ours_to_delete(
            &pv("/data/storage/pvc-1_d_x", &["node-2"]),
            &node()
        ));
    }

    #[test]
    fn usage_counts_file_bytes_below_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 24]).unwrap();
        assert_eq!(used_bytes(dir.path()), 1024);
    }
}
