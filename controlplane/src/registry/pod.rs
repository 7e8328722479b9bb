//! Pods: defaulting and validation as kube-apiserver does them, shared with every kind that
//! embeds a pod template.

use serde_json::{Map, Value, json};

use super::meta::{child, default_field, each_mut, items};
use super::{Causes, CreateContext, Strategy};

/// The fields of a running pod's spec that an update may change.
const MUTABLE_SPEC: &str = "pod updates may not change fields other than \
`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,\
`spec.tolerations` (only additions to existing tolerations),\
`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The pod strategy.
pub struct PodStrategy;

impl Strategy for PodStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            // ServiceAccount admission: pods (not templates) run as `default` unless told.
            default_field(spec, "serviceAccountName", json!("default"));
            default_pod_spec(spec);
            // DefaultTolerationSeconds admission: pods ride out a node blip for five minutes.
            let tolerations = spec
                .entry("tolerations")
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(list) = tolerations {
                for key in [
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                ] {
                    if !list.iter().any(|t| t["key"] == key) {
                        list.push(json!({"key": key, "operator": "Exists",
                            "effect": "NoExecute", "tolerationSeconds": 300}));
                    }
                }
            }
        }
    }

    fn prepare_create(&self, obj: &mut Value, _ctx: &CreateContext) {
        let qos = qos_class(obj);
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Causes) {
        validate_pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec", causes);
        if old.is_none() && has_ephemeral_containers(obj.get("spec")) {
            causes.forbidden("spec.ephemeralContainers", "cannot be set on create");
        }
        // Ephemeral containers change only through the `ephemeralcontainers` subresource
        // (validate_ephemeral_containers_update), so here they count as immutable spec.
        if let Some(old) = old {
            let strip = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
                for list in ["containers", "initContainers"] {
                    if let Some(Value::Array(cs)) = spec.get_mut(list) {
                        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                            c.remove("image");
                        }
                    }
                }
                if let Some(s) = spec.as_object_mut() {
                    for f in [
                        "activeDeadlineSeconds",
                        "tolerations",
                        "terminationGracePeriodSeconds",
                    ] {
                        s.remove(f);
                    }
                    // nodeName is set once, by the binding subresource.
                    if old.pointer("/spec/nodeName").is_none() {
                        s.remove("nodeName");
                    }
                }
                spec
            };
            if strip(obj) != strip(old) {
                causes.forbidden("spec", MUTABLE_SPEC);
            }
        }
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("spec.nodeName", "/spec/nodeName"),
            ("spec.restartPolicy", "/spec/restartPolicy"),
            ("spec.schedulerName", "/spec/schedulerName"),
            ("spec.serviceAccountName", "/spec/serviceAccountName"),
            ("spec.hostNetwork", "/spec/hostNetwork"),
            ("status.phase", "/status/phase"),
            ("status.podIP", "/status/podIP"),
            ("status.nominatedNodeName", "/status/nominatedNodeName"),
        ]
    }

    fn warnings(&self, obj: &Value) -> Vec<String> {
        unimplemented_pod_fields(obj.get("spec").unwrap_or(&Value::Null), "spec")
    }
}

/// Warnings for pod spec fields that are valid Kubernetes but that no wasmkube component acts
/// on yet. Never silently dropped: the user is told, the field is kept.
pub fn unimplemented_pod_fields(spec: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (field, why) in [
        ("affinity", "affinity is not implemented yet"),
        (
            "hostNetwork",
            "pods never share the host network in wasmkube",
        ),
        ("hostPID", "wasm instances have no process namespace"),
        ("hostIPC", "wasm instances have no IPC namespace"),
        (
            "runtimeClassName",
            "every container runs as a wasm instance",
        ),
        ("overhead", "pod overhead is not accounted yet"),
    ] {
        if spec.get(field).is_some_and(|v| !v.is_null() && v != false) {
            out.push(format!(
                "{path}.{field}: {why}; the field is stored but has no effect"
            ));
        }
    }
    out
}

/// Fills a pod spec's defaults (`SetDefaults_PodSpec`, `SetDefaults_Container`...).
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "enableServiceLinks", json!(true));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        default_field(spec, "serviceAccount", sa);
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        each_mut(spec, list, default_container);
    }
    each_mut(spec, "volumes", |v| {
        for (source, mode_field) in [("configMap", "defaultMode"), ("secret", "defaultMode")] {
            if let Some(Value::Object(src)) = v.get_mut(source) {
                default_field(src, mode_field, json!(420));
            }
        }
        if let Some(Value::Object(hp)) = v.get_mut("hostPath") {
            default_field(hp, "type", json!(""));
        }
    });
}

fn default_container(c: &mut Map<String, Value>) {
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = if image_tag(image).is_none_or(|t| t == "latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    default_field(c, "imagePullPolicy", json!(policy));
    each_mut(c, "ports", |p| default_field(p, "protocol", json!("TCP")));
    let resources = child(c, "resources");
    // Requests default to limits where only limits are given.
    if let Some(limits) = resources.get("limits").cloned()
        && let Some(limits) = limits.as_object()
    {
        let requests = child(resources, "requests");
        for (k, v) in limits {
            default_field(requests, k, v.clone());
        }
    }
}

/// The tag of an image reference (`nginx:1.25` -> `1.25`), if it has one and no digest.
fn image_tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return Some("@digest");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t)
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = items(pod, "/spec/containers")
        .chain(items(pod, "/spec/initContainers"))
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests");
        let lim = c.pointer("/resources/limits");
        for r in ["cpu", "memory"] {
            let (q, l) = (req.and_then(|m| m.get(r)), lim.and_then(|m| m.get(r)));
            any |= q.is_some() || l.is_some();
            if l.is_none() || q.is_some_and(|q| Some(q) != l) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Validates a pod spec found at `path` (`spec`, `spec.template.spec`...).
pub fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Causes) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        causes.required(format!("{path}.containers"));
    }
    let volumes: Vec<&str> = items(spec, "/volumes")
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    for (i, v) in volumes.iter().enumerate() {
        if volumes[..i].contains(v) {
            causes.duplicate(format!("{path}.volumes[{i}].name"), &json!(v));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in items(spec, &format!("/{list}")).enumerate() {
            let at = format!("{path}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.required(format!("{at}.name")),
                Some(n) => {
                    causes.dns_label(&format!("{at}.name"), n);
                    if names.contains(&n) {
                        causes.duplicate(format!("{at}.name"), &json!(n));
                    }
                    names.push(n);
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.required(format!("{at}.image"));
            }
            for (j, p) in items(c, "/ports").enumerate() {
                let field = format!("{at}.ports[{j}].containerPort");
                match p.get("containerPort").and_then(Value::as_i64) {
                    None => causes.required(field),
                    Some(n) if !(1..=65535).contains(&n) => {
                        causes.invalid(field, &json!(n), "must be between 1 and 65535, inclusive")
                    }
                    Some(_) => {}
                }
                if let Some(proto) = p.get("protocol")
                    && !["TCP", "UDP", "SCTP"].contains(&proto.as_str().unwrap_or_default())
                {
                    causes.not_supported(
                        format!("{at}.ports[{j}].protocol"),
                        proto,
                        &["SCTP", "TCP", "UDP"],
                    );
                }
            }
            if list == "ephemeralContainers" {
                validate_ephemeral_container(spec, c, &at, causes);
            }
            for (j, m) in items(c, "/volumeMounts").enumerate() {
                let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
                if !volumes.contains(&name) {
                    causes.not_found(format!("{at}.volumeMounts[{j}].name"), &json!(name));
                }
                if m.get("mountPath")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.required(format!("{at}.volumeMounts[{j}].mountPath"));
                }
            }
        }
    }
    if let Some(policy) = spec.get("restartPolicy")
        && !["Always", "OnFailure", "Never"].contains(&policy.as_str().unwrap_or_default())
    {
        causes.not_supported(
            format!("{path}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        );
    }
    causes.at_least(
        &format!("{path}.terminationGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
        0,
    );
}

/// The container fields an ephemeral container may not set (kube-apiserver's
/// `validateEphemeralContainers`): it joins a running pod, so it gets no ports, probes,
/// lifecycle hooks or resources of its own.
const NOT_FOR_EPHEMERAL: &[&str] = &[
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
    "resizePolicy",
];

/// What only ephemeral containers are checked for; `at` is `spec.ephemeralContainers[i]`.
fn validate_ephemeral_container(spec: &Value, c: &Value, at: &str, causes: &mut Causes) {
    for field in NOT_FOR_EPHEMERAL {
        if c.get(*field).is_some_and(is_set) {
            causes.forbidden(
                format!("{at}.{field}"),
                "cannot be set for an Ephemeral Container",
            );
        }
    }
    if let Some(target) = c
        .get("targetContainerName")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        let known = ["/containers", "/initContainers"].iter().any(|list| {
            items(spec, list).any(|other| other.get("name").and_then(Value::as_str) == Some(target))
        });
        if !known {
            causes.not_found(format!("{at}.targetContainerName"), &json!(target));
        }
    }
}

/// Whether a field holds anything: `{}`, `[]` and `null` count as unset, as Go's zero values.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(m) => m.values().any(is_set),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

fn has_ephemeral_containers(spec: Option<&Value>) -> bool {
    spec.and_then(|s| s.get("ephemeralContainers"))
        .and_then(Value::as_array)
        .is_some_and(|l| !l.is_empty())
}

/// Validates a write through pods' `ephemeralcontainers` subresource: the new list must be
/// valid, and the containers already there may be neither removed nor changed (they may be
/// running).
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value, causes: &mut Causes) {
    validate_pod_spec(new.get("spec").unwrap_or(&Value::Null), "spec", causes);
    let listed: Vec<&Value> = items(new, "/spec/ephemeralContainers").collect();
    for existing in items(old, "/spec/ephemeralContainers") {
        let name = existing
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match listed
            .iter()
            .find(|c| c.get("name") == existing.get("name"))
        {
            None => causes.forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be removed"),
            ),
            Some(c) if *c != existing => causes.forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be changed"),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_images_are_always_pulled() {
        let mut spec = json!({"containers": [{"name": "a", "image": "nginx"},
            {"name": "b", "image": "nginx:1.25"}, {"name": "c", "image": "localhost:5000/x"}]});
        default_pod_spec(spec.as_object_mut().unwrap());
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][2]["imagePullPolicy"], "Always");
        assert_eq!(spec["restartPolicy"], "Always");
    }

    #[test]
    fn requires_container_image() {
        let mut causes = Causes::default();
        validate_pod_spec(
            &json!({"containers": [{"name": "web"}]}),
            "spec",
            &mut causes,
        );
        assert_eq!(causes.0[0].field, "spec.containers[0].image");
        assert_eq!(causes.0[0].message, "Required value");
    }

    #[test]
    fn volume_mount_must_name_a_volume() {
        let mut causes = Causes::default();
        let spec = json!({"containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]});
        validate_pod_spec(&spec, "spec", &mut causes);
        assert_eq!(causes.0[0].message, "Not found: \"data\"");
    }

    #[test]
    fn qos_guaranteed_when_limits_equal_requests() {
        let pod = json!({"spec": {"containers": [{"resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&pod), "Guaranteed");
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{}]}})),
            "BestEffort"
        );
    }
}

#[cfg(test)]
mod ephemeral_tests {
    use super::*;

    fn pod(ephemeral: Value) -> Value {
        json!({"spec": {"containers": [{"name": "web", "image": "nginx:1"}],
            "ephemeralContainers": ephemeral}})
    }

    fn messages(causes: &Causes) -> Vec<String> {
        causes
            .0
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn rejects_ephemeral_containers_on_create() {
        let mut causes = Causes::default();
        let new = pod(json!([{"name": "debugger", "image": "wasmkube/toolbox"}]));
        PodStrategy.validate(&new, None, &mut causes);
        assert_eq!(
            messages(&causes),
            vec!["spec.ephemeralContainers: Forbidden: cannot be set on create"]
        );
    }

    #[test]
    fn main_resource_update_may_not_add_ephemeral_containers() {
        let mut causes = Causes::default();
        let new = pod(json!([{"name": "debugger", "image": "wasmkube/toolbox"}]));
        PodStrategy.validate(&new, Some(&pod(json!([]))), &mut causes);
        assert_eq!(causes.0[0].field, "spec");
        assert!(causes.0[0].message.starts_with("Forbidden: pod updates"));
    }

    #[test]
    fn ephemeral_containers_may_not_set_ports_probes_or_resources() {
        let mut causes = Causes::default();
        let new = pod(
            json!([{"name": "d", "image": "t", "ports": [{"containerPort": 80}],
            "readinessProbe": {"tcpSocket": {"port": 80}}, "resources": {"limits": {"cpu": "1"}}}]),
        );
        validate_ephemeral_containers_update(&new, &pod(json!([])), &mut causes);
        let fields: Vec<&str> = causes.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.ephemeralContainers[0].ports",
                "spec.ephemeralContainers[0].readinessProbe",
                "spec.ephemeralContainers[0].resources",
            ]
        );
        // kubectl debug sends `resources: {}`, which is no resources at all.
        let mut causes = Causes::default();
        let empty = pod(json!([{"name": "d", "image": "t", "resources": {}}]));
        validate_ephemeral_containers_update(&empty, &pod(json!([])), &mut causes);
        assert!(causes.is_empty(), "{:?}", messages(&causes));
    }

    #[test]
    fn ephemeral_names_are_unique_across_all_containers() {
        let mut causes = Causes::default();
        let new = pod(json!([{"name": "web", "image": "t"}]));
        validate_ephemeral_containers_update(&new, &pod(json!([])), &mut causes);
        assert_eq!(
            messages(&causes),
            vec!["spec.ephemeralContainers[0].name: Duplicate value: \"web\""]
        );
    }

    #[test]
    fn existing_ephemeral_containers_may_not_be_removed_or_changed() {
        let old = pod(json!([{"name": "a", "image": "t"}, {"name": "b", "image": "t"}]));
        let new = pod(json!([{"name": "b", "image": "other"}]));
        let mut causes = Causes::default();
        validate_ephemeral_containers_update(&new, &old, &mut causes);
        assert_eq!(
            messages(&causes),
            vec![
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"a\" may not be removed",
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"b\" may not be changed",
            ]
        );
    }

    #[test]
    fn target_container_must_exist() {
        let mut causes = Causes::default();
        let new = pod(json!([{"name": "d", "image": "t", "targetContainerName": "nope"}]));
        validate_ephemeral_containers_update(&new, &pod(json!([])), &mut causes);
        assert_eq!(
            messages(&causes),
            vec!["spec.ephemeralContainers[0].targetContainerName: Not found: \"nope\""]
        );
    }
}
