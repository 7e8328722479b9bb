//! The VolumeBinding plugin: what a pod's PersistentVolumeClaims ask of its node.
//!
//! [`prefilter`] looks the pod's claims up once per decision: a missing, deleting or lost
//! claim, or an unbound claim of an `Immediate` class (the binder has not bound it yet),
//! makes the pod unschedulable everywhere with kube-scheduler's words. [`PodVolumes::check`]
//! then filters each node: a bound claim's volume must admit the node through its node
//! affinity; an unbound `WaitForFirstConsumer` claim fits a node with a matching static
//! volume there or whose class can provision (for our local-path provisioner: a node that
//! publishes its local-path root), and once the scheduler has picked a node for it, only
//! that node. [`pre_bind`] is kube-scheduler's PreBind: before the pod is bound,
//! each such claim gets `volume.kubernetes.io/selected-node`, which is what the volume
//! controller provisions on.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::json;

use super::cache::NodeInfo;
use crate::controllers::volume::binding::{best_match, claim_class, node_affinity_admits};
use crate::controllers::volume::provision;
use crate::controllers::volume::{BIND_COMPLETED, SELECTED_NODE};

/// `node(s) had volume node affinity conflict`.
pub const NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// `node(s) didn't find available persistent volumes to bind`.
pub const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// `node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)`.
pub const PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// The storage objects the scheduler mirrors.
pub struct Storage {
    /// Every claim.
    pub claims: Store<PersistentVolumeClaim>,
    /// Every volume.
    pub volumes: Store<PersistentVolume>,
    /// Every class.
    pub classes: Store<StorageClass>,
    /// Every node (for the local-path root each publishes).
    pub nodes: Store<Node>,
}

/// Why a node does not suit a pod's claims (several may hold, as VolumeBinding reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conflicts {
    /// A bound claim's volume does not admit the node.
    pub node_affinity: bool,
    /// An unbound claim can get no volume there.
    pub bind: bool,
    /// A bound claim's volume does not exist.
    pub missing_volume: bool,
}

impl Conflicts {
    /// Whether any holds.
    pub fn any(self) -> bool {
        self.node_affinity || self.bind || self.missing_volume
    }
}

/// An unbound claim whose binding waits for its first pod's node.
#[derive(Debug)]
struct Delayed {
    claim: Arc<PersistentVolumeClaim>,
    class: Arc<StorageClass>,
    /// The node already picked for it, if that node is still there.
    selected: Option<String>,
    /// Whether our local-path provisioner makes its volumes.
    ours: bool,
}

/// A pod's claims, looked up.
#[derive(Debug, Default)]
pub struct PodVolumes {
    /// The volumes of its bound claims (`None`: the volume is gone).
    bound: Vec<Option<Arc<PersistentVolume>>>,
    delayed: Vec<Delayed>,
    /// Every volume, when some claim is delayed (static volumes may match it).
    all: Vec<Arc<PersistentVolume>>,
    /// The nodes that publish no local-path root, when some delayed claim is ours: our
    /// provisioner cannot make a volume there.
    rootless: HashSet<String>,
}

/// The claims a pod mounts: `persistentVolumeClaim` volumes, and generic ephemeral volumes'
/// `<pod>-<volume>` claims (`true`).
fn claim_names(pod: &Pod) -> Vec<(String, bool)> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some((c.claim_name.clone(), false)),
            (None, Some(_)) => Some((format!("{pod_name}-{}", v.name), true)),
            _ => None,
        })
        .collect()
}

/// Looks up the pod's claims (VolumeBinding's PreFilter); `Err` is the reason it fits no
/// node.
pub fn prefilter(pod: &Pod, storage: &Storage) -> Result<PodVolumes, String> {
    let node_exists = |name: &str| storage.nodes.get(&ObjectRef::new(name)).is_some();
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut out = PodVolumes::default();
    let mut immediate = false;
    for (name, ephemeral) in claim_names(pod) {
        let Some(claim) = storage.claims.get(&ObjectRef::new(&name).within(ns)) else {
            return Err(if ephemeral {
                format!(
                    "waiting for ephemeral volume controller to create the \
                     persistentvolumeclaim {name:?}"
                )
            } else {
                format!("persistentvolumeclaim {name:?} not found")
            });
        };
        let status = claim.status.as_ref();
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if status.and_then(|s| s.phase.as_deref()) == Some("Lost") {
            return Err(format!(
                "persistentvolumeclaim {name:?} bound to non-existent persistentvolume \
                 {volume_name:?}"
            ));
        }
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        let fully_bound = !volume_name.is_empty()
            && claim
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(BIND_COMPLETED));
        if fully_bound {
            out.bound
                .push(storage.volumes.get(&ObjectRef::new(&volume_name)));
            continue;
        }
        let class = Some(claim_class(&claim))
            .filter(|c| !c.is_empty())
            .and_then(|c| storage.classes.get(&ObjectRef::new(c)))
            .filter(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        match class {
            Some(class) if volume_name.is_empty() => {
                let selected = claim
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SELECTED_NODE))
                    .filter(|n| node_exists(n))
                    .cloned();
                let ours = provision::is_ours(&class.provisioner);
                out.delayed.push(Delayed {
                    claim,
                    class,
                    selected,
                    ours,
                });
            }
            // Immediate claims (and pre-bound ones) are the binder's to bind first.
            _ => immediate = true,
        }
    }
    if immediate {
        return Err("pod has unbound immediate PersistentVolumeClaims".into());
    }
    if !out.delayed.is_empty() {
        out.all = storage.volumes.state();
    }
    if out.delayed.iter().any(|d| d.ours) {
        out.rootless = storage
            .nodes
            .state()
            .iter()
            .filter(|n| {
                n.metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key(provision::ROOT_ANNOTATION))
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
    }
    Ok(out)
}

impl PodVolumes {
    /// Whether the pod mounts no claim that needs checking.
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty() && self.delayed.is_empty()
    }

    /// VolumeBinding's Filter for one node.
    pub fn check(&self, node: &NodeInfo) -> Conflicts {
        let mut c = Conflicts::default();
        for volume in &self.bound {
            match volume {
                None => c.missing_volume = true,
                Some(v) if !node_affinity_admits(v, node) => c.node_affinity = true,
                Some(_) => {}
            }
        }
        for d in &self.delayed {
            if d.selected.as_ref().is_some_and(|s| *s != node.name) {
                c.bind = true;
                continue;
            }
            let static_match =
                best_match(&d.claim, self.all.iter().map(|v| &**v), Some(node), true);
            let provisionable =
                can_provision(&d.class, node) && !(d.ours && self.rootless.contains(&node.name));
            if static_match.is_none() && !provisionable {
                c.bind = true;
            }
        }
        c
    }

    /// The names of the claims that must be told `node` before the pod is bound to it.
    pub fn to_select(&self, node: &str) -> Vec<String> {
        self.delayed
            .iter()
            .filter(|d| d.selected.as_deref() != Some(node))
            .filter_map(|d| d.claim.metadata.name.clone())
            .collect()
    }
}

/// Whether `class` can make a volume on `node`: it has a provisioner, and its
/// `allowedTopologies` (if any) admit the node's labels.
fn can_provision(class: &StorageClass, node: &NodeInfo) -> bool {
    if class.provisioner.is_empty() || class.provisioner == "kubernetes.io/no-provisioner" {
        return false;
    }
    let terms = class.allowed_topologies.as_deref().unwrap_or_default();
    terms.is_empty()
        || terms.iter().any(|t| {
            t.match_label_expressions.iter().flatten().all(|e| {
                node.labels
                    .get(&e.key)
                    .is_some_and(|v| e.values.contains(v))
            })
        })
}

/// PreBind: records `node` on each of `claims` (in `namespace`) as its selected node.
pub async fn pre_bind(
    client: &Client,
    namespace: &str,
    claims: &[String],
    node: &str,
) -> Result<(), kube::Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
    for name in claims {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::cache::tests::node;
    use kube::runtime::{reflector, watcher};
    use serde_json::Value;

    fn store<K>(items: Vec<Value>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
    {
        let (store, mut writer) = reflector::store();
        for item in items {
            let obj: K = serde_json::from_value(item).unwrap();
            writer.apply_watcher_event(&watcher::Event::Apply(obj));
        }
        store
    }

    fn storage(claims: Vec<Value>, volumes: Vec<Value>) -> Storage {
        let mut n2 = serde_json::to_value(node("n2", "1", "1Gi", 10)).unwrap();
        n2["metadata"]["annotations"] = serde_json::json!({provision::ROOT_ANNOTATION: "/r"});
        let mut n1 = n2.clone();
        n1["metadata"]["name"] = "n1".into();
        let bare = serde_json::to_value(node("bare", "1", "1Gi", 10)).unwrap();
        Storage {
            nodes: store(vec![n1, n2, bare]),
            claims: store(claims),
            volumes: store(volumes),
            classes: store(vec![
                serde_json::json!({"metadata": {"name": "local-path"},
                    "provisioner": "rancher.io/local-path",
                    "volumeBindingMode": "WaitForFirstConsumer"}),
                serde_json::json!({"metadata": {"name": "fast"}, "provisioner": "x",
                    "volumeBindingMode": "Immediate"}),
                serde_json::json!({"metadata": {"name": "manual"},
                    "provisioner": "kubernetes.io/no-provisioner",
                    "volumeBindingMode": "WaitForFirstConsumer"}),
            ]),
        }
    }

    fn claim(name: &str, spec: Value, annotations: Value) -> Value {
        serde_json::json!({"metadata": {"name": name, "namespace": "default", "uid": name,
            "annotations": annotations}, "spec": spec})
    }

    fn pod(claim: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p",
            "namespace": "default"}, "spec": {"containers": [], "volumes": [
                {"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}))
        .unwrap()
    }

    fn info(name: &str) -> NodeInfo {
        NodeInfo::new(&node(name, "1", "1Gi", 10))
    }

    #[test]
    fn missing_deleting_and_immediate_claims_fit_nowhere() {
        let s = storage(
            vec![
                claim(
                    "fast",
                    serde_json::json!({"storageClassName": "fast"}),
                    Value::Null,
                ),
                {
                    let mut c = claim("old", serde_json::json!({}), Value::Null);
                    c["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
                    c
                },
            ],
            vec![],
        );
        let err = |name| prefilter(&pod(name), &s).unwrap_err();
        assert_eq!(err("nope"), "persistentvolumeclaim \"nope\" not found");
        assert_eq!(err("old"), "persistentvolumeclaim \"old\" is being deleted");
        assert_eq!(
            err("fast"),
            "pod has unbound immediate PersistentVolumeClaims"
        );
    }

    #[test]
    fn a_bound_claims_volume_pins_the_pod_to_its_node() {
        let s = storage(
            vec![claim(
                "data",
                serde_json::json!({"volumeName": "pv1"}),
                serde_json::json!({BIND_COMPLETED: "yes"}),
            )],
            vec![serde_json::json!({"metadata": {"name": "pv1"}, "spec": {
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}]}]}}}})],
        );
        let v = prefilter(&pod("data"), &s).unwrap();
        assert!(v.check(&info("n1")).node_affinity);
        assert!(!v.check(&info("n2")).any());
    }

    #[test]
    fn a_delayed_claim_fits_where_it_can_be_provisioned_and_is_told_its_node() {
        let s = storage(
            vec![
                claim(
                    "wait",
                    serde_json::json!({"storageClassName": "local-path"}),
                    Value::Null,
                ),
                claim(
                    "manual",
                    serde_json::json!({"storageClassName": "manual"}),
                    Value::Null,
                ),
                claim(
                    "chosen",
                    serde_json::json!({"storageClassName": "local-path"}),
                    serde_json::json!({SELECTED_NODE: "n2"}),
                ),
            ],
            vec![],
        );
        let v = prefilter(&pod("wait"), &s).unwrap();
        assert!(!v.check(&info("n1")).any());
        assert_eq!(v.to_select("n1"), ["wait"]);
        let manual = prefilter(&pod("manual"), &s).unwrap();
        assert!(
            manual.check(&info("n1")).bind,
            "no provisioner and no volume"
        );
        let chosen = prefilter(&pod("chosen"), &s).unwrap();
        assert!(chosen.check(&info("n1")).bind);
        assert!(!chosen.check(&info("n2")).any());
        assert!(chosen.to_select("n2").is_empty());
        let moved = storage(
            vec![claim(
                "chosen",
                serde_json::json!({"storageClassName": "local-path"}),
                serde_json::json!({SELECTED_NODE: "n9"}),
            )],
            vec![],
        );
        let gone = prefilter(&pod("chosen"), &moved).unwrap();
        assert!(
            !gone.check(&info("n1")).any(),
            "its node is gone: anywhere again"
        );
        assert!(gone.check(&info("bare")).bind, "no local-path root there");
    }
}
