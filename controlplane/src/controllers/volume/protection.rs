//! Storage object in-use protection (kube-controller-manager's pvc-protection and
//! pv-protection controllers): a claim being deleted keeps its
//! `kubernetes.io/pvc-protection` finalizer while a pod on a node still uses it, and a
//! volume being deleted keeps `kubernetes.io/pv-protection` while it is `Bound`. The
//! finalizers are added at create by the registry
//! ([`crate::registry::storage`]).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::binding::volume_phase;
use crate::controllers::pods::is_terminal;
pub use crate::registry::storage::{PV_PROTECTION, PVC_PROTECTION};

fn releasing(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_some() && meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// Whether `pod` uses the claim `name` of its namespace: it is on a node (a pod not yet
/// scheduled never starts with a claim being deleted), has not finished, and mounts the
/// claim (directly or as its generic ephemeral volume).
pub fn pod_uses(pod: &Pod, name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.node_name.as_deref().is_none_or(str::is_empty) || is_terminal(pod) {
        return false;
    }
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    spec.volumes.iter().flatten().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name == name)
            || (v.ephemeral.is_some() && format!("{pod_name}-{}", v.name) == name)
    })
}

/// Whether the claim is being deleted, holds its finalizer and no pod uses it any more.
pub fn claim_releasable<'p>(
    claim: &PersistentVolumeClaim,
    pods: impl IntoIterator<Item = &'p Pod>,
) -> bool {
    if !releasing(&claim.metadata, PVC_PROTECTION) {
        return false;
    }
    let ns = claim.metadata.namespace.as_deref();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    !pods
        .into_iter()
        .any(|p| p.metadata.namespace.as_deref() == ns && pod_uses(p, name))
}

/// Whether the volume is being deleted, holds its finalizer and is not `Bound`.
pub fn volume_releasable(volume: &PersistentVolume) -> bool {
    releasing(&volume.metadata, PV_PROTECTION) && volume_phase(volume) != "Bound"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::volume::binding::tests::{claim, volume};
    use serde_json::json;

    fn pod(node: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]},
            "status": {"phase": phase}}))
        .unwrap()
    }

    fn deleting<M>(mut o: M, meta: impl Fn(&mut M) -> &mut ObjectMeta, f: &str) -> M {
        let m = meta(&mut o);
        m.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        m.finalizers = Some(vec![f.into()]);
        o
    }

    #[test]
    fn a_claim_is_kept_while_a_running_pod_uses_it() {
        let c = deleting(claim("c", json!({})), |c| &mut c.metadata, PVC_PROTECTION);
        assert!(!claim_releasable(&c, [&pod(Some("n1"), "Running")]));
        assert!(claim_releasable(&c, [&pod(Some("n1"), "Succeeded")]));
        assert!(
            claim_releasable(&c, [&pod(None, "Pending")]),
            "never started"
        );
        assert!(claim_releasable(&c, []));
        assert!(
            !claim_releasable(&claim("c", json!({})), []),
            "not being deleted"
        );
    }

    #[test]
    fn a_volume_is_kept_while_bound() {
        let mut v = deleting(
            volume("v", "1Gi", json!({})),
            |v| &mut v.metadata,
            PV_PROTECTION,
        );
        assert!(volume_releasable(&v));
        v.status.as_mut().unwrap().phase = Some("Bound".into());
        assert!(!volume_releasable(&v));
    }
}
