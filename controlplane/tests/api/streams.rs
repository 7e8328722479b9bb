//! `pods/exec` and `pods/attach`: the checks the API server makes, and the relay to the node.

use std::net::SocketAddr;

use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kube::api::AttachParams;
use tokio::io::AsyncReadExt;

use crate::support::{Cluster, FakeNode, PodBuilder, api_error, assert_status, register_node};

const EXEC_PATH: &str = "/api/v1/namespaces/default/pods/p/exec";

#[tokio::test]
async fn exec_into_a_missing_pod_is_not_found() {
    let cluster = Cluster::start().await;
    let status = api_error(
        cluster
            .pods()
            .exec("nope", ["ls"], &AttachParams::default())
            .await,
    );
    assert_status(&status, 404, "NotFound", "pods \"nope\" not found");
    cluster.stop().await;
}

#[tokio::test]
async fn exec_needs_a_host() {
    let cluster = Cluster::start().await;
    PodBuilder::named("p")
        .container("main")
        .create(&cluster)
        .await;
    let status = api_error(
        cluster
            .pods()
            .exec("p", ["ls"], &AttachParams::default())
            .await,
    );
    assert_status(
        &status,
        400,
        "BadRequest",
        "pod p does not have a host assigned",
    );
    cluster.stop().await;
}

#[tokio::test]
async fn exec_and_attach_name_a_valid_container() {
    let cluster = Cluster::start().await;
    PodBuilder::named("p")
        .container("a")
        .container("b")
        .node("n1")
        .create(&cluster)
        .await;
    let pods = cluster.pods();
    let status = api_error(
        pods.exec("p", ["ls"], &AttachParams::default().container("zz"))
            .await,
    );
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "container zz is not valid for pod p");
    let status = api_error(pods.attach("p", &AttachParams::default()).await);
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "a container name must be specified for pod p, choose one of: [a b]"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn exec_needs_a_command() {
    let cluster = Cluster::start().await;
    PodBuilder::named("p")
        .container("main")
        .node("n1")
        .create(&cluster)
        .await;
    let request = Request::get(format!("{EXEC_PATH}?stdout=true"))
        .body(Vec::new())
        .expect("request");
    let status = api_error(cluster.client.connect(request).await.map(|_| ()));
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "you must specify at least 1 command");
    cluster.stop().await;
}

#[tokio::test]
async fn exec_needs_an_upgrade_request() {
    let cluster = Cluster::start().await;
    PodBuilder::named("p")
        .container("main")
        .node("n1")
        .create(&cluster)
        .await;
    let request = Request::post(format!("{EXEC_PATH}?command=ls&stdout=true"))
        .body(Vec::new())
        .expect("request");
    let status = api_error(cluster.client.request_text(request).await);
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "Upgrade request required");
    cluster.stop().await;
}

#[tokio::test]
async fn completed_pods_take_no_exec_or_attach() {
    let cluster = Cluster::start().await;
    PodBuilder::named("p")
        .container("main")
        .node("n1")
        .phase("Succeeded")
        .create(&cluster)
        .await;
    let pods = cluster.pods();
    let status = api_error(pods.exec("p", ["ls"], &AttachParams::default()).await);
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "cannot exec into a container in a completed pod; current phase is Succeeded"
    );
    let status = api_error(pods.attach("p", &AttachParams::default()).await);
    assert_eq!(
        status.message,
        "cannot attach to a container in a completed pod; current phase is Succeeded"
    );
    cluster.stop().await;
}

/// Sends `POST path` as kubectl's SPDY fallback does; returns the status code and Status.
async fn spdy(cluster: &Cluster, path: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::post(path)
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", "v5.channel.k8s.io")
        .body(kube::client::Body::empty())
        .expect("request");
    let response = cluster.client.send(request).await.expect("an answer");
    let code = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (code, serde_json::from_slice(&body).expect("a Status"))
}

#[tokio::test]
async fn spdy_is_refused_with_the_protocols_we_speak() {
    let cluster = Cluster::start().await;
    let _node = FakeNode::start(&cluster, "n1").await;
    PodBuilder::named("p")
        .container("main")
        .node("n1")
        .create(&cluster)
        .await;
    let (code, status) = spdy(&cluster, &format!("{EXEC_PATH}?command=ls&stdout=true")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("v5.channel.k8s.io") && message.contains("SPDY/3.1 is not supported"),
        "{message}"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn exec_is_relayed_to_the_node() {
    let cluster = Cluster::start().await;
    let _node = FakeNode::start(&cluster, "n1").await;
    PodBuilder::named("p")
        .container("main")
        .node("n1")
        .create(&cluster)
        .await;
    let mut process = cluster
        .pods()
        .exec(
            "p",
            ["echo", "hi there"],
            &AttachParams::default().stderr(false),
        )
        .await
        .expect("exec upgrades");
    let mut stdout = process.stdout().expect("stdout");
    let status = process.take_status().expect("status");
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.expect("stdout read");
    assert!(
        out.starts_with("exec default/p/main?") && out.contains("command=echo&command=hi"),
        "{out}"
    );
    let status = status.await.expect("a status");
    assert_eq!(status.status.as_deref(), Some("Success"));
    process.join().await.expect("stream ends cleanly");
    cluster.stop().await;
}

#[tokio::test]
async fn attach_goes_to_the_default_container() {
    let cluster = Cluster::start().await;
    let _node = FakeNode::start(&cluster, "n1").await;
    PodBuilder::named("p")
        .container("a")
        .container("b")
        .annotation("kubectl.kubernetes.io/default-container", "b")
        .node("n1")
        .create(&cluster)
        .await;
    let mut process = cluster
        .pods()
        .attach("p", &AttachParams::default().stderr(false))
        .await
        .expect("attach upgrades");
    let mut out = String::new();
    let mut stdout = process.stdout().expect("stdout");
    stdout.read_to_string(&mut out).await.expect("stdout read");
    assert!(out.starts_with("attach default/p/b?"), "{out}");
    process.join().await.expect("stream ends cleanly");
    cluster.stop().await;
}

// kubectl retries with SPDY after any failed WebSocket handshake and shows only the retry's
// error: the node's refusal must come back for it, not "SPDY is not supported".
#[tokio::test]
async fn the_nodes_refusal_is_passed_through_and_given_to_the_spdy_retry() {
    let cluster = Cluster::start().await;
    let _node = FakeNode::start(&cluster, "n1").await;
    PodBuilder::named("p")
        .container("main")
        .container("stopped")
        .node("n1")
        .create(&cluster)
        .await;
    let status = api_error(
        cluster
            .pods()
            .exec("p", ["ls"], &AttachParams::default().container("stopped"))
            .await,
    );
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "container stopped is not running");
    let (code, retry) = spdy(
        &cluster,
        &format!("{EXEC_PATH}?command=ls&stdout=true&container=stopped"),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(retry["message"], "container stopped is not running");
    cluster.stop().await;
}

#[tokio::test]
async fn an_unreachable_node_is_unavailable() {
    let cluster = Cluster::start().await;
    // A port nothing listens on: bound, then released.
    let addr: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address")
    };
    register_node(&cluster, "gone", addr).await;
    PodBuilder::named("p")
        .container("main")
        .node("gone")
        .create(&cluster)
        .await;
    let status = api_error(
        cluster
            .pods()
            .exec("p", ["ls"], &AttachParams::default())
            .await,
    );
    assert_eq!(status.code, 503);
    assert!(
        status
            .message
            .starts_with("cannot reach the node agent of gone"),
        "{}",
        status.message
    );
    cluster.stop().await;
}
