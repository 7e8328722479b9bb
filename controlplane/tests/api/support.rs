//! Fixtures: a [`Cluster`] (the control plane on a random port), a [`PodBuilder`], a
//! [`FakeNode`] whose daemon endpoint answers exec and attach the way the node agent does, and
//! [`Running`] controllers with [`fast_controllers`] timers, waited on with [`eventually`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use controlplane::controllers::ControllerOptions;
use controlplane::controllers::informer::Informers;
use controlplane::server::{Config, ControlPlane};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A control plane serving on `127.0.0.1:<random>`, with its own data directory.
pub struct Cluster {
    plane: ControlPlane,
    /// A client that reaches the API over the socket.
    pub client: kube::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a control plane; returns once it is ready.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plane = ControlPlane::start(Config {
            port: 0,
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        })
        .await
        .expect("control plane starts");
        let mut config = kube::Config::new(plane.url.parse().expect("url"));
        // A 503 is what some tests expect; kube would retry it for minutes.
        config.default_retry = false;
        let client = kube::Client::try_from(config).expect("client");
        Self {
            plane,
            client,
            _dir: dir,
        }
    }

    /// Pods in `default`.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Stops the control plane.
    pub async fn stop(self) {
        self.plane.stop().await;
    }
}

/// Builds a pod in `default`: `PodBuilder::named("p").container("main").node("n1")`.
pub struct PodBuilder {
    pod: Value,
    phase: Option<&'static str>,
    ready: bool,
}

impl PodBuilder {
    /// A pod with no containers yet.
    pub fn named(name: &str) -> Self {
        Self {
            pod: json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": []}}),
            phase: None,
            ready: false,
        }
    }

    /// Sets a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.pod["metadata"]["labels"][key] = json!(value);
        self
    }

    /// Adds an ownerReference (`controller: true`).
    pub fn owner(
        mut self,
        api_version: &str,
        kind: &str,
        name: &str,
        uid: &str,
        block: bool,
    ) -> Self {
        let owners = self.pod["metadata"]
            .as_object_mut()
            .expect("metadata")
            .entry("ownerReferences")
            .or_insert(json!([]));
        owners.as_array_mut().expect("a list").push(json!({"apiVersion": api_version,
            "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": block}));
        self
    }

    /// Adds a toleration.
    pub fn toleration(mut self, toleration: Value) -> Self {
        let list = self.pod["spec"]
            .as_object_mut()
            .expect("spec")
            .entry("tolerations")
            .or_insert(json!([]));
        list.as_array_mut().expect("a list").push(toleration);
        self
    }

    /// Makes the pod Running and Ready after creating it (as its node agent would).
    pub fn ready(mut self) -> Self {
        self.ready = true;
        self
    }

    /// Adds a container running `wasmkube/toolbox`.
    pub fn container(mut self, name: &str) -> Self {
        self.pod["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": name, "image": "wasmkube/toolbox:1"}));
        self
    }

    /// Puts the pod on a node (as the binding would).
    pub fn node(mut self, node: &str) -> Self {
        self.pod["spec"]["nodeName"] = json!(node);
        self
    }

    /// Sets an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.pod["metadata"]["annotations"][key] = json!(value);
        self
    }

    /// Sets `status.phase` after creating it.
    pub fn phase(mut self, phase: &'static str) -> Self {
        self.phase = Some(phase);
        self
    }

    /// Creates the pod.
    pub async fn create(self, cluster: &Cluster) -> Pod {
        let pod: Pod = serde_json::from_value(self.pod).expect("a pod");
        let pods = cluster.pods();
        let created = pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("pod created");
        let status = match (self.phase, self.ready) {
            (None, false) => return created,
            (Some(phase), false) => json!({"status": {"phase": phase}}),
            (phase, true) => json!({"status": {"phase": phase.unwrap_or("Running"),
                "conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        };
        pods.patch_status(
            created.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await
        .expect("status set")
    }
}

/// A stand-in for a node agent's daemon endpoint: a Node object pointing at a local server
/// that answers `GET /exec|attach/{ns}/{pod}/{container}` with a WebSocket that writes
/// `"{verb} {ns}/{pod}/{container}?{query}"` on stdout and then a Success status. A container
/// named `stopped` is refused with a 404 Status, as a container that is not running.
pub struct FakeNode {
    stop: CancellationToken,
}

impl FakeNode {
    /// Starts the endpoint and registers the Node `name` at it.
    pub async fn start(cluster: &Cluster, name: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = Router::new()
            .route("/exec/{ns}/{pod}/{container}", get(exec))
            .route("/attach/{ns}/{pod}/{container}", get(attach));
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
                .expect("fake node serves");
        });
        register_node(cluster, name, addr).await;
        Self { stop }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Creates the Node `name` whose daemon endpoint is `addr`.
pub async fn register_node(cluster: &Cluster, name: &str, addr: SocketAddr) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": addr.ip().to_string()}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": addr.port()}}}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("node status set");
}

async fn exec(
    Path(target): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    answer("exec", target, query, ws)
}

async fn attach(
    Path(target): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    answer("attach", target, query, ws)
}

fn answer(
    verb: &'static str,
    (ns, pod, container): (String, String, String),
    query: Option<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if container == "stopped" {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "NotFound", "code": 404,
            "message": format!("container {container} is not running")});
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    let line = format!(
        "{verb} {ns}/{pod}/{container}?{}",
        query.unwrap_or_default()
    );
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| speak(socket, line))
}

/// Writes `line` on the stdout channel, then a Success status on the error channel.
async fn speak(mut socket: WebSocket, line: String) {
    let mut stdout = vec![1u8];
    stdout.extend(line.as_bytes());
    let mut status = vec![3u8];
    status.extend(
        json!({"metadata": {}, "status": "Success"})
            .to_string()
            .as_bytes(),
    );
    for frame in [stdout, status] {
        if socket.send(Message::Binary(frame.into())).await.is_err() {
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// Controller timers shortened for tests: a node is silent after 1 s, checked every 100 ms.
pub fn fast_controllers() -> ControllerOptions {
    ControllerOptions {
        node_monitor_grace_period: Duration::from_secs(1),
        node_monitor_period: Duration::from_millis(100),
        resync: Duration::from_secs(2),
        job_backoff_base: Duration::from_millis(10),
        job_backoff_max: Duration::from_millis(50),
        pvclaimbinder_sync_period: Duration::from_millis(200),
        ..ControllerOptions::default()
    }
}

/// A controller running against a [`Cluster`] (over its socket) until dropped:
/// `let _gc = Running::start(&cluster, garbage_collector::run)`.
pub struct Running {
    stop: CancellationToken,
}

impl Running {
    /// Starts `run(client, fast_controllers(), stop)`.
    pub fn start<F, Fut>(cluster: &Cluster, run: F) -> Self
    where
        F: FnOnce(kube::Client, ControllerOptions, CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        tokio::spawn(run(
            cluster.client.clone(),
            fast_controllers(),
            stop.clone(),
        ));
        Self { stop }
    }
}

impl Running {
    /// Starts `run(client, informers, fast_controllers(), stop)` for a controller that
    /// follows the shared pod watch.
    pub fn informed<F, Fut>(cluster: &Cluster, run: F) -> Self
    where
        F: FnOnce(kube::Client, Informers, ControllerOptions, CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let informers = Informers::start(&cluster.client, &stop);
        tokio::spawn(informers.clone().then(
            stop.clone(),
            run(
                cluster.client.clone(),
                informers,
                fast_controllers(),
                stop.clone(),
            ),
        ));
        Self { stop }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` every 50 ms until it gives `Ok`, for at most `limit`; panics with the last
/// `Err` after that.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("still not so after {limit:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Asserts a `Status`'s code, reason and message.
pub fn assert_status(
    status: &kube::core::Status,
    code: u16,
    reason: &str,
    message: impl AsRef<str>,
) {
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (code, reason, message.as_ref()),
        "{status:?}"
    );
}

/// The Status of a failed call, or a panic naming what happened instead.
pub fn api_error<T>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("expected an API error, got {other:?}"),
        Ok(_) => panic!("expected an API error, got success"),
    }
}
