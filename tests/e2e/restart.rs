//! Durability: objects survive a graceful stop (SIGTERM) and a restart on the same data directory,
//! unchanged down to their uid and resourceVersion. Uses raw HTTP so it needs no client.

use serde_json::{Value, json};

use crate::support::Cluster;

fn create(c: &Cluster, path: &str, object: Value) -> Value {
    let resp = c.http(
        "POST",
        path,
        Some("application/json"),
        object.to_string().as_bytes(),
    );
    assert_eq!(resp.status, 201, "POST {path}: {resp:?}");
    resp.json()
}

fn get(c: &Cluster, path: &str) -> Value {
    let resp = c.http("GET", path, None, b"");
    assert_eq!(resp.status, 200, "GET {path}: {resp:?}");
    resp.json()
}

/// The uid and resourceVersion of an object.
fn identity(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    let uid = meta["uid"].as_str().expect("metadata.uid").to_string();
    let rv = meta["resourceVersion"]
        .as_str()
        .expect("metadata.resourceVersion")
        .to_string();
    (uid, rv)
}

#[test]
fn objects_survive_a_graceful_restart() {
    let mut c = Cluster::start();
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let deployments = "/apis/apps/v1/namespaces/default/deployments";

    let cm = create(
        &c,
        configmaps,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "durable", "labels": {"keep": "yes"}},
               "data": {"answer": "42"}}),
    );
    let deploy = create(
        &c,
        deployments,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web"},
               "spec": {"replicas": 2,
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}}),
    );
    let ns = create(
        &c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kept"}}),
    );
    // Controllers may write a Deployment's status at any time, so its resourceVersion is not
    // compared; nothing else writes ConfigMaps or live Namespaces.
    assert_eq!(ns["metadata"]["name"], "kept");
    let ns = get(&c, "/api/v1/namespaces/kept");
    let before = [identity(&cm), identity(&ns)];
    let deploy_uid = identity(&deploy).0;
    let old_url = c.url().to_string();

    let status = c.stop();
    assert!(
        status.success(),
        "SIGTERM should shut down cleanly, got {status:?}"
    );
    assert!(
        c.data_dir().join("state.redb").is_file(),
        "the store lives in DATA_DIR/state.redb"
    );

    c.restart();
    // A new random port, and the kubeconfig follows it.
    let kubeconfig = crate::support::kubeconfig_server(&c.kubeconfig());
    assert_eq!(
        kubeconfig.as_deref(),
        Some(c.url()),
        "kubeconfig after restart (was {old_url})"
    );

    let cm = get(&c, &format!("{configmaps}/durable"));
    let deploy = get(&c, &format!("{deployments}/web"));
    let ns = get(&c, "/api/v1/namespaces/kept");
    assert_eq!([identity(&cm), identity(&ns)], before);
    assert_eq!(identity(&deploy).0, deploy_uid);
    assert_eq!(cm["data"]["answer"], "42");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["metadata"]["generation"], 1);

    // Lists and selectors still see them.
    let list = get(&c, &format!("{configmaps}?labelSelector=keep%3Dyes"));
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["durable"]);

    // The revision carries on: a new write never reuses an old resourceVersion.
    let fresh = create(
        &c,
        configmaps,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}}),
    );
    let (_, fresh_rv) = identity(&fresh);
    for (_, rv) in &before {
        assert_ne!(&fresh_rv, rv, "resourceVersion reused after restart");
        if let (Ok(old), Ok(new)) = (rv.parse::<u64>(), fresh_rv.parse::<u64>()) {
            assert!(
                new > old,
                "resourceVersion went backwards: {old} then {new}"
            );
        }
    }
}
