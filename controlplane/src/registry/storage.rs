//! Strategies of the storage kinds, with kube-apiserver's validation messages:
//! PersistentVolumeClaims and PersistentVolumes (`Pending` at birth, each with its
//! protection finalizer as the `StorageObjectInUseProtection` admission plugin adds it) and
//! StorageClasses. The binding itself is the volume controller's
//! (`crate::controllers::volume`).

use serde_json::{Value, json};

use super::meta::{child, default_field};
use super::validation::{Cause, Reason};
use super::{Causes, CreateContext, Strategy};

/// The finalizer that keeps a claim while a pod uses it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while a claim is bound to it.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// The access modes Kubernetes knows, as its messages list them.
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];

/// Every `PersistentVolumeSource` field: a volume has exactly one.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// `field: Required value: detail` (apimachinery's `field.Required` with a detail).
fn required_because(causes: &mut Causes, field: &str, detail: &str) {
    causes.0.push(Cause {
        reason: Reason::Required,
        field: field.into(),
        message: format!("Required value: {detail}"),
    });
}

/// Adds `finalizer` to `obj`'s finalizers unless it is there.
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(o) = obj.as_object_mut() else { return };
    let meta = child(o, "metadata");
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

fn validate_access_modes(spec: &Value, field: &str, empty: &str, causes: &mut Causes) {
    let modes = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if modes.is_empty() {
        required_because(causes, field, empty);
        return;
    }
    for mode in &modes {
        if !mode.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            causes.not_supported(field, mode, ACCESS_MODES);
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        causes.forbidden(
            field,
            "may not use ReadWriteOncePod with other access modes",
        );
    }
}

/// A storage quantity must parse and be positive.
fn validate_size(value: Option<&Value>, field: &str, causes: &mut Causes) {
    let Some(value) = value else { return };
    match value.as_str().and_then(crate::scheduler::quantity::parse) {
        Some(n) if n > 0.0 => {}
        Some(_) => causes.invalid(field, value, "must be greater than zero"),
        None => causes.invalid(
            field,
            value,
            "quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
    }
}

/// `storageClassName` and `volumeMode`, shared by claims and volumes.
fn validate_class_and_mode(spec: &Value, causes: &mut Causes) {
    if let Some(class) = spec.get("storageClassName").and_then(Value::as_str)
        && !class.is_empty()
    {
        causes.dns_subdomain("spec.storageClassName", class);
    }
    if let Some(mode) = spec.get("volumeMode")
        && !mode.as_str().is_some_and(|m| VOLUME_MODES.contains(&m))
    {
        causes.not_supported("spec.volumeMode", mode, VOLUME_MODES);
    }
}

/// PersistentVolumeClaims: `Pending` at birth with the `pvc-protection` finalizer; the spec
/// is frozen after creation except the requests, `volumeName` once (the binder's) and
/// `storageClassName` from unset to a class (retroactive default class assignment).
pub struct ClaimStrategy;

impl Strategy for ClaimStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            default_field(spec, "volumeMode", json!("Filesystem"));
        }
    }
    fn prepare_create(&self, obj: &mut Value, _ctx: &CreateContext) {
        obj["status"] = json!({"phase": "Pending"});
        add_finalizer(obj, PVC_PROTECTION);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        validate_access_modes(
            spec,
            "spec.accessModes",
            "at least 1 access mode is required",
            causes,
        );
        match spec.pointer("/resources/requests/storage") {
            None => causes.required("spec.resources[storage]"),
            storage => validate_size(storage, "spec.resources[storage]", causes),
        }
        validate_class_and_mode(spec, causes);
        if let Some(selector) = spec.get("selector") {
            causes.labels("spec.selector.matchLabels", selector.get("matchLabels"));
        }
        if let Some(old) = old
            && frozen_claim_spec(obj, old) != frozen_claim_spec(old, old)
        {
            causes.forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and \
                 volumeAttributesClassName for bound claims",
            );
        }
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

/// The part of a claim's spec an update must leave alone, given the stored claim `old`.
fn frozen_claim_spec(obj: &Value, old: &Value) -> Value {
    let mut s = obj.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(s) = s.as_object_mut() {
        s.remove("resources");
        s.remove("volumeAttributesClassName");
        // The binder fills volumeName once.
        if old.pointer("/spec/volumeName").is_none_or(|v| v == "") {
            s.remove("volumeName");
        }
        // An unset class may become one (the default class, assigned retroactively).
        if old
            .pointer("/spec/storageClassName")
            .is_none_or(Value::is_null)
            && s.get("storageClassName")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty())
        {
            s.remove("storageClassName");
        }
    }
    s
}

/// PersistentVolumes: reclaim policy defaults to `Retain`, `Pending` at birth with the
/// `pv-protection` finalizer; exactly one volume source, immutable after creation.
pub struct VolumeStrategy;

impl Strategy for VolumeStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            default_field(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default_field(spec, "volumeMode", json!("Filesystem"));
        }
    }
    fn prepare_create(&self, obj: &mut Value, _ctx: &CreateContext) {
        obj["status"] = json!({"phase": "Pending"});
        add_finalizer(obj, PV_PROTECTION);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        validate_access_modes(
            spec,
            "spec.accessModes",
            "must specify at least 1 access mode",
            causes,
        );
        validate_capacity(spec, causes);
        validate_source(spec, causes);
        validate_class_and_mode(spec, causes);
        if let Some(policy) = spec.get("persistentVolumeReclaimPolicy")
            && !matches!(policy.as_str(), Some("Delete" | "Recycle" | "Retain"))
        {
            causes.not_supported(
                "spec.persistentVolumeReclaimPolicy",
                policy,
                &["Delete", "Recycle", "Retain"],
            );
        }
        if let Some(affinity) = spec.get("nodeAffinity")
            && let Some(required) = affinity.get("required")
            && required
                .get("nodeSelectorTerms")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
        {
            required_because(
                causes,
                "spec.nodeAffinity.required.nodeSelectorTerms",
                "must have at least one node selector term",
            );
        }
        if let Some(old) = old {
            validate_volume_update(spec, old.get("spec").unwrap_or(&Value::Null), causes);
        }
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

fn validate_capacity(spec: &Value, causes: &mut Causes) {
    let capacity = spec.get("capacity").and_then(Value::as_object);
    match capacity {
        None => causes.required("spec.capacity"),
        Some(c) if c.is_empty() => causes.required("spec.capacity"),
        Some(c) => {
            if !c.contains_key("storage") || c.len() > 1 {
                causes.not_supported("spec.capacity", &Value::Object(c.clone()), &["storage"]);
            }
            validate_size(c.get("storage"), "spec.capacity[storage]", causes);
        }
    }
}

fn validate_source(spec: &Value, causes: &mut Causes) {
    let present: Vec<&str> = VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|s| spec.get(*s).is_some_and(|v| !v.is_null()))
        .collect();
    match present.as_slice() {
        [] => required_because(causes, "spec", "must specify a volume type"),
        [_, rest @ ..] => {
            for extra in rest {
                causes.forbidden(
                    format!("spec.{extra}"),
                    "may not specify more than 1 volume type",
                );
            }
        }
    }
    if let Some(host) = spec.get("hostPath") {
        if host
            .get("path")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.required("spec.hostPath.path");
        }
        const TYPES: &[&str] = &[
            "",
            "BlockDevice",
            "CharDevice",
            "Directory",
            "DirectoryOrCreate",
            "File",
            "FileOrCreate",
            "Socket",
        ];
        if let Some(t) = host.get("type").filter(|t| !t.is_null())
            && !t.as_str().is_some_and(|t| TYPES.contains(&t))
        {
            causes.not_supported("spec.hostPath.type", t, TYPES);
        }
    }
    if let Some(local) = spec.get("local") {
        if local
            .get("path")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.required("spec.local.path");
        }
        if spec.get("nodeAffinity").is_none_or(Value::is_null) {
            required_because(
                causes,
                "spec.nodeAffinity",
                "Local volumes require node affinity",
            );
        }
    }
}

fn validate_volume_update(spec: &Value, old: &Value, causes: &mut Causes) {
    let source = |s: &Value| -> Vec<(&str, Option<Value>)> {
        VOLUME_SOURCES
            .iter()
            .map(|k| (*k, s.get(*k).cloned()))
            .collect()
    };
    if source(spec) != source(old) {
        causes.forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        );
    }
    if spec.get("volumeMode") != old.get("volumeMode") {
        causes.immutable(
            "spec.volumeMode",
            spec.get("volumeMode").unwrap_or(&Value::Null),
        );
    }
    if old.get("nodeAffinity").is_some_and(|a| !a.is_null())
        && spec.get("nodeAffinity") != old.get("nodeAffinity")
    {
        causes.immutable(
            "spec.nodeAffinity",
            spec.get("nodeAffinity").unwrap_or(&Value::Null),
        );
    }
}

/// StorageClasses: reclaim `Delete`, binding `Immediate` by default; no status; the
/// provisioner, parameters, reclaim policy and binding mode never change.
pub struct StorageClassStrategy;

impl Strategy for StorageClassStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            default_field(o, "reclaimPolicy", json!("Delete"));
            default_field(o, "volumeBindingMode", json!("Immediate"));
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        match obj.get("provisioner").and_then(Value::as_str) {
            None | Some("") => causes.required("provisioner"),
            Some(p) => {
                if let Some(detail) = super::validation::qualified_name_error(p) {
                    causes.invalid("provisioner", &json!(p), &detail);
                }
            }
        }
        if let Some(policy) = obj.get("reclaimPolicy")
            && !matches!(policy.as_str(), Some("Delete" | "Retain"))
        {
            causes.not_supported("reclaimPolicy", policy, &["Delete", "Retain"]);
        }
        if let Some(mode) = obj.get("volumeBindingMode")
            && !matches!(mode.as_str(), Some("Immediate" | "WaitForFirstConsumer"))
        {
            causes.not_supported(
                "volumeBindingMode",
                mode,
                &["Immediate", "WaitForFirstConsumer"],
            );
        }
        if let Some(old) = old {
            for f in ["provisioner", "parameters", "reclaimPolicy"] {
                if obj.get(f) != old.get(f) {
                    causes.forbidden(f, &format!("updates to {f} are forbidden."));
                }
            }
            if obj.get("volumeBindingMode") != old.get("volumeBindingMode") {
                causes.forbidden("volumeBindingMode", "field is immutable");
            }
        }
    }
    fn has_status(&self) -> bool {
        false
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(spec: Value) -> Value {
        json!({"metadata": {"name": "c", "namespace": "default"}, "spec": spec})
    }

    fn messages(causes: &Causes) -> Vec<String> {
        causes
            .0
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn new_claims_and_volumes_get_their_protection_finalizer() {
        let mut c = claim(json!({}));
        ClaimStrategy.prepare_create(&mut c, &CreateContext::default());
        assert_eq!(c["metadata"]["finalizers"], json!([PVC_PROTECTION]));
        assert_eq!(c["status"]["phase"], "Pending");
        let mut v = json!({"metadata": {"name": "v", "finalizers": ["x", PV_PROTECTION]}});
        VolumeStrategy.prepare_create(&mut v, &CreateContext::default());
        assert_eq!(v["metadata"]["finalizers"], json!(["x", PV_PROTECTION]));
    }

    #[test]
    fn claim_validation_speaks_kube_apiserver() {
        let mut causes = Causes::default();
        let bad = claim(json!({"accessModes": ["ReadWriteOncePod", "Sometimes"],
            "resources": {"requests": {"storage": "0"}}, "volumeMode": "Tape",
            "storageClassName": "Fast"}));
        ClaimStrategy.validate(&bad, None, &mut causes);
        let got = messages(&causes);
        assert!(got.contains(&"spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"".to_string()), "{got:?}");
        assert!(got.contains(
            &"spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"
                .to_string()
        ));
        assert!(got.contains(
            &"spec.resources[storage]: Invalid value: \"0\": must be greater than zero".to_string()
        ));
        assert!(
            got.iter()
                .any(|m| m.starts_with("spec.volumeMode: Unsupported value: \"Tape\""))
        );
        assert!(
            got.iter()
                .any(|m| m.starts_with("spec.storageClassName: Invalid value"))
        );
        let mut causes = Causes::default();
        ClaimStrategy.validate(&claim(json!({})), None, &mut causes);
        assert_eq!(
            messages(&causes),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value"
            ]
        );
    }

    #[test]
    fn claim_updates_may_bind_once_and_gain_a_default_class() {
        let spec = json!({"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}});
        let old = claim(spec.clone());
        let ok = |new: &Value, old: &Value| {
            let mut causes = Causes::default();
            ClaimStrategy.validate(new, Some(old), &mut causes);
            causes.is_empty()
        };
        let mut classed = old.clone();
        classed["spec"]["storageClassName"] = json!("local-path");
        assert!(ok(&classed, &old), "unset -> a class");
        let mut other = classed.clone();
        other["spec"]["storageClassName"] = json!("fast");
        assert!(!ok(&other, &classed), "a class never changes");
        let mut none = old.clone();
        none["spec"]["storageClassName"] = json!("");
        assert!(!ok(&classed, &none), "\"\" means no class, for good");
        let mut bound = classed.clone();
        bound["spec"]["volumeName"] = json!("pv1");
        assert!(ok(&bound, &classed));
        let mut rebound = bound.clone();
        rebound["spec"]["volumeName"] = json!("pv2");
        assert!(!ok(&rebound, &bound));
    }

    #[test]
    fn volumes_need_exactly_one_source_and_keep_it() {
        let mut causes = Causes::default();
        let none = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}}});
        VolumeStrategy.validate(&none, None, &mut causes);
        assert_eq!(
            messages(&causes),
            ["spec: Required value: must specify a volume type"]
        );
        let local = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}, "local": {"path": "/d"}, "hostPath": {"path": "/d"}}});
        let mut causes = Causes::default();
        VolumeStrategy.validate(&local, None, &mut causes);
        assert_eq!(
            messages(&causes),
            [
                "spec.local: Forbidden: may not specify more than 1 volume type",
                "spec.nodeAffinity: Required value: Local volumes require node affinity"
            ]
        );
        let old = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/a"}}});
        let mut moved = old.clone();
        moved["spec"]["hostPath"]["path"] = json!("/b");
        let mut causes = Causes::default();
        VolumeStrategy.validate(&moved, Some(&old), &mut causes);
        assert_eq!(
            messages(&causes),
            [
                "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
            ]
        );
        let mut claimed = old.clone();
        claimed["spec"]["claimRef"] = json!({"name": "c", "namespace": "default"});
        let mut causes = Causes::default();
        VolumeStrategy.validate(&claimed, Some(&old), &mut causes);
        assert!(causes.is_empty());
    }

    #[test]
    fn storage_class_fields_are_checked_and_frozen() {
        let mut sc = json!({"metadata": {"name": "s"}, "provisioner": "rancher.io/local-path"});
        StorageClassStrategy.default(&mut sc);
        let mut causes = Causes::default();
        StorageClassStrategy.validate(&sc, None, &mut causes);
        assert!(causes.is_empty());
        let mut changed = sc.clone();
        changed["reclaimPolicy"] = json!("Retain");
        changed["volumeBindingMode"] = json!("Later");
        let mut causes = Causes::default();
        StorageClassStrategy.validate(&changed, Some(&sc), &mut causes);
        assert_eq!(
            messages(&causes),
            [
                "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
                "volumeBindingMode: Forbidden: field is immutable"
            ]
        );
    }
}
