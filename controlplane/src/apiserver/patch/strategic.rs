//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`), applied to JSON values.
//!
//! This is what `kubectl apply`, `kubectl label`, `kubectl set env` and `kubectl patch` send by
//! default. It is a JSON merge patch (maps merge recursively, `null` deletes a key) except for lists:
//! a list whose Go field carries `patchStrategy:"merge"` merges element by element, matched by its
//! `patchMergeKey` (containers by `name`, container ports by `containerPort`, ...), or as a set when
//! its elements are primitives (`metadata.finalizers`). Every other list is replaced whole.
//!
//! kube-apiserver reads those tags from the Go structs by reflection; we have no structs, so
//! [`LISTS`] holds the tags of the built-in types, keyed by a normalised field path: array indices
//! are dropped, the kind's pod spec becomes `podspec` and a container becomes `container`, so one row
//! covers Pods, Deployments and CronJobs alike. Start reading at [`strategic_merge`].
//!
//! The directives follow apimachinery's `strategicpatch` package: `$patch` (`merge`, `replace`,
//! `delete`), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`. Two
//! deliberate simplifications: elements of `$setElementOrder` come first and the ones it does not
//! name keep their relative order after them, and merged primitive lists keep the current values
//! first. Unlike apimachinery, directives never leak into the stored object, even when they sit
//! below a field the object does not have yet.

use serde_json::{Map, Value};

/// The directive key that changes how the map or list holding it is merged.
const PATCH: &str = "$patch";
/// The directive listing the only keys the merged map keeps.
const RETAIN_KEYS: &str = "$retainKeys";
/// `$deleteFromPrimitiveList/<field>` removes values from the primitive list `<field>`.
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
/// `$setElementOrder/<field>` orders the merged list `<field>`.
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// How a list field is patched, from its `patchStrategy`/`patchMergeKey` tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the current one.
    Atomic,
    /// `patchStrategy:"merge"` on a list of primitives: a set union.
    Primitives,
    /// `patchStrategy:"merge"` with `patchMergeKey`: elements matched by that key merge as maps.
    Key(&'static str),
}

use ListStrategy::{Key, Primitives};

/// The merging lists of the built-in types (k8s.io/api tags), keyed by normalised path.
///
/// A key is tried as `Kind:path` first, then as `path`; `metadata.*` rows also match an
/// `ObjectMeta` nested anywhere (a pod template's, a volume claim template's). Lists not named
/// here are atomic, which covers tolerations, args, command, envFrom, readinessGates,
/// containerStatuses, matchExpressions, Endpoints subsets and volumeClaimTemplates.
const LISTS: &[(&str, ListStrategy)] = &[
    // ObjectMeta
    ("metadata.finalizers", Primitives),
    ("metadata.ownerReferences", Key("uid")),
    // PodSpec
    ("podspec.containers", Key("name")),
    ("podspec.initContainers", Key("name")),
    ("podspec.ephemeralContainers", Key("name")),
    ("podspec.volumes", Key("name")),
    ("podspec.imagePullSecrets", Key("name")),
    ("podspec.hostAliases", Key("ip")),
    ("podspec.topologySpreadConstraints", Key("topologyKey")),
    ("podspec.resourceClaims", Key("name")),
    ("podspec.schedulingGates", Key("name")),
    // Container, init container and ephemeral container
    ("container.ports", Key("containerPort")),
    ("container.env", Key("name")),
    ("container.volumeMounts", Key("mountPath")),
    ("container.volumeDevices", Key("devicePath")),
    // Statuses: Pod, Node, Namespace, PVC, Service and the workloads all merge conditions by type
    ("status.conditions", Key("type")),
    ("Pod:status.podIPs", Key("ip")),
    ("Pod:status.hostIPs", Key("ip")),
    ("Pod:status.resourceClaimStatuses", Key("name")),
    ("Node:spec.podCIDRs", Primitives),
    ("Node:status.addresses", Key("type")),
    ("Service:spec.ports", Key("port")),
];

/// Where `kind` keeps its pod spec, if it has one.
fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "PodTemplate" => Some(&["template", "spec"]),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Applies a strategic merge patch to `current`, an object of `kind` (e.g. "Deployment", "Pod").
///
/// Returns the patched object, or a message saying why the patch is malformed.
pub fn strategic_merge(current: &Value, patch: &Value, kind: &str) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err(format!("the patch must be a JSON object, got {patch}"));
    };
    let current = match current {
        Value::Object(fields) => Some(fields.clone()),
        _ => None,
    };
    let merger = Merger {
        kind,
        pod_spec: pod_spec_path(kind),
    };
    // `{"$patch": "delete"}` at the top leaves an empty object, as in apimachinery.
    let merged = merger.merge_map(current, patch, &mut Vec::new())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// One patch application: the kind decides which lists merge.
struct Merger<'k> {
    kind: &'k str,
    pod_spec: Option<&'static [&'static str]>,
}

impl Merger<'_> {
    /// Merges `patch` into `current` (absent when the field is new or was not a map); `None` means
    /// the map is deleted. `path` is the field path of the map, without array indices.
    fn merge_map<'p>(
        &self,
        current: Option<Map<String, Value>>,
        patch: &'p Map<String, Value>,
        path: &mut Vec<&'p str>,
    ) -> Result<Option<Map<String, Value>>, String> {
        let mut result = match patch.get(PATCH) {
            None => current.unwrap_or_default(),
            Some(directive) => match directive.as_str() {
                Some("merge") => current.unwrap_or_default(),
                Some("replace") => Map::new(),
                Some("delete") => return Ok(None),
                _ => return Err(format!("unknown patch directive \"{PATCH}\": {directive}")),
            },
        };
        if let Some(keys) = patch.get(RETAIN_KEYS) {
            retain_keys(&mut result, patch, keys)?;
        }
        // Deletions first: a value both deleted and listed in the patch ends up present.
        for (key, value) in patch {
            if let Some(field) = directive_field(key, DELETE_FROM_PRIMITIVE_LIST)? {
                let doomed = value
                    .as_array()
                    .ok_or_else(|| format!("{key} must be a list, got {value}"))?;
                if let Some(Value::Array(list)) = result.get_mut(field) {
                    list.retain(|v| !doomed.contains(v));
                }
            }
        }
        let mut orders = Vec::new();
        for (key, value) in patch {
            if key == PATCH || key == RETAIN_KEYS || key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                continue;
            }
            if let Some(field) = directive_field(key, SET_ELEMENT_ORDER)? {
                orders.push((field, value));
                continue;
            }
            // Take the current value out in place rather than removing and re-inserting the key.
            let existing = result.get_mut(key.as_str()).map(Value::take);
            path.push(key);
            let merged = self.merge_value(existing, value, path);
            path.pop();
            match merged? {
                Some(value) => result.insert(key.clone(), value),
                None => result.remove(key.as_str()),
            };
        }
        for (field, order) in orders {
            let order = order.as_array().ok_or_else(|| {
                format!("{SET_ELEMENT_ORDER}/{field} must be a list, got {order}")
            })?;
            path.push(field);
            let strategy = self.list_strategy(path);
            path.pop();
            if let Some(Value::Array(list)) = result.get_mut(field) {
                let key = match strategy {
                    Key(key) => Some(key),
                    _ => None,
                };
                *list = reorder(std::mem::take(list), order, key)?;
            }
        }
        Ok(Some(result))
    }

    /// Merges one patch value into the current one; `None` means the field is deleted.
    fn merge_value<'p>(
        &self,
        current: Option<Value>,
        patch: &'p Value,
        path: &mut Vec<&'p str>,
    ) -> Result<Option<Value>, String> {
        Ok(match patch {
            Value::Null => None,
            Value::Object(fields) => {
                let current = match current {
                    Some(Value::Object(current)) => Some(current),
                    _ => None,
                };
                self.merge_map(current, fields, path)?.map(Value::Object)
            }
            Value::Array(items) => {
                let current = match current {
                    Some(Value::Array(current)) => current,
                    _ => Vec::new(),
                };
                Some(Value::Array(self.merge_list(current, items, path)?))
            }
            primitive => Some(primitive.clone()),
        })
    }

    /// Merges a patch list into the current list at `path`, by that field's strategy.
    fn merge_list<'p>(
        &self,
        mut current: Vec<Value>,
        patch: &'p [Value],
        path: &mut Vec<&'p str>,
    ) -> Result<Vec<Value>, String> {
        let strategy = self.list_strategy(path);
        let mut replace = false;
        let mut items = Vec::with_capacity(patch.len());
        for item in patch {
            let directive = match item.get(PATCH) {
                // An element saying `$patch: merge` is an ordinary element; merge_map ignores it.
                Some(directive) if directive != "merge" => directive,
                _ => {
                    items.push(item);
                    continue;
                }
            };
            match directive.as_str() {
                Some("replace") => replace = true,
                Some("delete") => {
                    let Key(key) = strategy else {
                        return Err(format!(
                            "cannot delete {item} from list {}: the list has no merge key",
                            path.join(".")
                        ));
                    };
                    let value = item.get(key).ok_or_else(|| no_merge_key(item, key))?;
                    current.retain(|element| element.get(key) != Some(value));
                }
                _ => return Err(format!("unknown patch directive \"{PATCH}\": {directive}")),
            }
        }
        let key = match strategy {
            _ if replace => return self.fresh(items, path),
            ListStrategy::Atomic => return self.fresh(items, path),
            Primitives => {
                for item in self.fresh(items, path)? {
                    if !current.contains(&item) {
                        current.push(item);
                    }
                }
                return Ok(current);
            }
            Key(key) => key,
        };
        for item in items {
            let Value::Object(fields) = item else {
                return Err(format!(
                    "list {} merges by {key} and cannot hold {item}",
                    path.join(".")
                ));
            };
            let value = fields.get(key).ok_or_else(|| no_merge_key(item, key))?;
            match current
                .iter()
                .position(|element| element.get(key) == Some(value))
            {
                Some(index) => {
                    let existing = match current[index].take() {
                        Value::Object(existing) => Some(existing),
                        _ => None,
                    };
                    match self.merge_map(existing, fields, path)? {
                        Some(merged) => current[index] = Value::Object(merged),
                        None => {
                            current.remove(index);
                        }
                    }
                }
                // New elements go last, in patch order.
                None => current.extend(self.merge_map(None, fields, path)?.map(Value::Object)),
            }
        }
        Ok(current)
    }

    /// Patch list elements as they will be stored: maps lose their directives and null fields.
    fn fresh<'p>(
        &self,
        items: Vec<&'p Value>,
        path: &mut Vec<&'p str>,
    ) -> Result<Vec<Value>, String> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::Object(fields) => {
                    out.extend(self.merge_map(None, fields, path)?.map(Value::Object))
                }
                other => out.push(other.clone()),
            }
        }
        Ok(out)
    }

    /// The strategy of the list at `path` in an object of this kind.
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        let canonical = self.canonical_path(path);
        let lookup = |key: &str| {
            LISTS
                .iter()
                .find(|(row, _)| *row == key)
                .map(|(_, strategy)| *strategy)
        };
        lookup(&format!("{}:{canonical}", self.kind))
            .or_else(|| lookup(&canonical))
            .or_else(|| {
                let nested = canonical.rfind(".metadata.")?;
                lookup(&canonical[nested + 1..])
            })
            .unwrap_or(ListStrategy::Atomic)
    }

    /// `path` joined by dots, with the kind's pod spec as `podspec` and any container as `container`.
    fn canonical_path(&self, path: &[&str]) -> String {
        match self.pod_spec.and_then(|prefix| path.strip_prefix(prefix)) {
            Some(
                [
                    "containers" | "initContainers" | "ephemeralContainers",
                    rest @ ..,
                ],
            ) if !rest.is_empty() => {
                format!("container.{}", rest.join("."))
            }
            Some(rest) => format!("podspec.{}", rest.join(".")),
            None => path.join("."),
        }
    }
}

/// Applies `$retainKeys`: keys of `result` not listed go, and the patch may set no other key.
fn retain_keys(
    result: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    keys: &Value,
) -> Result<(), String> {
    let listed: Vec<&str> = keys
        .as_array()
        .and_then(|keys| keys.iter().map(Value::as_str).collect())
        .ok_or_else(|| format!("{RETAIN_KEYS} must be a list of field names, got {keys}"))?;
    for (key, value) in patch {
        if !value.is_null() && !is_directive(key) && !listed.contains(&key.as_str()) {
            return Err(format!(
                "field {key:?} is set by the patch but missing from {RETAIN_KEYS} {keys}"
            ));
        }
    }
    result.retain(|key, _| listed.contains(&key.as_str()));
    Ok(())
}

/// Whether `key` is one of the directives rather than a field.
fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
        || key.starts_with(SET_ELEMENT_ORDER)
}

/// The `<field>` of a `<prefix>/<field>` directive key, `None` if `key` is not that directive.
fn directive_field<'a>(key: &'a str, prefix: &str) -> Result<Option<&'a str>, String> {
    let Some(rest) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    match rest.strip_prefix('/') {
        Some(field) if !field.is_empty() => Ok(Some(field)),
        _ => Err(format!(
            "invalid directive {key:?}: expected {prefix}/<field>"
        )),
    }
}

/// Puts the elements named by `order` first, in that order; the others follow in their own order.
/// Elements of a list with a merge key are named by that key, others by value.
fn reorder(items: Vec<Value>, order: &[Value], key: Option<&str>) -> Result<Vec<Value>, String> {
    let mut rest: Vec<Option<Value>> = items.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(rest.len());
    for wanted in order {
        let name = match key {
            Some(key) => wanted.get(key).ok_or_else(|| no_merge_key(wanted, key))?,
            None => wanted,
        };
        for slot in &mut rest {
            let hit = slot.as_ref().is_some_and(|item| match key {
                Some(key) => item.get(key) == Some(name),
                None => item == name,
            });
            if hit {
                ordered.extend(slot.take());
            }
        }
    }
    ordered.extend(rest.into_iter().flatten());
    Ok(ordered)
}

/// The error for a list element without the merge key of its list (apimachinery's wording).
fn no_merge_key(item: &Value, key: &str) -> String {
    format!("map: {item} does not contain declared merge key: {key}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.1",
                            "args": ["-a", "-b"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "name": "http"}],
                        }, {
                            "name": "sidecar",
                            "image": "envoy",
                        }],
                        "tolerations": [{"key": "k", "operator": "Exists"}],
                    },
                },
            },
        })
    }

    fn merge(current: &Value, patch: Value) -> Value {
        strategic_merge(current, &patch, "Deployment").expect("patch applies")
    }

    fn containers(object: &Value) -> &Value {
        &object["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn kubectl_apply_image_change_keeps_other_container_fields() {
        // What `kubectl apply` sends after the image in the manifest changed.
        let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":[{"image":"nginx:1.2","name":"web"}]}}}});
        let merged = merge(&deployment(), patch);
        let web = &containers(&merged)[0];
        assert_eq!(web["image"], "nginx:1.2");
        assert_eq!(web["env"].as_array().map(Vec::len), Some(2));
        assert_eq!(containers(&merged)[1]["name"], "sidecar");
        assert!(
            !merged["spec"]["template"]["spec"]
                .as_object()
                .is_some_and(|s| s.keys().any(|k| k.starts_with('$')))
        );
    }

    #[test]
    fn set_element_order_moves_named_elements_first() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}],
            "containers": [{"name": "new", "image": "busybox"}],
        }}}});
        let merged = merge(&deployment(), patch);
        let names: Vec<&Value> = containers(&merged)
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, ["sidecar", "new", "web"]);
    }

    #[test]
    fn set_element_order_orders_primitive_lists() {
        let patch =
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "a"], "finalizers": ["c"]}});
        let merged = merge(&deployment(), patch);
        assert_eq!(merged["metadata"]["finalizers"], json!(["c", "a", "b"]));
    }

    #[test]
    fn kubectl_label_merges_labels() {
        let merged = merge(
            &deployment(),
            json!({"metadata": {"labels": {"env": "prod"}}}),
        );
        assert_eq!(
            merged["metadata"]["labels"],
            json!({"app": "web", "tier": "front", "env": "prod"})
        );
        assert_eq!(merged["metadata"]["name"], "web");
    }

    #[test]
    fn null_deletes_a_label() {
        let merged = merge(
            &deployment(),
            json!({"metadata": {"labels": {"tier": null}}}),
        );
        assert_eq!(merged["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn null_for_a_missing_key_is_not_stored() {
        let merged = merge(
            &deployment(),
            json!({"metadata": {"annotations": {"gone": null, "kept": "x"}}}),
        );
        assert_eq!(merged["metadata"]["annotations"], json!({"kept": "x"}));
    }

    #[test]
    fn set_env_merges_by_name() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "web",
            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
        }]}}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(
            containers(&merged)[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
        );
    }

    #[test]
    fn patch_delete_removes_a_container() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(containers(&merged).as_array().map(Vec::len), Some(1));
        assert_eq!(containers(&merged)[0]["name"], "web");
    }

    #[test]
    fn patch_delete_without_merge_key_is_rejected() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}});
        let err = strategic_merge(&deployment(), &patch, "Deployment").expect_err("no merge key");
        assert!(
            err.contains("does not contain declared merge key: name"),
            "{err}"
        );
    }

    #[test]
    fn retain_keys_switches_deployment_strategy() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(merged["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn retain_keys_rejects_a_patched_key_it_does_not_list() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
        let err = strategic_merge(&deployment(), &patch, "Deployment")
            .expect_err("rollingUpdate not retained");
        assert!(err.contains("rollingUpdate"), "{err}");
    }

    #[test]
    fn delete_from_primitive_list_removes_finalizers() {
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        let merged = merge(&deployment(), patch);
        assert_eq!(merged["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn finalizers_merge_as_a_set_keeping_current_order() {
        let merged = merge(
            &deployment(),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        );
        assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let patch = json!({"spec": {"template": {"spec": {
            "tolerations": [{"key": "other", "operator": "Exists"}],
            "containers": [{"name": "web", "args": ["-c"]}],
        }}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(
            merged["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "other", "operator": "Exists"}])
        );
        assert_eq!(containers(&merged)[0]["args"], json!(["-c"]));
    }

    #[test]
    fn container_ports_merge_by_container_port() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "web",
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
        }]}}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(
            containers(&merged)[0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let service =
            json!({"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}});
        let merged = strategic_merge(&service, &patch, "Service").expect("patch applies");
        assert_eq!(
            merged["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443}])
        );
    }

    #[test]
    fn pod_and_cronjob_pod_specs_are_found() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "y"}]}});
        let merged = strategic_merge(&pod, &patch, "Pod").expect("patch applies");
        assert_eq!(
            merged["spec"]["containers"].as_array().map(Vec::len),
            Some(2)
        );

        let spec = |c: Value| json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"initContainers": c}}}}}});
        let cronjob =
            spec(json!([{"name": "init", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}]));
        let patch =
            spec(json!([{"name": "init", "volumeMounts": [{"mountPath": "/b", "name": "w"}]}]));
        let merged = strategic_merge(&cronjob, &patch, "CronJob").expect("patch applies");
        let mounts = &merged["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]
            [0]["volumeMounts"];
        assert_eq!(mounts.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn lists_of_unknown_kinds_are_atomic() {
        let object = json!({"spec": {"containers": [{"name": "a"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b"}]}});
        let merged = strategic_merge(&object, &patch, "Widget").expect("patch applies");
        assert_eq!(merged["spec"]["containers"], json!([{"name": "b"}]));
    }

    #[test]
    fn node_conditions_and_addresses_merge_by_type() {
        let node = json!({"status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        }});
        let patch = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "n1"}],
        }});
        let merged = strategic_merge(&node, &patch, "Node").expect("patch applies");
        assert_eq!(
            merged["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(merged["status"]["conditions"][1]["type"], "DiskPressure");
        assert_eq!(
            merged["status"]["addresses"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let pod = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs"}]}});
        let patch = json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2"}]}});
        let merged = strategic_merge(&pod, &patch, "Pod").expect("patch applies");
        assert_eq!(
            merged["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "rs", "controller": true}, {"uid": "2"}])
        );
    }

    #[test]
    fn patch_replace_in_a_map_replaces_it() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "only": "me"}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(merged["metadata"]["labels"], json!({"only": "me"}));
    }

    #[test]
    fn patch_replace_in_a_list_replaces_it() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "solo", "image": "busybox"},
            {"$patch": "replace"},
        ]}}}});
        let merged = merge(&deployment(), patch);
        assert_eq!(
            containers(&merged),
            &json!([{"name": "solo", "image": "busybox"}])
        );
    }

    #[test]
    fn patch_delete_in_a_map_removes_it() {
        let merged = merge(
            &deployment(),
            json!({"spec": {"strategy": {"$patch": "delete"}}}),
        );
        assert!(merged["spec"].get("strategy").is_none());
    }

    #[test]
    fn unknown_patch_directive_is_rejected() {
        let patch = json!({"metadata": {"labels": {"$patch": "foo"}}});
        let err = strategic_merge(&deployment(), &patch, "Deployment").expect_err("bad directive");
        assert_eq!(err, r#"unknown patch directive "$patch": "foo""#);
        let patch =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": 1}]}}}});
        assert!(strategic_merge(&deployment(), &patch, "Deployment").is_err());
    }

    #[test]
    fn non_object_patch_is_rejected() {
        assert!(strategic_merge(&deployment(), &json!([1]), "Deployment").is_err());
        assert!(strategic_merge(&deployment(), &json!("x"), "Deployment").is_err());
    }

    #[test]
    fn new_elements_without_merge_key_are_rejected() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}});
        let err = strategic_merge(&deployment(), &patch, "Deployment").expect_err("no merge key");
        assert_eq!(
            err,
            r#"map: {"image":"nginx"} does not contain declared merge key: name"#
        );
    }

    #[test]
    fn new_elements_are_appended_in_patch_order() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "z", "image": "z"},
            {"name": "web", "image": "nginx:2"},
            {"name": "m", "image": "m"},
        ]}}}});
        let merged = merge(&deployment(), patch);
        let names: Vec<&Value> = containers(&merged)
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, ["web", "sidecar", "z", "m"]);
    }

    #[test]
    fn directives_under_new_fields_are_not_stored() {
        let patch = json!({"spec": {
            "selector": {"$patch": "replace", "matchLabels": {"app": "web", "x": null}},
            "template": {"spec": {"volumes": [{"name": "v", "emptyDir": {"$retainKeys": ["medium"], "medium": ""}}]}},
        }});
        let merged = merge(&deployment(), patch);
        assert_eq!(
            merged["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(
            merged["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "v", "emptyDir": {"medium": ""}}])
        );
    }

    #[test]
    fn malformed_directives_are_rejected() {
        for patch in [
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"metadata": {"$setElementOrder/finalizers": {}}}),
            json!({"metadata": {"$setElementOrder": []}}),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
        ] {
            assert!(
                strategic_merge(&deployment(), &patch, "Deployment").is_err(),
                "{patch}"
            );
        }
    }

    #[test]
    fn type_changes_take_the_patch_value() {
        let merged = merge(
            &deployment(),
            json!({"spec": {"replicas": {"weird": true}, "strategy": "x"}}),
        );
        assert_eq!(merged["spec"]["replicas"], json!({"weird": true}));
        assert_eq!(merged["spec"]["strategy"], "x");
    }
}
