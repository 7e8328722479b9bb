//! One snapshot of everything a volume sync reads (claims, volumes, classes, nodes, pods),
//! taken from the reflector stores at the start of a pass so every decision in it sees the
//! same cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

/// The cluster as one sync pass sees it.
#[derive(Default)]
pub struct World {
    /// Claims by `namespace/name`.
    pub claims: BTreeMap<String, Arc<PersistentVolumeClaim>>,
    /// Volumes by name.
    pub volumes: BTreeMap<String, Arc<PersistentVolume>>,
    /// Classes by name.
    pub classes: HashMap<String, Arc<StorageClass>>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, Arc<Node>>,
    /// Every pod.
    pub pods: Vec<Arc<Pod>>,
}

/// `namespace/name` of a claim.
pub fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

impl World {
    /// A snapshot of these objects.
    pub fn new(
        claims: Vec<Arc<PersistentVolumeClaim>>,
        volumes: Vec<Arc<PersistentVolume>>,
        classes: Vec<Arc<StorageClass>>,
        nodes: Vec<Arc<Node>>,
        pods: Vec<Arc<Pod>>,
    ) -> World {
        let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.name.clone().unwrap_or_default()
        };
        World {
            claims: claims.into_iter().map(|c| (claim_key(&c), c)).collect(),
            volumes: volumes
                .into_iter()
                .map(|v| (name(&v.metadata), v))
                .collect(),
            classes: classes
                .into_iter()
                .map(|c| (name(&c.metadata), c))
                .collect(),
            nodes: nodes.into_iter().map(|n| (name(&n.metadata), n)).collect(),
            pods,
        }
    }

    /// The claim `namespace/name`.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<&PersistentVolumeClaim> {
        self.claims
            .get(&format!("{namespace}/{name}"))
            .map(|c| &**c)
    }

    /// The volume `name`.
    pub fn volume(&self, name: &str) -> Option<&PersistentVolume> {
        self.volumes.get(name).map(|v| &**v)
    }

    /// The class `name`.
    pub fn class(&self, name: &str) -> Option<&StorageClass> {
        self.classes.get(name).map(|c| &**c)
    }

    /// The node `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name).map(|n| &**n)
    }

    /// Every volume, by name.
    pub fn all_volumes(&self) -> impl Iterator<Item = &PersistentVolume> {
        self.volumes.values().map(|v| &**v)
    }
}
