//! What the binder does with one volume (kube-controller-manager's `syncVolume` and
//! `reclaimVolume`), as a pure function of the volume and a [`World`] snapshot.
//!
//! A volume without a `claimRef` (or pre-bound by name only) is `Available`; one whose claim
//! is `Bound` to it is `Bound`; one whose claim is gone (or is a newer claim of the same
//! name) is `Released` and reclaimed by its policy: `Retain` keeps it `Released`; `Delete`
//! of a volume our provisioner made is the node's work (it removes the directory, then the
//! PV), and another external provisioner's is theirs; any other volume cannot be deleted
//! here and is `Failed`, as in Kubernetes, where no deletable volume plugin matches it.

use k8s_openapi::api::core::v1::PersistentVolume;

use super::BOUND_BY_CONTROLLER;
use super::binding::volume_phase;
use super::events::Note;
use super::provision::{PROVISIONED_BY, provisioned_by_us};
use super::world::World;

/// What to do with one volume.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to write.
    Nothing,
    /// Enter `phase` (with `message`), recording `note`.
    Phase {
        /// The new phase.
        phase: &'static str,
        /// `status.message`.
        message: Option<String>,
        /// The Event to record.
        note: Option<Note>,
    },
    /// The claim it names is bound elsewhere: drop the `claimRef` (just its uid for a
    /// volume pre-bound by its creator) and become `Available` again.
    Unbind,
}

fn phase(volume: &PersistentVolume, phase: &'static str) -> Step {
    if volume_phase(volume) == phase {
        Step::Nothing
    } else {
        Step::Phase {
            phase,
            message: None,
            note: None,
        }
    }
}

/// The one step for `volume` now.
pub fn decide(volume: &PersistentVolume, world: &World) -> Step {
    let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return phase(volume, "Available");
    };
    let uid = claim_ref.uid.as_deref().unwrap_or_default();
    if uid.is_empty() {
        // Pre-bound by name; the claim's sync binds it.
        return phase(volume, "Available");
    }
    let claim = world
        .claim(
            claim_ref.namespace.as_deref().unwrap_or_default(),
            claim_ref.name.as_deref().unwrap_or_default(),
        )
        .filter(|c| c.metadata.uid.as_deref() == Some(uid));
    let Some(claim) = claim else {
        return reclaim(volume);
    };
    let bound_to = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    match bound_to {
        // The claim's sync finishes the binding.
        None | Some("") => Step::Nothing,
        Some(name) if Some(name) == volume.metadata.name.as_deref() => phase(volume, "Bound"),
        Some(_) => {
            let provisioned = annotation(volume, PROVISIONED_BY).is_some();
            if provisioned && reclaim_policy(volume) == "Delete" {
                // Made for this claim, which found another volume: not needed.
                reclaim(volume)
            } else {
                Step::Unbind
            }
        }
    }
}

fn annotation<'a>(volume: &'a PersistentVolume, key: &str) -> Option<&'a str> {
    volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn reclaim_policy(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

/// Whether the controller bound this volume (rather than its creator pre-binding it).
pub fn bound_by_controller(volume: &PersistentVolume) -> bool {
    annotation(volume, BOUND_BY_CONTROLLER).is_some()
}

/// A volume whose claim is gone: `Released`, then whatever its policy says. A `Failed`
/// volume stays as it is, so its message stays readable.
fn reclaim(volume: &PersistentVolume) -> Step {
    if volume_phase(volume) == "Failed" {
        return Step::Nothing;
    }
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    let failed = |reason: &'static str, message: String| Step::Phase {
        phase: "Failed",
        message: Some(message.clone()),
        note: Some(Note::warning(reason, message)),
    };
    match reclaim_policy(volume) {
        "Delete" if provisioned_by_us(volume) => phase(volume, "Released"),
        // Another external provisioner deletes its own volumes.
        "Delete"
            if annotation(volume, PROVISIONED_BY)
                .is_some_and(|p| !p.starts_with("kubernetes.io/")) =>
        {
            phase(volume, "Released")
        }
        "Delete" => {
            let host_path = volume
                .spec
                .as_ref()
                .and_then(|s| s.host_path.as_ref())
                .map(|h| h.path.as_str());
            let message = match host_path {
                // kube-controller-manager's hostPath deleter only removes /tmp/...; this
                // control plane deletes no host directories of its own.
                Some(path) if !is_tmp(path) => {
                    format!("host_path deleter only supports /tmp/.+ but received provided {path}")
                }
                _ => format!(
                    "error getting deleter volume plugin for volume {name:?}: no deletable \
                     volume plugin matched"
                ),
            };
            failed("VolumeFailedDelete", message)
        }
        "Recycle" => failed(
            "VolumeFailedRecycle",
            "No recycler plugin found for the volume!".into(),
        ),
        _ => phase(volume, "Released"),
    }
}

fn is_tmp(path: &str) -> bool {
    path.strip_prefix("/tmp/")
        .is_some_and(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::volume::binding::tests::{claim, volume};
    use serde_json::json;
    use std::sync::Arc;

    fn claimed(name: &str, policy: &str, extra: serde_json::Value) -> PersistentVolume {
        let mut spec = json!({"persistentVolumeReclaimPolicy": policy,
            "claimRef": {"name": "c", "namespace": "default", "uid": "uid-c"}});
        json_patch::merge(&mut spec, &extra);
        let mut v = volume(name, "1Gi", spec);
        v.status.as_mut().unwrap().phase = Some("Bound".into());
        v
    }

    fn with_claim(c: Option<serde_json::Value>) -> World {
        World::new(
            c.into_iter().map(|s| Arc::new(claim("c", s))).collect(),
            vec![],
            vec![],
            vec![],
            vec![],
        )
    }

    fn entered(step: Step) -> Option<&'static str> {
        match step {
            Step::Phase { phase, .. } => Some(phase),
            _ => None,
        }
    }

    #[test]
    fn unclaimed_volumes_are_available_and_claimed_ones_bound() {
        let mut fresh = volume("v", "1Gi", json!({}));
        fresh.status = None;
        assert_eq!(
            entered(decide(&fresh, &World::default())),
            Some("Available")
        );
        let mut v = claimed("v", "Retain", json!({}));
        v.status.as_mut().unwrap().phase = Some("Pending".into());
        let w = with_claim(Some(json!({"volumeName": "v"})));
        assert_eq!(entered(decide(&v, &w)), Some("Bound"));
        let waiting = with_claim(Some(json!({})));
        assert_eq!(
            decide(&v, &waiting),
            Step::Nothing,
            "the claim's sync binds"
        );
        let elsewhere = with_claim(Some(json!({"volumeName": "other"})));
        assert_eq!(decide(&v, &elsewhere), Step::Unbind);
    }

    #[test]
    fn a_volume_whose_claim_is_gone_is_reclaimed_by_policy() {
        let gone = World::default();
        assert_eq!(
            entered(decide(&claimed("v", "Retain", json!({})), &gone)),
            Some("Released")
        );
        let ours = claimed("v", "Delete", json!({"hostPath": {"path": "/var/x"}}));
        let mut ours = ours;
        ours.metadata.annotations = Some(
            [(
                PROVISIONED_BY.to_string(),
                "rancher.io/local-path".to_string(),
            )]
            .into(),
        );
        assert_eq!(
            entered(decide(&ours, &gone)),
            Some("Released"),
            "the node deletes it"
        );
        let Step::Phase {
            phase,
            message,
            note,
        } = decide(
            &claimed("v", "Delete", json!({"hostPath": {"path": "/mnt/data"}})),
            &gone,
        )
        else {
            panic!()
        };
        assert_eq!(phase, "Failed");
        assert_eq!(
            message.as_deref(),
            Some("host_path deleter only supports /tmp/.+ but received provided /mnt/data")
        );
        assert_eq!(note.unwrap().reason, "VolumeFailedDelete");
        let mut local = claimed("v", "Delete", json!({"local": {"path": "/d"}}));
        local.spec.as_mut().unwrap().host_path = None;
        let Step::Phase { message, .. } = decide(&local, &gone) else {
            panic!()
        };
        assert_eq!(
            message.as_deref(),
            Some(
                "error getting deleter volume plugin for volume \"v\": no deletable volume plugin matched"
            )
        );
        let newer = World::new(
            vec![Arc::new({
                let mut c = claim("c", json!({}));
                c.metadata.uid = Some("newer".into());
                c
            })],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        assert_eq!(
            entered(decide(&claimed("v", "Retain", json!({})), &newer)),
            Some("Released")
        );
    }

    #[test]
    fn failed_volumes_stay_failed() {
        let mut v = claimed("v", "Delete", json!({}));
        v.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(decide(&v, &World::default()), Step::Nothing);
    }
}
