//! Starting and stopping the control plane: open the store, serve the API, create the objects
//! every cluster has (the four system namespaces, the `kubernetes` Service), write the
//! kubeconfig and run the built-in controllers. The image store lives in `DATA_DIR/images`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::apiserver::error::ApiError;
use crate::apiserver::request::{Query, Target};
use crate::apiserver::{self, ApiState, Options, objects};
use crate::controllers;
use crate::images::{DEFAULT_MAX_BLOB, ImageStore};
use crate::store::Store;
use crate::store::redb::RedbStore;

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data dir could not be created.
    #[error("cannot create data dir {path}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store file could not be opened.
    #[error("cannot open the store {path} (is another wasmkube using this --data-dir?)")]
    StoreOpen {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::store::Error,
    },
    /// The store failed while creating the system objects.
    #[error("store error")]
    Store(#[from] crate::store::Error),
    /// The API port could not be bound.
    #[error("cannot listen on {address} (pick another --port, or 0 for any free one)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An object every cluster has could not be created.
    #[error("cannot create the {kind} every cluster has: {message}")]
    Bootstrap {
        /// Its kind.
        kind: String,
        /// The API's message.
        message: String,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write the kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image store's directory could not be prepared.
    #[error("cannot open the image store {path}")]
    Images {
        /// The image store's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::images::Error,
    },
    /// `/readyz` never answered.
    #[error("the API server at {0} did not become ready")]
    NotReady(SocketAddr),
}

/// The namespaces every cluster starts with.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// How to run the control plane.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address the API listens on.
    pub address: IpAddr,
    /// The port (`0`: any free one).
    pub port: u16,
    /// Where the store file and the kubeconfig live.
    pub data_dir: PathBuf,
    /// API server tunables (watch bookmarks and lifetime).
    pub bookmark_interval: Duration,
    /// The longest a watch stays open without `timeoutSeconds`.
    pub max_watch: Duration,
    /// How often a terminating namespace with contents left is re-examined.
    pub namespace_retry: Duration,
    /// The pod address range; each node gets a /16 of it.
    pub cluster_cidr: crate::registry::ClusterCidr,
    /// The Service address range (`--service-cluster-ip-range`).
    pub service_cidr: crate::registry::ServiceCidr,
    /// How often node agents are scraped for `metrics.k8s.io` (`--metric-resolution`).
    pub metric_resolution: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let options = Options::default();
        Self {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 6443,
            data_dir: default_data_dir(),
            bookmark_interval: options.bookmark_interval,
            max_watch: options.max_watch,
            namespace_retry: Duration::from_secs(1),
            cluster_cidr: crate::registry::ClusterCidr::default(),
            service_cidr: crate::registry::ServiceCidr::default(),
            metric_resolution: options.metric_resolution,
        }
    }
}

/// `${XDG_DATA_HOME:-~/.local/share}/wasmkube`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("wasmkube")
}

/// A running control plane.
pub struct ControlPlane {
    /// The API's URL (`http://127.0.0.1:6443`).
    pub url: String,
    /// The kubeconfig written for it.
    pub kubeconfig: PathBuf,
    /// Shared API state (the store, the registry).
    pub state: Arc<ApiState>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ControlPlane {
    /// Opens the store, binds the port, creates the system objects and starts serving; returns
    /// once `/readyz` answers.
    pub async fn start(config: Config) -> Result<Self, Error> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let db = config.data_dir.join("state.redb");
        let store = {
            let path = db.clone();
            tokio::task::spawn_blocking(move || RedbStore::open(&path))
                .await
                .map_err(|e| crate::store::Error::Backend(format!("store open task failed: {e}")))
                .and_then(|r| r)
                .map_err(|source| Error::StoreOpen {
                    path: db.clone(),
                    source,
                })?
        };
        let image_dir = config.data_dir.join("images");
        let images = ImageStore::open(image_dir.clone(), DEFAULT_MAX_BLOB)
            .await
            .map_err(|source| Error::Images {
                path: image_dir.clone(),
                source,
            })?;
        let address = SocketAddr::new(config.address, config.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| Error::Bind { address, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Bind { address, source })?;
        let url = format!("http://{local}");
        let shutdown = CancellationToken::new();
        let options = Options {
            bookmark_interval: config.bookmark_interval,
            max_watch: config.max_watch,
            server_address: local.to_string(),
            cluster_cidr: config.cluster_cidr,
            service_cidr: config.service_cidr,
            image_dir: Some(image_dir),
            max_image_blob: DEFAULT_MAX_BLOB,
            metric_resolution: config.metric_resolution,
        };
        let store: Arc<dyn Store> = Arc::new(store);
        let state = ApiState::with_images(store, options, shutdown.clone(), images);
        bootstrap(&state, local).await?;
        let kubeconfig = config.data_dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &url)?;

        let app = apiserver::router(state.clone());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "API server stopped");
            }
        });
        let namespaces = tokio::spawn(controllers::namespace::run(
            state.clone(),
            config.namespace_retry,
        ));
        let metrics = tokio::spawn(apiserver::metrics::run(
            state.clone(),
            config.metric_resolution,
        ));
        wait_ready(local).await?;
        Ok(Self {
            url,
            kubeconfig,
            state,
            shutdown,
            tasks: vec![server, namespaces, metrics],
        })
    }

    /// A kube client that reaches this API server in-process, without a socket (the same
    /// request path as any client; ARCHITECTURE D5).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(apiserver::router(self.state.clone()), "default")
    }

    /// Starts the scheduler (an API client that binds pending pods to nodes), as
    /// `wasmkube server` and `wasmkube up` do.
    pub fn start_scheduler(&mut self, options: crate::scheduler::SchedulerOptions) {
        let task = crate::scheduler::run(self.client(), options, self.shutdown.clone());
        self.tasks.push(tokio::spawn(task));
    }

    /// Starts the controller manager's controllers (ReplicaSet and ReplicationController,
    /// Deployment, StatefulSet, DaemonSet, Job, CronJob, garbage collector, pod GC, node
    /// lifecycle, disruption, endpoints, volumes, HPA), each an API client like any other, as
    /// `wasmkube server` and `wasmkube up` do.
    pub fn start_controllers(&mut self, options: controllers::ControllerOptions) {
        let stop = &self.shutdown;
        let client = self.client();
        // One watch of pods for every controller that follows them; those start once it has
        // listed.
        let informers = controllers::informer::Informers::start(&client, stop);
        macro_rules! spawn {
            (informed: $($informed:ident),*; plain: $($plain:ident),*) => {
                [
                    $(tokio::spawn(informers.clone().then(
                        stop.clone(),
                        controllers::$informed::run(
                            client.clone(),
                            informers.clone(),
                            options.clone(),
                            stop.clone(),
                        ),
                    )),)*
                    $(tokio::spawn(controllers::$plain::run(
                        client.clone(),
                        options.clone(),
                        stop.clone(),
                    )),)*
                ]
            };
        }
        let tasks = spawn!(
            informed: replicaset, node_lifecycle, disruption, statefulset, daemonset, job,
                endpoints, volume, hpa, podgc;
            plain: deployment, garbage_collector, cronjob
        );
        self.tasks.extend(tasks);
    }

    /// A token that stops the control plane when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops serving (open watches end, in-flight requests finish) and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// Creates what every cluster has, if it is not there yet.
async fn bootstrap(state: &ApiState, api: SocketAddr) -> Result<(), Error> {
    for ns in SYSTEM_NAMESPACES {
        ensure(
            state,
            "Namespace",
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP",
            "clusterIP": state.options.service_cidr.nth(1).to_string(), "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api.port()}]}});
    ensure(state, "Service", Some("default"), service).await?;
    ensure_in(
        state,
        "storage.k8s.io",
        "StorageClass",
        None,
        local_path_class(),
    )
    .await?;
    // The endpoints follow the API's address, which changes with `--port 0`. Nodes balance
    // over the slice (the socket layer reads EndpointSlices, as kube-proxy does).
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": api.ip().to_string()}],
            "ports": [{"name": "https", "port": api.port(), "protocol": "TCP"}]}]});
    keep_current(state, "", "Endpoints", endpoints, &["subsets"]).await?;
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [api.ip().to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [{"name": "https", "port": api.port(), "protocol": "TCP"}]});
    keep_current(
        state,
        "discovery.k8s.io",
        "EndpointSlice",
        slice,
        &["endpoints", "ports"],
    )
    .await
}

/// The default StorageClass exactly as k3s ships it (its `last-applied-configuration`
/// included, so `kubectl describe sc local-path` reads the same). Its provisioner is the
/// volume controller's local-path provisioner (`controllers::volume::provision`).
fn local_path_class() -> Value {
    let applied = concat!(
        r#"{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"annotations":{},"#,
        r#""name":"local-path"},"provisioner":"rancher.io/local-path","reclaimPolicy":"Delete","#,
        r#""volumeBindingMode":"WaitForFirstConsumer"}"#,
        "\n"
    );
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-path", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": applied,
            "storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"})
}

/// Creates `object` (in `default`), or brings `fields` of the stored one up to date.
async fn keep_current(
    state: &ApiState,
    group: &str,
    kind: &str,
    object: Value,
    fields: &[&str],
) -> Result<(), Error> {
    let rt = state
        .registry
        .by_kind(group, kind)
        .ok_or_else(|| unserved(kind))?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let key = rt.key(Some("default"), name);
    let Some(current) = state.store.get(&key).await? else {
        return ensure_in(state, group, kind, Some("default"), object).await;
    };
    if fields
        .iter()
        .all(|f| current.value.get(*f) == object.get(*f))
    {
        return Ok(());
    }
    let mut updated = (*current.value).clone();
    for f in fields {
        updated[*f] = object[*f].clone();
    }
    state
        .store
        .write(crate::store::Write::Update {
            key,
            value: updated,
            expected: Some(current.revision),
        })
        .await?;
    Ok(())
}

/// Creates `object` of core `kind` unless it exists.
async fn ensure(
    state: &ApiState,
    kind: &str,
    namespace: Option<&str>,
    object: Value,
) -> Result<(), Error> {
    ensure_in(state, "", kind, namespace, object).await
}

/// Creates `object` of `group`'s `kind` unless it exists.
async fn ensure_in(
    state: &ApiState,
    group: &str,
    kind: &str,
    namespace: Option<&str>,
    object: Value,
) -> Result<(), Error> {
    let rt = state
        .registry
        .by_kind(group, kind)
        .ok_or_else(|| unserved(kind))?;
    // Already there (a restart): creating again would first trip over its own allocations.
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if state.store.get(&rt.key(namespace, name)).await?.is_some() {
        return Ok(());
    }
    let target = Target {
        rt,
        namespace: namespace.map(String::from),
        name: None,
        subresource: None,
    };
    let body = object.to_string().into_bytes();
    match objects::create(state, &target, &Query::default(), &HeaderMap::new(), &body).await {
        Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(Error::Bootstrap {
            kind: kind.into(),
            message: e.status()["message"].to_string(),
        }),
    }
}

fn unserved(kind: &str) -> Error {
    Error::Bootstrap {
        kind: kind.into(),
        message: "the kind is not served".into(),
    }
}

/// Writes a kubeconfig for `url` (atomically: readers never see half a file).
pub fn write_kubeconfig(path: &Path, url: &str) -> Result<(), Error> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: wasmkube\n  cluster:\n    server: {url}\n\
         contexts:\n- name: wasmkube\n  context:\n    cluster: wasmkube\n    user: wasmkube\n    namespace: default\n\
         current-context: wasmkube\nusers:\n- name: wasmkube\n  user: {{}}\npreferences: {{}}\n"
    );
    let tmp = path.with_extension("tmp");
    let failed = |source| Error::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)?;
    Ok(())
}

/// Polls `GET /readyz` until it answers 200.
async fn wait_ready(addr: SocketAddr) -> Result<(), Error> {
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    for _ in 0..100 {
        if probe(addr).await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Error::NotReady(addr))
}

async fn probe(addr: SocketAddr) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: wasmkube\r\nConnection: close\r\n\r\n")
        .await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    Ok(reply.starts_with(b"HTTP/1.1 200"))
}
