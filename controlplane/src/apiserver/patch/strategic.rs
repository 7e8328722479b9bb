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
#[path = "strategic_tests.rs"]
mod tests;
