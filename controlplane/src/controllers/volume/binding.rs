//! Which volume a claim may bind to, as kube-controller-manager's persistentvolume binder
//! decides it (`findMatchingVolume`, `checkVolumeSatisfyClaim`): pure functions over typed
//! objects, shared with the scheduler's VolumeBinding filter.
//!
//! A claim matches an Available volume of the same class whose access modes contain the
//! claim's, whose capacity covers the request, whose labels satisfy the claim's `selector`
//! and whose volume mode is the claim's; of those, the one with the fewest access modes and
//! then the smallest capacity wins (Kubernetes indexes volumes by access-mode set and tries
//! the smallest set first). A volume pre-bound to the claim through its `claimRef` wins
//! over everything.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

use super::{BETA_STORAGE_CLASS, DEFAULT_CLASS, DEFAULT_CLASS_BETA};
use crate::controllers::selector;
use crate::scheduler::cache::NodeInfo;
use crate::scheduler::filters::matches_node_selector_terms;
use crate::scheduler::quantity;

/// The claim's class: the beta annotation, else `spec.storageClassName`, else `""` (none).
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS))
        .map(String::as_str)
        .or_else(|| claim.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// Whether the claim names no class at all (neither the field nor the beta annotation), so
/// the default class is assigned to it; `""` is a choice of no class and stays.
pub fn class_unset(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .is_none_or(|s| s.storage_class_name.is_none())
        && claim
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(BETA_STORAGE_CLASS))
}

/// The volume's class, read the same way.
pub fn volume_class(volume: &PersistentVolume) -> &str {
    volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS))
        .map(String::as_str)
        .or_else(|| volume.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// The default class: the newest of those annotated `is-default-class: "true"` (ties by
/// name), as the DefaultStorageClass admission plugin picks it since Kubernetes 1.28.
pub fn default_class<'a>(
    classes: impl IntoIterator<Item = &'a StorageClass>,
) -> Option<&'a StorageClass> {
    classes
        .into_iter()
        .filter(|c| {
            c.metadata.annotations.as_ref().is_some_and(|a| {
                [DEFAULT_CLASS, DEFAULT_CLASS_BETA]
                    .iter()
                    .any(|k| a.get(*k).map(String::as_str) == Some("true"))
            })
        })
        .max_by(|a, b| {
            let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        })
}

/// The claim's storage request in bytes (0 when missing or unparsable; validation rejects
/// those).
pub fn requested(claim: &PersistentVolumeClaim) -> f64 {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity::parse(&q.0))
        .unwrap_or(0.0)
}

/// The volume's capacity in bytes.
pub fn capacity(volume: &PersistentVolume) -> f64 {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| quantity::parse(&q.0))
        .unwrap_or(0.0)
}

/// The volume's status phase (`Pending` when it has none yet).
pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The claim's status phase (`Pending` when it has none yet).
pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn claim_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

fn volume_modes(volume: &PersistentVolume) -> &[String] {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
}

/// Whether the volume offers every access mode the claim asks for (`CheckAccessModes`).
pub fn access_modes_fit(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume_modes(volume);
    claim_modes(claim).iter().all(|m| offered.contains(m))
}

/// Whether claim and volume differ in `volumeMode` (both default to `Filesystem`).
pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let claim_mode = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    let volume_mode = volume.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    claim_mode.unwrap_or("Filesystem") != volume_mode.unwrap_or("Filesystem")
}

/// Whether the volume's `claimRef` names this claim (with its uid, or without a uid: a
/// volume pre-bound by name).
pub fn is_bound_to(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name == claim.metadata.name
        && r.namespace == claim.metadata.namespace
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == claim.metadata.uid.as_deref())
}

/// Whether the volume's required node affinity admits `node` (no affinity admits all).
pub fn node_affinity_admits(volume: &PersistentVolume, node: &NodeInfo) -> bool {
    match volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    {
        None => true,
        Some(selector) => matches_node_selector_terms(selector, node),
    }
}

/// Why a volume the claim asked for by `volumeName` cannot be bound to it, in the binder's
/// words (`checkVolumeSatisfyClaim`).
pub fn check_satisfies(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        let name = volume.metadata.name.as_deref().unwrap_or_default();
        return Err(format!("the volume is marked for deletion {name:?}"));
    }
    if capacity(volume) < requested(claim) {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_fit(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

/// The best volume for `claim` among `volumes` (`findMatchingVolume`). With `node` (the
/// scheduler's or the claim's selected node) only volumes whose node affinity admits it
/// count; without one, a claim whose binding waits for its first consumer only takes a
/// volume pre-bound to it.
pub fn best_match<'v>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'v PersistentVolume>,
    node: Option<&NodeInfo>,
    delay_binding: bool,
) -> Option<&'v PersistentVolume> {
    let request = requested(claim);
    let class = claim_class(claim);
    let selector = claim.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<&PersistentVolume> = None;
    for volume in volumes {
        if volume_mode_mismatch(claim, volume) || volume.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let admits = node.is_none_or(|n| node_affinity_admits(volume, n));
        if is_bound_to(volume, claim) {
            return admits.then_some(volume);
        }
        if (node.is_none() && delay_binding)
            || volume_phase(volume) != "Available"
            || volume.spec.as_ref().is_some_and(|s| s.claim_ref.is_some())
            || selector.is_some_and(|s| {
                !selector::matches(
                    s,
                    volume
                        .metadata
                        .labels
                        .as_ref()
                        .unwrap_or(&Default::default()),
                )
            })
            || volume_class(volume) != class
            || !admits
            || !access_modes_fit(claim, volume)
            || capacity(volume) < request
        {
            continue;
        }
        if best.is_none_or(|b| smaller(volume, b) == Ordering::Less) {
            best = Some(volume);
        }
    }
    best
}

/// Fewer access modes first, then less capacity, then name.
fn smaller(a: &PersistentVolume, b: &PersistentVolume) -> Ordering {
    volume_modes(a)
        .len()
        .cmp(&volume_modes(b).len())
        .then_with(|| capacity(a).total_cmp(&capacity(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A claim in `default` (uid `uid-NAME`); `spec` is merged over ReadWriteOnce, 1Gi.
    pub(crate) fn claim(name: &str, spec: Value) -> PersistentVolumeClaim {
        let mut base = json!({"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}});
        json_patch::merge(&mut base, &spec);
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
            "uid": format!("uid-{name}")}, "spec": base}))
        .unwrap()
    }

    /// An Available volume; `spec` is merged over ReadWriteOnce, a hostPath.
    pub(crate) fn volume(name: &str, size: &str, spec: Value) -> PersistentVolume {
        let mut base = json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size},
            "hostPath": {"path": format!("/data/{name}")}});
        json_patch::merge(&mut base, &spec);
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": base,
            "status": {"phase": "Available"}}))
        .unwrap()
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo::new(
            &serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name}}}))
            .unwrap(),
        )
    }

    fn pinned(name: &str, size: &str, to: &str) -> PersistentVolume {
        volume(
            name,
            size,
            json!({"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [to]}]}]}}}),
        )
    }

    fn name(v: Option<&PersistentVolume>) -> Option<&str> {
        v.and_then(|v| v.metadata.name.as_deref())
    }

    #[test]
    fn the_smallest_volume_that_fits_wins() {
        let vs = [
            volume("big", "10Gi", json!({})),
            volume("small", "500Mi", json!({})),
            volume("fit", "2Gi", json!({})),
        ];
        assert_eq!(
            name(best_match(&claim("c", json!({})), &vs, None, false)),
            Some("fit")
        );
        let more = claim("c", json!({"resources": {"requests": {"storage": "20Gi"}}}));
        assert_eq!(best_match(&more, &vs, None, false), None);
    }

    #[test]
    fn fewer_access_modes_win_over_less_capacity() {
        let vs = [
            volume(
                "many",
                "1Gi",
                json!({"accessModes": ["ReadWriteOnce", "ReadWriteMany"]}),
            ),
            volume("once", "5Gi", json!({})),
        ];
        assert_eq!(
            name(best_match(&claim("c", json!({})), &vs, None, false)),
            Some("once")
        );
        let rwx = claim("c", json!({"accessModes": ["ReadWriteMany"]}));
        assert_eq!(name(best_match(&rwx, &vs, None, false)), Some("many"));
    }

    #[test]
    fn class_selector_mode_and_phase_must_match() {
        let mut released = volume("released", "1Gi", json!({}));
        released.status.as_mut().unwrap().phase = Some("Released".into());
        let labelled: PersistentVolume = {
            let mut v = volume("labelled", "1Gi", json!({"storageClassName": "slow"}));
            v.metadata.labels = Some([("disk".to_string(), "ssd".to_string())].into());
            v
        };
        let vs = [
            released,
            volume("block", "1Gi", json!({"volumeMode": "Block"})),
            labelled,
            volume("classless", "1Gi", json!({})),
        ];
        assert_eq!(
            name(best_match(&claim("c", json!({})), &vs, None, false)),
            Some("classless")
        );
        let slow = claim(
            "c",
            json!({"storageClassName": "slow",
            "selector": {"matchLabels": {"disk": "ssd"}}}),
        );
        assert_eq!(name(best_match(&slow, &vs, None, false)), Some("labelled"));
        let hdd = claim(
            "c",
            json!({"storageClassName": "slow",
            "selector": {"matchLabels": {"disk": "hdd"}}}),
        );
        assert_eq!(best_match(&hdd, &vs, None, false), None);
    }

    #[test]
    fn a_pre_bound_volume_wins_and_delayed_claims_take_nothing_else() {
        let c = claim("c", json!({"storageClassName": "local"}));
        let mut mine = volume(
            "mine",
            "1Mi",
            json!({"storageClassName": "other",
            "claimRef": {"name": "c", "namespace": "default"}}),
        );
        mine.status.as_mut().unwrap().phase = Some("Pending".into());
        let free = volume("free", "5Gi", json!({"storageClassName": "local"}));
        assert_eq!(
            name(best_match(&c, [&free, &mine], None, true)),
            Some("mine")
        );
        assert_eq!(
            best_match(&c, [&free], None, true),
            None,
            "waits for a node"
        );
        assert_eq!(
            name(best_match(&c, [&free], Some(&node("n1")), true)),
            Some("free")
        );
        let mut theirs = mine.clone();
        theirs
            .spec
            .as_mut()
            .unwrap()
            .claim_ref
            .as_mut()
            .unwrap()
            .uid = Some("other".into());
        assert!(!is_bound_to(&theirs, &c));
    }

    #[test]
    fn node_affinity_limits_volumes_to_their_node() {
        let vs = [pinned("on-a", "1Gi", "a"), pinned("on-b", "1Gi", "b")];
        let c = claim("c", json!({}));
        assert_eq!(
            name(best_match(&c, &vs, Some(&node("b")), true)),
            Some("on-b")
        );
        assert_eq!(best_match(&c, &vs, Some(&node("z")), true), None);
        assert!(node_affinity_admits(
            &volume("free", "1Gi", json!({})),
            &node("z")
        ));
    }

    #[test]
    fn a_requested_volume_is_checked_with_the_binders_words() {
        let c = claim("c", json!({"storageClassName": "fast"}));
        let check = |v: PersistentVolume| check_satisfies(&v, &c).err();
        assert_eq!(
            check(volume("v", "1Mi", json!({"storageClassName": "fast"}))).as_deref(),
            Some("requested PV is too small")
        );
        assert_eq!(
            check(volume("v", "1Gi", json!({}))).as_deref(),
            Some("storageClassName does not match")
        );
        assert_eq!(
            check(volume(
                "v",
                "1Gi",
                json!({"storageClassName": "fast",
            "accessModes": ["ReadOnlyMany"]})
            ))
            .as_deref(),
            Some("incompatible accessMode")
        );
        assert_eq!(
            check(volume("v", "1Gi", json!({"storageClassName": "fast"}))),
            None
        );
    }

    #[test]
    fn the_newest_default_class_is_the_default() {
        let class = |name: &str, default: bool, created: &str| -> StorageClass {
            serde_json::from_value(json!({"metadata": {"name": name,
                "creationTimestamp": created,
                "annotations": {DEFAULT_CLASS: default.to_string()}},
                "provisioner": "p"}))
            .unwrap()
        };
        let cs = [
            class("old", true, "2024-01-01T00:00:00Z"),
            class("new", true, "2025-01-01T00:00:00Z"),
            class("newest", false, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(
            default_class(&cs).and_then(|c| c.metadata.name.as_deref()),
            Some("new")
        );
        assert!(default_class(&cs[2..]).is_none());
        let unset = claim("c", json!({}));
        assert!(class_unset(&unset) && claim_class(&unset).is_empty());
        assert!(!class_unset(&claim("c", json!({"storageClassName": ""}))));
    }
}
