//! A StatefulSet's PersistentVolumeClaims: one claim per `volumeClaimTemplate` and ordinal,
//! `<template>-<set>-<ordinal>`, made before the ordinal's pod and kept when the pod goes
//! (scale-down, deletion, rescheduling), so the next pod of that ordinal mounts the same
//! data (kube-controller-manager's `getPersistentVolumeClaims`, `createPersistentVolumeClaims`).
//!
//! `persistentVolumeClaimRetentionPolicy` decides who owns them: with `whenDeleted: Delete`
//! the StatefulSet does (the garbage collector deletes them with it), with
//! `whenScaled: Delete` a condemned ordinal's claim is owned by its pod (deleted after it);
//! `Retain` (the default for both) leaves them unowned (`updateClaimOwnerRefForSetAndPod`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

/// The claim name of `template` for `ordinal` of `set`.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The claims `set`'s ordinal needs, from its templates: the template with its name, the
/// set's namespace and the set's selector labels over the template's labels.
pub fn for_ordinal(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let selector = set.spec.selector.match_labels.clone().unwrap_or_default();
    set.spec
        .volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&t.name_any(), &set.name_any(), ordinal)),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// Which retention says `Delete`: `(whenDeleted, whenScaled)`.
fn deletes(set: &StatefulSet) -> (bool, bool) {
    let policy = set.spec.persistent_volume_claim_retention_policy.as_ref();
    let delete = |p: Option<&String>| p.is_some_and(|p| p == "Delete");
    (
        delete(policy.and_then(|p| p.when_deleted.as_ref())),
        delete(policy.and_then(|p| p.when_scaled.as_ref())),
    )
}

fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        ..OwnerReference::default()
    }
}

/// The ownerReferences `claim` (of `pod`'s ordinal, which is `condemned` when at or above
/// `replicas`) should have under the set's retention policy, when they differ from what it
/// has: references to the set and the pod are added or dropped, others kept.
pub fn owners(
    set: &StatefulSet,
    pod: &Pod,
    condemned: bool,
    claim: &PersistentVolumeClaim,
) -> Option<Vec<OwnerReference>> {
    let (when_deleted, when_scaled) = deletes(set);
    let by_set = if condemned && when_scaled {
        false
    } else {
        when_deleted
    };
    let by_pod = condemned && when_scaled;
    let set_uid = set.metadata.uid.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let current = claim.metadata.owner_references.clone().unwrap_or_default();
    let mut wanted: Vec<OwnerReference> = current
        .iter()
        .filter(|r| r.uid != set_uid && r.uid != pod_uid)
        .cloned()
        .collect();
    if by_set {
        wanted.push(reference("apps/v1", "StatefulSet", &set.metadata));
    }
    if by_pod {
        wanted.push(reference("v1", "Pod", &pod.metadata));
    }
    let key = |refs: &[OwnerReference]| -> BTreeMap<String, String> {
        refs.iter()
            .map(|r| (r.uid.clone(), r.kind.clone()))
            .collect()
    };
    (key(&wanted) != key(&current)).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(retention: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default", "uid": "set-uid"},
            "spec": {"selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}},
                "persistentVolumeClaimRetentionPolicy": retention,
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "x"}},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}))
        .unwrap()
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "db-2", "uid": "pod-uid"}})).unwrap()
    }

    #[test]
    fn each_ordinal_gets_a_claim_per_template_labelled_like_the_set() {
        let claims = for_ordinal(&set(json!({})), 2);
        assert_eq!(claims.len(), 1);
        let c = &claims[0];
        assert_eq!(c.metadata.name.as_deref(), Some("data-db-2"));
        assert_eq!(c.metadata.namespace.as_deref(), Some("default"));
        let labels = c.metadata.labels.clone().unwrap();
        assert_eq!(
            (labels["app"].as_str(), labels["tier"].as_str()),
            ("db", "x")
        );
        assert!(
            c.metadata.owner_references.is_none(),
            "Retain: nobody owns it"
        );
    }

    #[test]
    fn retention_policy_decides_the_claims_owners() {
        let claim = for_ordinal(&set(json!({})), 2).remove(0);
        let retain = set(json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        assert_eq!(owners(&retain, &pod(), true, &claim), None);
        let with_set = set(json!({"whenDeleted": "Delete", "whenScaled": "Retain"}));
        let refs = owners(&with_set, &pod(), false, &claim).unwrap();
        assert_eq!((refs.len(), refs[0].kind.as_str()), (1, "StatefulSet"));
        let scaled = set(json!({"whenDeleted": "Delete", "whenScaled": "Delete"}));
        let refs = owners(&scaled, &pod(), true, &claim).unwrap();
        assert_eq!((refs.len(), refs[0].kind.as_str()), (1, "Pod"));
        let mut owned = claim.clone();
        owned.metadata.owner_references = Some(refs);
        assert_eq!(owners(&scaled, &pod(), true, &owned), None, "already so");
        let back = owners(&retain, &pod(), false, &owned).unwrap();
        assert!(back.is_empty(), "Retain drops them again");
    }
}
