//! The binder's API writes. Spec and metadata changes are `PUT`s carrying the cached
//! `resourceVersion`, so a decision made on a stale cache fails with a conflict and is made
//! again on the next pass instead of overwriting someone's newer change; status changes are
//! merge patches of the fields the binder owns.

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::binding::{claim_phase, is_bound_to, volume_phase};
use super::volumes::bound_by_controller;
use super::{BETA_STORAGE_PROVISIONER, BIND_COMPLETED, BOUND_BY_CONTROLLER, STORAGE_PROVISIONER};

fn now() -> String {
    crate::registry::meta::now()
}

fn claims(client: &Client, claim: &PersistentVolumeClaim) -> Api<PersistentVolumeClaim> {
    Api::namespaced(client.clone(), &claim.namespace().unwrap_or_default())
}

/// A `claimRef` to `claim`.
fn reference(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.namespace(),
        name: claim.metadata.name.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// Binds `volume` to `claim` and then `claim` to `volume` (`bindVolumeToClaim`,
/// `bindClaimToVolume`), writing only what differs. `pv.kubernetes.io/bound-by-controller`
/// marks each side the controller chose.
pub async fn bind(
    client: &Client,
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Result<(), kube::Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let name = volume.name_any();
    let mut volume = volume.clone();
    let claim_uid = claim.metadata.uid.as_deref();
    let ref_uid = volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| r.uid.as_deref());
    if ref_uid != claim_uid || ref_uid.is_none() {
        let chosen = !is_bound_to(&volume, claim);
        volume.spec.get_or_insert_with(Default::default).claim_ref = Some(reference(claim));
        if chosen {
            volume
                .annotations_mut()
                .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        volume = volumes
            .replace(&name, &PostParams::default(), &volume)
            .await?;
    }
    if volume_phase(&volume) != "Bound" {
        volume = set_volume_phase(client, &volume, "Bound", None).await?;
    }

    let mut updated = claim.clone();
    let spec = updated.spec.get_or_insert_with(Default::default);
    let mut changed = false;
    if spec.volume_name.as_deref() != Some(name.as_str()) {
        spec.volume_name = Some(name.clone());
        updated
            .annotations_mut()
            .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        changed = true;
    }
    if !updated.annotations().contains_key(BIND_COMPLETED) {
        updated
            .annotations_mut()
            .insert(BIND_COMPLETED.into(), "yes".into());
        changed = true;
    }
    let api = claims(client, claim);
    if changed {
        updated = api
            .replace(&claim.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    let vspec = volume.spec.clone().unwrap_or_default();
    let status = updated.status.clone().unwrap_or_default();
    if claim_phase(&updated) != "Bound"
        || status.capacity != vspec.capacity
        || status.access_modes != vspec.access_modes
    {
        let patch = json!({"status": {"phase": "Bound", "capacity": vspec.capacity,
            "accessModes": vspec.access_modes}});
        api.patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    }
    Ok(())
}

/// Sets the volume's phase (and `status.message`, cleared when `None`).
pub async fn set_volume_phase(
    client: &Client,
    volume: &PersistentVolume,
    phase: &str,
    message: Option<&str>,
) -> Result<PersistentVolume, kube::Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let patch = json!({"status": {"phase": phase, "message": message,
        "lastPhaseTransitionTime": now()}});
    volumes
        .patch_status(
            &volume.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
}

/// Sets the claim's phase, unless it is in it.
pub async fn set_claim_phase(
    client: &Client,
    claim: &PersistentVolumeClaim,
    phase: &str,
) -> Result<(), kube::Error> {
    if claim_phase(claim) == phase {
        return Ok(());
    }
    let patch = json!({"status": {"phase": phase}});
    claims(client, claim)
        .patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map(drop)
}

/// Releases a volume from a claim bound elsewhere (`unbindVolume`): a volume the controller
/// bound loses its `claimRef`, one pre-bound by its creator only the uid; then `Available`.
pub async fn unbind(client: &Client, volume: &PersistentVolume) -> Result<(), kube::Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let mut updated = volume.clone();
    let by_controller = bound_by_controller(volume);
    if let Some(spec) = updated.spec.as_mut() {
        if by_controller {
            spec.claim_ref = None;
        } else if let Some(r) = spec.claim_ref.as_mut() {
            r.uid = None;
            r.resource_version = None;
        }
    }
    updated.annotations_mut().remove(BOUND_BY_CONTROLLER);
    let updated = volumes
        .replace(&volume.name_any(), &PostParams::default(), &updated)
        .await?;
    set_volume_phase(client, &updated, "Available", None)
        .await
        .map(drop)
}

/// Gives a claim without a class the default class.
pub async fn assign_class(
    client: &Client,
    claim: &PersistentVolumeClaim,
    class: &str,
) -> Result<(), kube::Error> {
    let mut updated = claim.clone();
    updated
        .spec
        .get_or_insert_with(Default::default)
        .storage_class_name = Some(class.into());
    claims(client, claim)
        .replace(&claim.name_any(), &PostParams::default(), &updated)
        .await
        .map(drop)
}

/// Records the provisioner on the claim, as the binder does before external provisioning.
pub async fn set_provisioner(
    client: &Client,
    claim: &PersistentVolumeClaim,
    provisioner: &str,
) -> Result<(), kube::Error> {
    let annotations = claim.annotations();
    let has = |k: &str| annotations.get(k).map(String::as_str) == Some(provisioner);
    if has(STORAGE_PROVISIONER) && has(BETA_STORAGE_PROVISIONER) {
        return Ok(());
    }
    let patch = json!({"metadata": {"annotations": {
        STORAGE_PROVISIONER: provisioner, BETA_STORAGE_PROVISIONER: provisioner}}});
    claims(client, claim)
        .patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map(drop)
}

/// Creates a provisioned volume; `false` when it exists already (a previous pass made it).
pub async fn create_volume(
    client: &Client,
    volume: &PersistentVolume,
) -> Result<bool, kube::Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    match volumes.create(&PostParams::default(), volume).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes `finalizer` from `object` (a `PUT` with its resourceVersion: the last finalizer
/// gone, the API deletes the object).
pub async fn remove_finalizer<K>(
    api: &Api<K>,
    object: &K,
    finalizer: &str,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let mut updated = object.clone();
    if let Some(list) = updated.meta_mut().finalizers.as_mut() {
        list.retain(|f| f != finalizer);
    }
    match api
        .replace(&object.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
