//! Strategies of the kinds with little behaviour of their own: namespaces, nodes, secrets,
//! config maps, autoscalers, events (the storage kinds are in [`storage`](super::storage)).

use base64::Engine;
use serde_json::{Value, json};

use super::meta::{child, default_field};
use super::{Causes, ClusterCidr, CreateContext, Strategy};

/// Namespaces: a DNS label name, the `kubernetes` finalizer, `Active` at birth.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn default(&self, obj: &mut Value) {
        let name = obj
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(o) = obj.as_object_mut() {
            let labels = child(child(o, "metadata"), "labels");
            labels.insert("kubernetes.io/metadata.name".into(), name);
            default_field(child(o, "spec"), "finalizers", json!(["kubernetes"]));
        }
    }
    fn prepare_create(&self, obj: &mut Value, _ctx: &CreateContext) {
        obj["status"] = json!({"phase": "Active"});
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>, causes: &mut Causes) {
        if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
            causes.dns_label("metadata.name", name);
        }
    }
    fn tracks_generation(&self) -> bool {
        false
    }
    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[("status.phase", "/status/phase")]
    }
}

/// Nodes: written by node agents; `spec.unschedulable` is a field selector.
pub struct NodeStrategy;

/// The first pod network of the cluster's range no node in `existing` holds. Pod networks are
/// /16s of 127/8 (ARCHITECTURE D7): all of it routes to `lo`, so a pod IP needs no setup and no
/// root; the default range `127.64.0.0/10` avoids 127.0.0.1, 127.0.0.53 and 127.0.1.1.
fn free_pod_cidr(existing: &[std::sync::Arc<Value>], range: ClusterCidr) -> Option<String> {
    let used: Vec<&str> = existing
        .iter()
        .filter_map(|n| n.pointer("/spec/podCIDR").and_then(Value::as_str))
        .collect();
    (range.first..range.end)
        .map(|b| format!("127.{b}.0.0/16"))
        .find(|c| !used.contains(&c.as_str()))
}

impl Strategy for NodeStrategy {
    fn tracks_generation(&self) -> bool {
        false
    }
    fn allocates(&self) -> bool {
        true
    }
    /// Node IPAM, done at registration: each node gets its own pod network.
    fn prepare_create(&self, obj: &mut Value, ctx: &CreateContext) {
        let Some(o) = obj.as_object_mut() else { return };
        let spec = child(o, "spec");
        if spec
            .get("podCIDR")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(cidr) = free_pod_cidr(ctx.existing, ctx.cluster_cidr)
        {
            spec.insert("podCIDRs".into(), json!([cidr]));
            spec.insert("podCIDR".into(), json!(cidr));
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        let cidr = |v: &Value| {
            v.pointer("/spec/podCIDR")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let Some(old) = old
            && let Some(before) = cidr(old)
            && cidr(obj).is_some_and(|now| now != before)
        {
            causes.forbidden(
                "spec.podCIDR",
                "node updates may not change podCIDR except from \"\" to valid",
            );
        }
    }
    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[("spec.unschedulable", "/spec/unschedulable")]
    }
}

/// The secret types the API accepts, with the data keys each requires.
const SECRET_TYPES: &[(&str, &[&str])] = &[
    ("Opaque", &[]),
    ("kubernetes.io/service-account-token", &[]),
    ("kubernetes.io/dockercfg", &[".dockercfg"]),
    ("kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]),
    ("kubernetes.io/basic-auth", &[]),
    ("kubernetes.io/ssh-auth", &["ssh-privatekey"]),
    ("kubernetes.io/tls", &["tls.crt", "tls.key"]),
    ("bootstrap.kubernetes.io/token", &[]),
];

/// Secrets: `stringData` is merged into `data` (base64) on write; `type` is checked.
pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        default_field(o, "type", json!("Opaque"));
        if let Some(Value::Object(string_data)) = o.remove("stringData") {
            let data = child(o, "data");
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        let ty = obj.get("type").cloned().unwrap_or(json!("Opaque"));
        let data = obj.get("data").and_then(Value::as_object);
        // Custom types (anything with a '/' outside kubernetes.io) are allowed, as upstream.
        match SECRET_TYPES.iter().find(|(t, _)| Some(*t) == ty.as_str()) {
            Some((_, required)) => {
                for key in *required {
                    if data.is_none_or(|d| !d.contains_key(*key)) {
                        causes.required(format!("data[{key}]"));
                    }
                }
            }
            None if ty.as_str().is_some_and(|t| !t.is_empty()) => {}
            None => causes.required("type"),
        }
        validate_data_keys(obj, causes);
        immutable_data(obj, old, causes);
        if let Some(old) = old
            && old.get("type") != obj.get("type")
        {
            causes.immutable("type", &ty);
        }
    }
    fn has_status(&self) -> bool {
        false
    }
    fn tracks_generation(&self) -> bool {
        false
    }
    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[("type", "/type")]
    }
}

/// ConfigMaps: key names checked, `immutable` honoured.
pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        validate_data_keys(obj, causes);
        immutable_data(obj, old, causes);
    }
    fn has_status(&self) -> bool {
        false
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

fn validate_data_keys(obj: &Value, causes: &mut Causes) {
    for field in ["data", "binaryData"] {
        for key in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let ok = !key.is_empty()
                && key.len() <= 253
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                && key != "."
                && key != "..";
            if !ok {
                causes.invalid(
                    format!("{field}[{key}]"),
                    &json!(key),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
                     (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation \
                     is '[-._a-zA-Z0-9]+')",
                );
            }
        }
    }
}

fn immutable_data(obj: &Value, old: Option<&Value>, causes: &mut Causes) {
    let Some(old) = old else { return };
    if old.get("immutable") == Some(&json!(true)) {
        if obj.get("data") != old.get("data") || obj.get("binaryData") != old.get("binaryData") {
            causes.forbidden("data", "field is immutable when `immutable` is set");
        }
        if obj.get("immutable") != Some(&json!(true)) {
            causes.forbidden("immutable", "field is immutable when `immutable` is set");
        }
    }
}

/// Events (core/v1, also stored for events.k8s.io/v1).
pub struct EventStrategy;

impl Strategy for EventStrategy {
    fn has_status(&self) -> bool {
        false
    }
    fn tracks_generation(&self) -> bool {
        false
    }
    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("involvedObject.kind", "/involvedObject/kind"),
            ("involvedObject.namespace", "/involvedObject/namespace"),
            ("involvedObject.name", "/involvedObject/name"),
            ("involvedObject.uid", "/involvedObject/uid"),
            ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            (
                "involvedObject.resourceVersion",
                "/involvedObject/resourceVersion",
            ),
            ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("source", "/source/component"),
            ("type", "/type"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_cidr_parses_whole_slash_16_ranges_inside_loopback() {
        assert_eq!(
            "127.64.0.0/10".parse(),
            Ok(ClusterCidr {
                first: 64,
                end: 128
            })
        );
        assert_eq!(
            "127.80.0.0/14".parse(),
            Ok(ClusterCidr { first: 80, end: 84 })
        );
        assert_eq!("127.0.0.0/14".parse(), Ok(ClusterCidr { first: 1, end: 4 }));
        assert!("10.0.0.0/8".parse::<ClusterCidr>().is_err());
        assert!("127.65.0.0/10".parse::<ClusterCidr>().is_err());
        let mut n = json!({"metadata": {"name": "n"}});
        let ctx = CreateContext {
            cluster_cidr: ClusterCidr { first: 80, end: 84 },
            ..Default::default()
        };
        NodeStrategy.prepare_create(&mut n, &ctx);
        assert_eq!(n["spec"]["podCIDR"], "127.80.0.0/16");
    }

    #[test]
    fn nodes_get_distinct_pod_networks_that_never_change() {
        let mut a = json!({"metadata": {"name": "a"}});
        NodeStrategy.prepare_create(
            &mut a,
            &CreateContext {
                existing: &[],
                ..Default::default()
            },
        );
        assert_eq!(a["spec"]["podCIDR"], "127.64.0.0/16");
        let mut b = json!({"metadata": {"name": "b"}});
        NodeStrategy.prepare_create(
            &mut b,
            &CreateContext {
                existing: &[std::sync::Arc::new(a.clone())],
                ..Default::default()
            },
        );
        assert_eq!(b["spec"]["podCIDRs"], json!(["127.65.0.0/16"]));
        let mut moved = b.clone();
        moved["spec"]["podCIDR"] = json!("127.70.0.0/16");
        let mut causes = Causes::default();
        NodeStrategy.validate(&moved, Some(&b), &mut causes);
        assert!(!causes.is_empty());
    }

    #[test]
    fn string_data_merges_into_data() {
        let mut s =
            json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hi"}});
        SecretStrategy.default(&mut s);
        assert_eq!(s["data"]["b"], "aGk=");
        assert_eq!(s["data"]["a"], "eA==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn tls_secret_needs_cert_and_key() {
        let s = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        let mut causes = Causes::default();
        SecretStrategy.validate(&s, None, &mut causes);
        assert_eq!(causes.0[0].field, "data[tls.key]");
    }

    #[test]
    fn immutable_configmap_rejects_changes() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let new = json!({"immutable": true, "data": {"a": "2"}});
        let mut causes = Causes::default();
        ConfigMapStrategy.validate(&new, Some(&old), &mut causes);
        assert_eq!(causes.0.len(), 1);
    }
}
