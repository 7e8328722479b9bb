//! `pods/ephemeralcontainers`, the subresource `kubectl debug` writes.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use crate::support::{Cluster, PodBuilder, api_error, assert_status};

/// What `kubectl debug -it p --image=wasmkube/toolbox` sends: a two-way strategic merge patch
/// of the pod with one more ephemeral container.
fn debug_patch(name: &str) -> Value {
    json!({"spec": {
        "$setElementOrder/ephemeralContainers": [{"name": name}],
        "ephemeralContainers": [{"name": name, "image": "wasmkube/toolbox",
            "imagePullPolicy": "IfNotPresent", "resources": {}, "stdin": true, "tty": true,
            "terminationMessagePolicy": "File"}]}})
}

fn ephemeral_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .map(|l| l.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn discovery_lists_the_subresource() {
    let cluster = Cluster::start().await;
    let request = axum::http::Request::get("/api/v1")
        .body(Vec::new())
        .expect("request");
    let list: Value = cluster.client.request(request).await.expect("discovery");
    let entry = list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "pods/ephemeralcontainers")
        .expect("pods/ephemeralcontainers is listed")
        .clone();
    assert_eq!(entry["kind"], "Pod");
    assert_eq!(entry["verbs"], json!(["get", "patch", "update"]));
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_debug_patch_adds_a_container_and_watchers_see_it() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    let created = PodBuilder::named("p")
        .container("main")
        .node("n1")
        .create(&cluster)
        .await;
    let version = created
        .metadata
        .resource_version
        .clone()
        .expect("a version");
    let mut events = pods
        .watch(&WatchParams::default().fields("metadata.name=p"), &version)
        .await
        .expect("watch")
        .boxed();
    let patched = pods
        .patch_ephemeral_containers(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(debug_patch("debugger")),
        )
        .await
        .expect("patch accepted");
    assert_eq!(ephemeral_names(&patched), vec!["debugger"]);
    assert_ne!(patched.metadata.resource_version, Some(version));
    let debugger = &patched
        .spec
        .as_ref()
        .expect("spec")
        .ephemeral_containers
        .as_ref()
        .expect("list")[0];
    assert_eq!(debugger.stdin, Some(true));
    assert_eq!(
        debugger.termination_message_path.as_deref(),
        Some("/dev/termination-log"),
        "ephemeral containers are defaulted like the others"
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.try_next())
        .await
        .expect("an event in time")
        .expect("a good event")
        .expect("the watch is open");
    match event {
        WatchEvent::Modified(pod) => assert_eq!(ephemeral_names(&pod), vec!["debugger"]),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    let read = pods.get_ephemeral_containers("p").await.expect("get");
    assert_eq!(ephemeral_names(&read), vec!["debugger"]);
    cluster.stop().await;
}

#[tokio::test]
async fn only_ephemeral_containers_change() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    let mut pod = PodBuilder::named("p")
        .container("main")
        .node("n1")
        .create(&cluster)
        .await;
    pod.metadata.labels = Some([("sneaky".to_string(), "yes".to_string())].into());
    let mut spec = pod.spec.clone().expect("spec");
    spec.containers[0].image = Some("other:2".into());
    spec.ephemeral_containers = Some(vec![
        serde_json::from_value(json!({"name": "debugger", "image": "wasmkube/toolbox"}))
            .expect("container"),
    ]);
    pod.spec = Some(spec);
    let replaced = pods
        .replace_ephemeral_containers("p", &PostParams::default(), &pod)
        .await
        .expect("update accepted");
    assert_eq!(ephemeral_names(&replaced), vec!["debugger"]);
    assert_eq!(replaced.metadata.labels, None);
    assert_eq!(
        replaced.spec.expect("spec").containers[0].image.as_deref(),
        Some("wasmkube/toolbox:1")
    );
    cluster.stop().await;
}

#[tokio::test]
async fn existing_ephemeral_containers_may_not_be_removed() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    PodBuilder::named("p")
        .container("main")
        .create(&cluster)
        .await;
    let params = PatchParams::default();
    pods.patch_ephemeral_containers("p", &params, &Patch::Strategic(debug_patch("debugger")))
        .await
        .expect("added");
    let status = api_error(
        pods.patch_ephemeral_containers(
            "p",
            &params,
            &Patch::Merge(json!({"spec": {"ephemeralContainers": []}})),
        )
        .await,
    );
    assert_status(
        &status,
        422,
        "Invalid",
        "Pod \"p\" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be removed",
    );
    cluster.stop().await;
}

#[tokio::test]
async fn ephemeral_container_names_must_be_unique() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    PodBuilder::named("p")
        .container("main")
        .create(&cluster)
        .await;
    let status = api_error(
        pods.patch_ephemeral_containers(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(debug_patch("main")),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Pod \"p\" is invalid: spec.ephemeralContainers[0].name: Duplicate value: \"main\""
    );
    cluster.stop().await;
}

#[tokio::test]
async fn ephemeral_containers_may_not_set_ports() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    PodBuilder::named("p")
        .container("main")
        .create(&cluster)
        .await;
    let patch = json!({"spec": {"ephemeralContainers": [{"name": "d", "image": "wasmkube/toolbox",
        "ports": [{"containerPort": 8080}]}]}});
    let status = api_error(
        pods.patch_ephemeral_containers("p", &PatchParams::default(), &Patch::Strategic(patch))
            .await,
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Pod \"p\" is invalid: spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn the_pod_itself_may_not_add_ephemeral_containers() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    let with_one: Pod = serde_json::from_value(json!({"metadata": {"name": "q"},
        "spec": {"containers": [{"name": "main", "image": "wasmkube/toolbox:1"}],
            "ephemeralContainers": [{"name": "d", "image": "wasmkube/toolbox"}]}}))
    .expect("pod");
    let status = api_error(pods.create(&PostParams::default(), &with_one).await);
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "Pod \"q\" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create"
    );
    PodBuilder::named("p")
        .container("main")
        .create(&cluster)
        .await;
    let status = api_error(
        pods.patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(debug_patch("d")),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec: Forbidden: pod updates may not change fields"),
        "{}",
        status.message
    );
    cluster.stop().await;
}
