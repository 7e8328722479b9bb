//! The local-path provisioner (k3s's `rancher.io/local-path`, also `wasmkube.io/local-path`):
//! a claim's volume is a directory on one node, so provisioning is only writing the
//! PersistentVolume that names it. The node agent creates the directory when a pod mounts
//! the claim and, for `Delete`, removes it and then the PV once the volume is Released.
//!
//! The contract with the node agent: each node publishes its data root in the annotation
//! [`ROOT_ANNOTATION`] (an absolute path); the PV is `pvc-<claim uid>` with
//! `hostPath: {path: <root>/pvc-<uid>_<namespace>_<name>, type: DirectoryOrCreate}`, node
//! affinity `kubernetes.io/hostname In [<node>]`, a `claimRef` with the claim's uid, the
//! request as capacity, the claim's access modes, the class's reclaim policy and name, and
//! [`PROVISIONED_BY`] naming the provisioner.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;

use super::binding::volume_phase;
use super::world::World;

/// The provisioner names this controller answers for.
pub const PROVISIONERS: [&str; 2] = ["rancher.io/local-path", "wasmkube.io/local-path"];
/// The Node annotation with the directory the node keeps local-path volumes in.
pub const ROOT_ANNOTATION: &str = "wasmkube.io/local-path-root";
/// The PV annotation naming who provisioned it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The PV annotation local-path-provisioner records its node in.
pub const PV_SELECTED_NODE: &str = "local.path.provisioner/selected-node";
/// The node label a volume's node affinity names.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether `provisioner` is one of ours.
pub fn is_ours(provisioner: &str) -> bool {
    PROVISIONERS.contains(&provisioner)
}

/// Whether `volume` was made by one of our provisioners (so its node reclaims it).
pub fn provisioned_by_us(volume: &PersistentVolume) -> bool {
    volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVISIONED_BY))
        .is_some_and(|p| is_ours(p))
}

/// The component our provisioner's Events come from (k3s: `rancher.io/local-path_<pod>_<id>`).
pub fn component(provisioner: &str) -> String {
    format!("{provisioner}_wasmkube-controller-manager")
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        && !node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
}

fn root_of(node: &Node) -> Option<&str> {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROOT_ANNOTATION))
        .map(String::as_str)
}

/// The node for a claim of an `Immediate` class: a Ready, schedulable node that publishes
/// its root, the one holding the fewest of our volumes (ties by name).
pub fn choose_node(world: &World) -> Result<&Node, String> {
    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for v in world.all_volumes() {
        if provisioned_by_us(v) && volume_phase(v) != "Released" {
            let node = v
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PV_SELECTED_NODE));
            if let Some(node) = node {
                *held.entry(node.as_str()).or_default() += 1;
            }
        }
    }
    world
        .nodes
        .iter()
        .filter(|(_, n)| ready(n) && root_of(n).is_some())
        .min_by_key(|(name, _)| held.get(name.as_str()).copied().unwrap_or(0))
        .map(|(_, n)| &**n)
        .ok_or_else(|| format!("no ready node publishes its local-path root ({ROOT_ANNOTATION})"))
}

/// The PersistentVolume for `claim` of `class` on `node`, or why there can be none (the
/// text after `failed to provision volume with StorageClass "..."`).
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &Node,
) -> Result<PersistentVolume, String> {
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        return Err("claim Selector is not supported".into());
    }
    let modes = spec.access_modes.clone().unwrap_or_default();
    if modes
        .iter()
        .any(|m| m != "ReadWriteOnce" && m != "ReadWriteOncePod")
    {
        return Err(
            "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes".into(),
        );
    }
    let mode = spec.volume_mode.as_deref().unwrap_or("Filesystem");
    if mode != "Filesystem" {
        return Err(format!(
            "volumeMode {mode} is not supported by local-path volumes"
        ));
    }
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    let root = root_of(node).ok_or_else(|| {
        format!(
            "node {node_name:?} does not publish its local-path root (annotation \
             {ROOT_ANNOTATION}), so it cannot hold local-path volumes"
        )
    })?;
    if !root.starts_with('/') {
        return Err(format!(
            "node {node_name:?} publishes a local-path root that is not absolute: {root:?}"
        ));
    }
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .ok_or("claim has no storage request")?;
    let uid = claim.metadata.uid.as_deref().unwrap_or_default();
    let namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let class_name = class.metadata.name.as_deref().unwrap_or_default();
    let hostname = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HOSTNAME_LABEL))
        .map_or(node_name, String::as_str);
    let path = format!(
        "{}/pvc-{uid}_{namespace}_{name}",
        root.trim_end_matches('/')
    );
    let volume = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("pvc-{uid}"), "annotations": {
            PROVISIONED_BY: class.provisioner, PV_SELECTED_NODE: node_name}},
        "spec": {
            "accessModes": modes,
            "capacity": {"storage": storage},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": namespace, "name": name, "uid": uid,
                "resourceVersion": claim.metadata.resource_version},
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [hostname]}]}]}},
            "persistentVolumeReclaimPolicy": class.reclaim_policy.as_deref().unwrap_or("Delete"),
            "storageClassName": class_name,
            "volumeMode": mode,
            "mountOptions": class.mount_options,
        },
    });
    serde_json::from_value(volume).map_err(|e| format!("building the volume: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::volume::binding::tests::claim;
    use std::sync::Arc;

    fn class(reclaim: &str) -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": "local-path"},
            "provisioner": "rancher.io/local-path", "reclaimPolicy": reclaim,
            "volumeBindingMode": "WaitForFirstConsumer"}))
        .unwrap()
    }

    pub(crate) fn node(name: &str, root: Option<&str>) -> Node {
        let mut n = json!({"metadata": {"name": name, "labels": {HOSTNAME_LABEL: name}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        if let Some(root) = root {
            n["metadata"]["annotations"] = json!({ROOT_ANNOTATION: root});
        }
        serde_json::from_value(n).unwrap()
    }

    #[test]
    fn the_volume_follows_the_node_contract() {
        let c = claim("data-db-0", json!({"storageClassName": "local-path"}));
        let v = volume_for(&c, &class("Delete"), &node("node-1", Some("/var/lib/x/"))).unwrap();
        let v = serde_json::to_value(&v).unwrap();
        assert_eq!(v["metadata"]["name"], "pvc-uid-data-db-0");
        assert_eq!(
            v["metadata"]["annotations"][PROVISIONED_BY],
            "rancher.io/local-path"
        );
        assert_eq!(
            v["spec"]["hostPath"],
            json!({"path": "/var/lib/x/pvc-uid-data-db-0_default_data-db-0",
                "type": "DirectoryOrCreate"})
        );
        assert_eq!(
            v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
            json!({"key": HOSTNAME_LABEL, "operator": "In", "values": ["node-1"]})
        );
        assert_eq!(v["spec"]["claimRef"]["uid"], "uid-data-db-0");
        assert_eq!(v["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(v["spec"]["accessModes"], json!(["ReadWriteOnce"]));
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(v["spec"]["storageClassName"], "local-path");
    }

    #[test]
    fn nodes_without_a_root_and_unsupported_claims_are_refused() {
        let c = claim("c", json!({}));
        let err = volume_for(&c, &class("Delete"), &node("n", None)).unwrap_err();
        assert!(err.contains(ROOT_ANNOTATION), "{err}");
        let rwx = claim("c", json!({"accessModes": ["ReadWriteMany"]}));
        assert!(volume_for(&rwx, &class("Delete"), &node("n", Some("/r"))).is_err());
        let picky = claim("c", json!({"selector": {"matchLabels": {"a": "b"}}}));
        assert_eq!(
            volume_for(&picky, &class("Delete"), &node("n", Some("/r"))).unwrap_err(),
            "claim Selector is not supported"
        );
    }

    #[test]
    fn immediate_claims_go_to_the_ready_node_holding_fewest_volumes() {
        let c = claim("c", json!({}));
        let held = volume_for(&c, &class("Retain"), &node("a", Some("/r"))).unwrap();
        let mut not_ready = node("c", Some("/r"));
        not_ready.status = None;
        let world = World::new(
            vec![],
            vec![Arc::new(held)],
            vec![],
            vec![
                Arc::new(node("a", Some("/r"))),
                Arc::new(node("b", Some("/r"))),
                Arc::new(not_ready),
                Arc::new(node("d", None)),
            ],
            vec![],
        );
        assert_eq!(
            choose_node(&world).unwrap().metadata.name.as_deref(),
            Some("b")
        );
        assert!(choose_node(&World::default()).is_err());
    }
}
