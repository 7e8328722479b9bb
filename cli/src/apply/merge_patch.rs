//! The three-way JSON merge patch (RFC 7386) that client-side `apply` sends.
//!
//! This is kubectl's `jsonmergepatch.CreateThreeWayJSONMergePatch`, which kubectl itself uses
//! for kinds it has no Go struct for. kubectl prefers a strategic merge patch for built-in
//! kinds; we always send a merge patch, whose only difference is that lists (containers, ports,
//! env) are replaced as a whole instead of merged by key. Since the list in the manifest *is*
//! the desired list, the result is the same except that list items added by someone other
//! than `apply` are dropped when `apply` changes that list.

use serde_json::{Map, Value};

/// The patch that takes the live object `current` to `modified` (the new manifest, with its
/// last-applied annotation), deleting only fields that `original` (the previous last-applied
/// configuration) had and `modified` no longer has. Fields the server or other clients set are
/// kept. An empty object means "unchanged".
pub fn three_way(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    let empty = Value::Object(Map::new());
    // additions and changes: what differs between the live object and the manifest, minus the
    // deletions (which would remove everything the server added)
    let add_and_change = keep_or_delete_null(create(current, modified), false);
    // deletions: what the user removed from the manifest since the last apply
    let deletions = keep_or_delete_null(create(original.unwrap_or(&empty), modified), true);
    merge_patches(deletions, add_and_change)
}

/// RFC 7386 patch turning `from` into `to`: changed keys get `to`'s value (objects are diffed
/// recursively, arrays replaced), keys missing from `to` get `null`.
pub fn create(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => Value::Object(diff_objects(from, to)),
        (from, to) if from == to => Value::Object(Map::new()),
        (_, to) => to.clone(),
    }
}

fn diff_objects(from: &Map<String, Value>, to: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, to_val) in to {
        match from.get(key) {
            Some(from_val) if from_val == to_val => {}
            Some(Value::Object(f)) if to_val.is_object() => {
                if let Value::Object(t) = to_val {
                    let sub = diff_objects(f, t);
                    if !sub.is_empty() {
                        patch.insert(key.clone(), Value::Object(sub));
                    }
                }
            }
            _ => {
                patch.insert(key.clone(), to_val.clone());
            }
        }
    }
    for key in from.keys() {
        if !to.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

/// Keeps only the `null`s (deletions) of a patch, or only everything else, dropping objects
/// that end up empty. An explicitly empty object in the patch is a value, not an empty patch.
fn keep_or_delete_null(patch: Value, keep_null: bool) -> Value {
    let Value::Object(map) = patch else {
        return if keep_null {
            Value::Object(Map::new())
        } else {
            patch
        };
    };
    let mut out = Map::new();
    for (key, val) in map {
        match val {
            Value::Null if keep_null => {
                out.insert(key, Value::Null);
            }
            Value::Null => {}
            Value::Object(sub) if sub.is_empty() => {
                if !keep_null {
                    out.insert(key, Value::Object(sub));
                }
            }
            Value::Object(sub) => {
                if let Value::Object(filtered) = keep_or_delete_null(Value::Object(sub), keep_null)
                    && !filtered.is_empty()
                {
                    out.insert(key, Value::Object(filtered));
                }
            }
            // lists and scalars are replaced whole in a merge patch
            other => {
                if !keep_null {
                    out.insert(key, other);
                }
            }
        }
    }
    Value::Object(out)
}

/// Combines two merge patches into one, keeping the `null`s of both (json-patch's
/// `MergeMergePatches`).
fn merge_patches(mut base: Value, patch: Value) -> Value {
    match (&mut base, patch) {
        (Value::Object(base_map), Value::Object(patch_map)) => {
            for (key, val) in patch_map {
                match (base_map.get_mut(key.as_str()), val) {
                    (Some(cur @ Value::Object(_)), val @ Value::Object(_)) => {
                        let merged = merge_patches(cur.take(), val);
                        *cur = merged;
                    }
                    (_, val) => {
                        base_map.insert(key, val);
                    }
                }
            }
            base
        }
        (_, patch) => patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: Option<u32>) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "annotations": {}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}
            }
        });
        if let (Some(r), Some(spec)) = (replicas, d["spec"].as_object_mut()) {
            spec.insert("replicas".into(), json!(r));
        }
        d
    }

    /// What the server holds after applying `applied`: defaults, status and metadata added.
    fn live(applied: &Value) -> Value {
        let mut live = applied.clone();
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["labels"] = json!({"added-by": "someone-else"});
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        if live["spec"]["replicas"].is_null() {
            live["spec"]["replicas"] = json!(1);
        }
        live["status"] = json!({"replicas": 1});
        live
    }

    #[test]
    fn unchanged_manifest_gives_an_empty_patch() {
        let applied = deployment("nginx", Some(3));
        let patch = three_way(Some(&applied), &applied, &live(&applied));
        assert_eq!(patch, json!({}));
    }

    #[test]
    fn changed_field_is_patched_and_server_fields_are_kept() {
        let before = deployment("nginx", Some(3));
        let after = deployment("httpd", Some(3));
        let patch = three_way(Some(&before), &after, &live(&before));
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "httpd"}]}}}})
        );
    }

    #[test]
    fn field_removed_from_the_manifest_is_deleted() {
        let before = deployment("nginx", Some(3));
        let after = deployment("nginx", None);
        let patch = three_way(Some(&before), &after, &live(&before));
        assert_eq!(patch, json!({"spec": {"replicas": null}}));
    }

    #[test]
    fn field_never_applied_is_not_deleted() {
        // replicas was defaulted by the server, never in any manifest: apply leaves it alone
        let applied = deployment("nginx", None);
        let patch = three_way(Some(&applied), &applied, &live(&applied));
        assert_eq!(patch, json!({}));
    }

    #[test]
    fn without_last_applied_nothing_is_deleted() {
        let applied = deployment("nginx", None);
        let mut current = live(&deployment("nginx", Some(3)));
        current["spec"]["paused"] = json!(true);
        let patch = three_way(None, &applied, &current);
        assert_eq!(patch, json!({}));
    }

    #[test]
    fn added_map_is_sent_and_emptied_map_loses_applied_keys() {
        let before = json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        let after = json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {}});
        let current = json!({"metadata": {"name": "a", "uid": "1"}, "data": {"k": "v"}});
        let patch = three_way(Some(&before), &after, &current);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"x": "y"}}, "data": {"k": null}})
        );
    }

    #[test]
    fn applying_the_patch_reaches_the_manifest() {
        let before = deployment("nginx", Some(3));
        let mut after = deployment("httpd", None);
        after["metadata"]["labels"] = json!({"tier": "front"});
        let mut current = live(&before);
        let patch = three_way(Some(&before), &after, &current);
        json_patch::merge(&mut current, &patch);
        assert_eq!(
            current["spec"]["template"]["spec"]["containers"][0]["image"],
            "httpd"
        );
        assert!(current["spec"].get("replicas").is_none());
        assert_eq!(
            current["metadata"]["labels"],
            json!({"added-by": "someone-else", "tier": "front"})
        );
        assert_eq!(current["status"], json!({"replicas": 1}));
    }

    #[test]
    fn create_diffs_recursively_and_replaces_arrays() {
        assert_eq!(
            create(
                &json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "gone": 1}),
                &json!({"a": {"b": 1, "c": 3}, "l": [1]})
            ),
            json!({"a": {"c": 3}, "l": [1], "gone": null})
        );
    }
}
