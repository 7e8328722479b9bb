//! A StatefulSet's pods: the pod for one ordinal (its stable name, hostname and labels), the
//! ordinal a pod holds, and how healthy it is for [`plan`](super::plan).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume};
use kube::ResourceExt;

use super::claims;
use super::plan::Health;
use crate::controllers::history::POD_REVISION_LABEL;
use crate::controllers::pods;

/// The label naming a StatefulSet pod (what a per-pod Service selects).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The ordinal of a pod of `set` from its name (`SET-<ordinal>`), if it has one.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The pod of `set` at `ordinal`, from `template` at the revision named `revision`; each
/// `volumeClaimTemplate` becomes a volume of its name mounting the ordinal's claim.
pub fn for_ordinal(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Pod {
    let name = format!("{}-{ordinal}", set.name_any());
    let owner = pods::owner_reference("apps/v1", "StatefulSet", &set.metadata);
    let ns = set.namespace().unwrap_or_default();
    let mut pod = pods::from_template(template, &ns, &set.name_any(), owner);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(POD_REVISION_LABEL.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    // The claims come first and replace template volumes of the same name (`updateStorage`).
    let templates = set
        .spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or_default();
    if !templates.is_empty() {
        let mut volumes: Vec<Volume> = templates
            .iter()
            .map(|t| Volume {
                name: t.name_any(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claims::claim_name(&t.name_any(), &set.name_any(), ordinal),
                    read_only: Some(false),
                }),
                ..Volume::default()
            })
            .collect();
        let own = spec.volumes.take().unwrap_or_default();
        let kept: Vec<Volume> = own
            .into_iter()
            .filter(|v| !volumes.iter().any(|c| c.name == v.name))
            .collect();
        volumes.extend(kept);
        spec.volumes = Some(volumes);
    }
    pod
}

/// Running and Ready.
pub fn running_and_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") && pods::is_ready(pod)
}

/// How healthy a pod is, and how long until a ready one becomes available.
pub fn health(
    pod: &Pod,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> (Health, Option<std::time::Duration>) {
    if pod.metadata.deletion_timestamp.is_some() {
        return (Health::Terminating, None);
    }
    if pods::is_terminal(pod) {
        return (Health::Finished, None);
    }
    if !running_and_ready(pod) {
        return (Health::Unhealthy, None);
    }
    match pods::is_available(pod, min_ready_seconds, now) {
        Ok(true) => (Health::Healthy, None),
        Ok(false) => (Health::Unhealthy, None),
        Err(left) => (
            Health::Unhealthy,
            Some(std::time::Duration::try_from(left).unwrap_or_default()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ordinals_come_from_the_name_suffix() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
    }

    #[test]
    fn a_pod_has_a_stable_identity_and_its_ordinals_claims() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}],
                        "volumes": [{"name": "data", "emptyDir": {}},
                            {"name": "cache", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}))
        .unwrap();
        let pod = for_ordinal(&set, &set.spec.template, "web-abc", 2);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        assert_eq!(pod.metadata.generate_name, None);
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[POD_REVISION_LABEL], "web-abc");
        assert_eq!(labels["app"], "web");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let volumes = spec.volumes.unwrap();
        assert_eq!(volumes[0].name, "data");
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data-web-2"
        );
        assert_eq!(
            volumes.len(),
            2,
            "the claim replaces the template's own \"data\""
        );
        assert_eq!(volumes[1].name, "cache");
        assert_eq!(
            pod.metadata.owner_references.unwrap()[0].kind,
            "StatefulSet"
        );
    }
}
