//! What the binder does with one claim (kube-controller-manager's `syncClaim`), as a pure
//! function of the claim and a [`World`] snapshot; `mod.rs` carries the [`Step`] out.
//!
//! An unbound claim without a class gets the default class (retroactively, so claims made
//! before the default class existed get it too); then it binds to the volume it names in
//! `volumeName`, to one pre-bound to it, or to the best Available match
//! ([`binding::best_match`]). With no match a claim of a `WaitForFirstConsumer` class waits
//! for the scheduler to pick a node (`volume.kubernetes.io/selected-node`); a class with a
//! provisioner provisions (ours: [`provision`]); a claim of class `""` only says that
//! nothing is available. A bound claim stays bound to its volume, or is `Lost` when the
//! volume goes.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use super::binding::{self, best_match, check_satisfies, claim_class, class_unset, is_bound_to};
use super::events::Note;
use super::provision;
use super::world::World;
use super::{BIND_COMPLETED, SELECTED_NODE};
use crate::scheduler::cache::NodeInfo;

/// What to do with one claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Give the unset `storageClassName` the default class.
    AssignClass(String),
    /// Bind claim and volume (volume first); only what differs is written.
    Bind(String),
    /// Stay (or become) `Pending`, saying this.
    Pending(Option<Note>),
    /// Have a volume provisioned.
    Provision(Provisioning),
    /// The bound volume is gone or taken: `Lost`.
    Lost(Note),
}

/// A dynamic provisioning request.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioning {
    /// The class's provisioner, recorded on the claim.
    pub provisioner: String,
    /// For our provisioner: the volume to create, or why none can be (the
    /// `ProvisioningFailed` message). `None` for anyone else's.
    pub ours: Option<Result<Box<PersistentVolume>, String>>,
}

fn annotation<'a>(claim: &'a PersistentVolumeClaim, key: &str) -> Option<&'a str> {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Whether the binder finished binding this claim once (`pv.kubernetes.io/bind-completed`).
pub fn bind_completed(claim: &PersistentVolumeClaim) -> bool {
    annotation(claim, BIND_COMPLETED).is_some()
}

/// The one step for `claim` now.
pub fn decide(claim: &PersistentVolumeClaim, world: &World) -> Step {
    if bind_completed(claim) {
        return bound(claim, world);
    }
    if class_unset(claim)
        && let Some(default) = binding::default_class(world.classes.values().map(|c| &**c))
    {
        return Step::AssignClass(default.metadata.name.clone().unwrap_or_default());
    }
    let wanted = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|n| !n.is_empty());
    match wanted {
        Some(name) => requested(claim, name, world),
        None => unbound(claim, world),
    }
}

/// A claim that asks for a volume by name.
fn requested(claim: &PersistentVolumeClaim, name: &str, world: &World) -> Step {
    let Some(volume) = world.volume(name) else {
        // Made later, perhaps; kube-controller-manager just waits too.
        return Step::Pending(None);
    };
    if is_bound_to(volume, claim) {
        return Step::Bind(name.into());
    }
    if volume.spec.as_ref().is_some_and(|s| s.claim_ref.is_some()) {
        return Step::Pending(Some(Note::warning(
            "FailedBinding",
            format!("volume {name:?} already bound to a different claim."),
        )));
    }
    match check_satisfies(volume, claim) {
        Ok(()) => Step::Bind(name.into()),
        Err(why) => Step::Pending(Some(Note::warning(
            "VolumeMismatch",
            format!("Cannot bind to requested volume {name:?}: {why}"),
        ))),
    }
}

/// A claim waiting for a volume: match, wait for a node, or provision.
fn unbound(claim: &PersistentVolumeClaim, world: &World) -> Step {
    let class_name = claim_class(claim);
    let class = (!class_name.is_empty())
        .then(|| world.class(class_name))
        .flatten();
    let delay =
        class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    let selected = annotation(claim, SELECTED_NODE);
    let node = selected.and_then(|n| world.node(n));
    let info = node.map(NodeInfo::new);
    if let Some(volume) = best_match(claim, world.all_volumes(), info.as_ref(), delay) {
        return Step::Bind(volume.metadata.name.clone().unwrap_or_default());
    }
    if claim.metadata.deletion_timestamp.is_some() {
        return Step::Pending(None);
    }
    if delay && selected.is_none() {
        return Step::Pending(Some(waiting_for_consumer(claim, world)));
    }
    if class_name.is_empty() {
        return Step::Pending(Some(Note::normal(
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )));
    }
    let Some(class) = class else {
        return Step::Pending(Some(Note::warning(
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io {class_name:?} not found"),
        )));
    };
    let provisioner = class.provisioner.clone();
    let ours = provision::is_ours(&provisioner).then(|| {
        let target = match selected {
            Some(name) => {
                node.ok_or_else(|| format!("failed to get target node: node {name:?} not found"))
            }
            None => provision::choose_node(world).map_err(|e| failed(class_name, &e)),
        };
        target.and_then(|n| {
            provision::volume_for(claim, class, n)
                .map(Box::new)
                .map_err(|e| failed(class_name, &e))
        })
    });
    Step::Provision(Provisioning { provisioner, ours })
}

fn failed(class: &str, why: &str) -> String {
    format!("failed to provision volume with StorageClass {class:?}: {why}")
}

/// `WaitForFirstConsumer`, or `WaitForPodScheduled` naming the pods that use the claim and
/// wait for a node.
fn waiting_for_consumer(claim: &PersistentVolumeClaim, world: &World) -> Note {
    let ns = claim.metadata.namespace.as_deref();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let mut pods: Vec<&str> = world
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| {
            let spec = p.spec.as_ref();
            spec.and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty)
                && spec
                    .and_then(|s| s.volumes.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|v| {
                        v.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| c.claim_name == name)
                    })
        })
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    pods.sort_unstable();
    match pods.as_slice() {
        [] => Note::normal(
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        ),
        [one] => Note::normal(
            "WaitForPodScheduled",
            format!("waiting for pod {one} to be scheduled"),
        ),
        many => Note::normal(
            "WaitForPodScheduled",
            format!("waiting for pods {} to be scheduled", many.join(",")),
        ),
    }
}

/// A claim bound once: keep it bound, or `Lost`.
fn bound(claim: &PersistentVolumeClaim, world: &World) -> Step {
    let name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default();
    if name.is_empty() {
        return Step::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ));
    }
    match world.volume(name) {
        None => Step::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        )),
        Some(v) if v.spec.as_ref().is_none_or(|s| s.claim_ref.is_none()) => Step::Bind(name.into()),
        Some(v) if is_bound_to(v, claim) => Step::Bind(name.into()),
        Some(_) => Step::Lost(Note::warning(
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::volume::binding::tests::{claim, volume};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use k8s_openapi::api::storage::v1::StorageClass;
    use serde_json::json;
    use std::sync::Arc;

    fn class(name: &str, provisioner: &str, mode: &str, default: bool) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "annotations": {
                "storageclass.kubernetes.io/is-default-class": default.to_string()}},
                "provisioner": provisioner, "reclaimPolicy": "Delete",
                "volumeBindingMode": mode}))
            .unwrap(),
        )
    }

    fn local_path() -> Arc<StorageClass> {
        class(
            "local-path",
            "rancher.io/local-path",
            "WaitForFirstConsumer",
            true,
        )
    }

    fn node(name: &str, root: Option<&str>) -> Arc<Node> {
        let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        if let Some(root) = root {
            n["metadata"]["annotations"] = json!({provision::ROOT_ANNOTATION: root});
        }
        Arc::new(serde_json::from_value(n).unwrap())
    }

    fn world(
        volumes: Vec<PersistentVolume>,
        classes: Vec<Arc<StorageClass>>,
        nodes: Vec<Arc<Node>>,
        pods: Vec<Pod>,
    ) -> World {
        World::new(
            vec![],
            volumes.into_iter().map(Arc::new).collect(),
            classes,
            nodes,
            pods.into_iter().map(Arc::new).collect(),
        )
    }

    fn selected(mut c: PersistentVolumeClaim, node: &str) -> PersistentVolumeClaim {
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SELECTED_NODE.into(), node.into());
        c
    }

    fn reason(step: &Step) -> Option<&'static str> {
        match step {
            Step::Pending(Some(n)) | Step::Lost(n) => Some(n.reason),
            _ => None,
        }
    }

    #[test]
    fn claims_without_a_class_get_the_default_one() {
        let w = world(vec![], vec![local_path()], vec![], vec![]);
        assert_eq!(
            decide(&claim("c", json!({})), &w),
            Step::AssignClass("local-path".into())
        );
        let none = claim("c", json!({"storageClassName": ""}));
        assert_eq!(reason(&decide(&none, &w)), Some("FailedBinding"));
    }

    #[test]
    fn wait_for_first_consumer_waits_until_a_node_is_selected() {
        let w = world(
            vec![],
            vec![local_path()],
            vec![node("n1", Some("/r"))],
            vec![],
        );
        let c = claim("c", json!({"storageClassName": "local-path"}));
        assert_eq!(reason(&decide(&c, &w)), Some("WaitForFirstConsumer"));
        let Step::Provision(p) = decide(&selected(c.clone(), "n1"), &w) else {
            panic!("provisions once a node is chosen")
        };
        assert_eq!(p.provisioner, "rancher.io/local-path");
        let pv = p.ours.unwrap().unwrap();
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-uid-c"));
        let Step::Provision(p) = decide(&selected(c, "gone"), &w) else {
            panic!()
        };
        assert_eq!(
            p.ours.unwrap().unwrap_err(),
            "failed to get target node: node \"gone\" not found"
        );
    }

    #[test]
    fn a_pod_waiting_for_a_node_is_named() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0",
            "namespace": "default"}, "spec": {"containers": [],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}}))
        .unwrap();
        let w = world(vec![], vec![local_path()], vec![], vec![pod]);
        let c = claim("c", json!({"storageClassName": "local-path"}));
        assert_eq!(
            decide(&c, &w),
            Step::Pending(Some(Note::normal(
                "WaitForPodScheduled",
                "waiting for pod web-0 to be scheduled"
            )))
        );
    }

    #[test]
    fn immediate_classes_provision_at_once_and_others_wait_for_their_provisioner() {
        let fast = class("fast", "wasmkube.io/local-path", "Immediate", false);
        let ebs = class("ebs", "ebs.csi.aws.com", "Immediate", false);
        let w = world(
            vec![],
            vec![fast, ebs],
            vec![node("n1", Some("/r"))],
            vec![],
        );
        let Step::Provision(p) = decide(&claim("c", json!({"storageClassName": "fast"})), &w)
        else {
            panic!()
        };
        assert!(p.ours.unwrap().is_ok());
        let Step::Provision(p) = decide(&claim("c", json!({"storageClassName": "ebs"})), &w) else {
            panic!()
        };
        assert_eq!((p.provisioner.as_str(), p.ours), ("ebs.csi.aws.com", None));
        let missing = claim("c", json!({"storageClassName": "nope"}));
        assert_eq!(
            decide(&missing, &w),
            Step::Pending(Some(Note::warning(
                "ProvisioningFailed",
                "storageclass.storage.k8s.io \"nope\" not found"
            )))
        );
    }

    #[test]
    fn a_matching_volume_binds_and_a_requested_one_is_checked() {
        let w = world(
            vec![volume("pv1", "5Gi", json!({}))],
            vec![],
            vec![],
            vec![],
        );
        let c = claim("c", json!({"storageClassName": ""}));
        assert_eq!(decide(&c, &w), Step::Bind("pv1".into()));
        let big = claim(
            "c",
            json!({"volumeName": "pv1", "storageClassName": "",
            "resources": {"requests": {"storage": "9Gi"}}}),
        );
        assert_eq!(reason(&decide(&big, &w)), Some("VolumeMismatch"));
        let absent = claim("c", json!({"volumeName": "pv9"}));
        assert_eq!(decide(&absent, &w), Step::Pending(None));
    }

    #[test]
    fn a_bound_claim_is_lost_when_its_volume_goes() {
        let mut c = claim("c", json!({"volumeName": "pv1"}));
        c.metadata.annotations = Some([(BIND_COMPLETED.to_string(), "yes".to_string())].into());
        let gone = world(vec![], vec![], vec![], vec![]);
        assert_eq!(reason(&decide(&c, &gone)), Some("ClaimLost"));
        let mine = volume(
            "pv1",
            "1Gi",
            json!({"claimRef": {"name": "c", "namespace": "default",
            "uid": "uid-c"}}),
        );
        assert_eq!(
            decide(&c, &world(vec![mine], vec![], vec![], vec![])),
            Step::Bind("pv1".into())
        );
        let theirs = volume(
            "pv1",
            "1Gi",
            json!({"claimRef": {"name": "d", "namespace": "default",
            "uid": "uid-d"}}),
        );
        assert_eq!(
            reason(&decide(&c, &world(vec![theirs], vec![], vec![], vec![]))),
            Some("ClaimMisbound")
        );
    }
}
