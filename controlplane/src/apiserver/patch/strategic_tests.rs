//! Tests of the parent module.
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
    let patch =
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
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
    let service = json!({"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
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
    let patch = spec(json!([{"name": "init", "volumeMounts": [{"mountPath": "/b", "name": "w"}]}]));
    let merged = strategic_merge(&cronjob, &patch, "CronJob").expect("patch applies");
    let mounts = &merged["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"];
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
    let patch =
        json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2"}]}});
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
