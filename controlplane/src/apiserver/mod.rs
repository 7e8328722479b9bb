//! The API server: one generic HTTP path that serves every kind in the [`Registry`].
//!
//! Requests are routed by hand rather than through a table of axum routes: Kubernetes paths
//! are regular (`/api/v1/namespaces/{ns}/{plural}/{name}/{subresource}`, the same under
//! `/apis/{group}/{version}`), and one dispatcher keeps the verb mapping in one place.

pub mod body;
pub mod decode;
pub mod delete;
pub mod discovery;
pub mod error;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod proxy;
pub mod read;
pub mod request;
pub mod response;
pub mod selectors;
pub mod stream;
pub mod subresources;
pub mod table;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::error::ApiError;
use self::objects::{Change, Part};
use self::request::{Query, Target};
use crate::images::{self, ImageStore};
use crate::registry::Registry;
use crate::store::Store;

/// Tunables of the API server; every timer is settable so tests can shorten it.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often a watch with `allowWatchBookmarks` gets a BOOKMARK (kube-apiserver: ~1 min).
    pub bookmark_interval: Duration,
    /// The longest a watch stays open without `timeoutSeconds` (kube-apiserver: 30-60 min).
    pub max_watch: Duration,
    /// The address clients are told to use (`serverAddressByClientCIDRs`).
    pub server_address: String,
    /// The pod address range node IPAM hands /16s out of.
    pub cluster_cidr: crate::registry::ClusterCidr,
    /// The Service address range ClusterIPs are allocated from.
    pub service_cidr: crate::registry::ServiceCidr,
    /// Where the image store (`/v2/`) keeps its files; `None`: a temporary directory removed
    /// with the state (tests).
    pub image_dir: Option<PathBuf>,
    /// The largest blob the image store accepts, in bytes.
    pub max_image_blob: u64,
    /// How often node agents are scraped for `metrics.k8s.io` (metrics-server's
    /// `--metric-resolution`, 15 s).
    pub metric_resolution: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(60),
            max_watch: Duration::from_secs(1800),
            server_address: "127.0.0.1:6443".into(),
            cluster_cidr: crate::registry::ClusterCidr::default(),
            service_cidr: crate::registry::ServiceCidr::default(),
            image_dir: None,
            max_image_blob: images::DEFAULT_MAX_BLOB,
            metric_resolution: Duration::from_secs(15),
        }
    }
}

/// What every request handler shares.
pub struct ApiState {
    /// The served kinds.
    pub registry: Registry,
    /// Where objects live.
    pub store: Arc<dyn Store>,
    /// Tunables.
    pub options: Options,
    /// Serialises writes that allocate from shared pools (ClusterIPs, NodePorts), so two
    /// concurrent creates never pick the same value.
    pub allocation: tokio::sync::Mutex<()>,
    /// Cancelled at shutdown: ends watches so connections drain.
    pub shutdown: CancellationToken,
    /// Nodes' recent refusals of exec/attach handshakes, for kubectl's SPDY retry.
    pub stream_refusals: stream::RecentRefusals,
    /// The image store the distribution API (`/v2/`) serves.
    pub images: ImageStore,
    /// The newest scrapes of the node agents, behind `metrics.k8s.io`.
    pub resource_metrics: metrics::ResourceMetrics,
}

impl ApiState {
    /// A state over `store` with the default registry, and an image store at
    /// `options.image_dir` (created as it is first written) or in a temporary directory.
    pub fn new(store: Arc<dyn Store>, options: Options, shutdown: CancellationToken) -> Arc<Self> {
        let images = match &options.image_dir {
            Some(dir) => ImageStore::at(dir.clone(), options.max_image_blob),
            None => ImageStore::temporary(options.max_image_blob),
        };
        Self::with_images(store, options, shutdown, images)
    }

    /// A state over `store` and an already opened image store.
    pub fn with_images(
        store: Arc<dyn Store>,
        options: Options,
        shutdown: CancellationToken,
        images: ImageStore,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry: Registry::new(),
            store,
            options,
            allocation: tokio::sync::Mutex::new(()),
            shutdown,
            stream_refusals: stream::RecentRefusals::default(),
            images,
            resource_metrics: metrics::ResourceMetrics::default(),
        })
    }
}

/// The API server's HTTP service.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let watch = Query::parse(request.uri().query()).flag("watch");
    let labels = crate::telemetry::classify(method.as_str(), &path, watch);
    // The image store's registry API has its own paths and error bodies (OCI, not Status).
    let response = if images::distribution::handles(&path) {
        images::distribution::serve(&state.images, request).await
    } else {
        match dispatch(&state, request).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    };
    let code = response.status();
    if code.is_server_error() {
        tracing::warn!(%method, %path, %code, "request failed");
    } else {
        tracing::debug!(%method, %path, %code, "request");
    }
    let is_watch = labels.verb == "watch" && code.is_success();
    crate::telemetry::METRICS.request(labels, code.as_u16(), started.elapsed());
    if is_watch {
        // Counted as open until the client or the server ends the stream.
        let guard = crate::telemetry::METRICS.watch_opened();
        let (parts, body) = response.into_parts();
        let stream = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
            let _open = &guard;
            chunk
        });
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    response
}

async fn dispatch(state: &Arc<ApiState>, request: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let accept = header_str(&parts.headers, header::ACCEPT);
    let query = Query::parse(parts.uri.query());
    let segments: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let registry = &state.registry;
    let is_get = parts.method == Method::GET || parts.method == Method::HEAD;
    let document = |v: Option<Value>| v.map(|v| json_ok(&v)).ok_or(ApiError::NoSuchResource);
    match segments.as_slice() {
        [] if is_get => Ok(json_ok(&root_paths(registry))),
        ["version"] if is_get => Ok(json_ok(&discovery::version())),
        ["healthz" | "livez" | "readyz", ..] if is_get => Ok(health(state)),
        ["metrics"] if is_get => Ok(prometheus_text(crate::telemetry::METRICS.render())),
        ["apis", metrics::GROUP] if is_get => Ok(json_ok(&{
            let mut g = metrics::discovery_entry();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        })),
        ["apis", metrics::GROUP, metrics::VERSION, rest @ ..] => {
            metrics::serve(state, &parts.method, rest, &query).await
        }
        ["api"] if is_get && discovery::wants_aggregated(&accept) => {
            Ok(aggregated(discovery::aggregated(registry, true)))
        }
        ["api"] if is_get => Ok(json_ok(&discovery::api_versions(
            &state.options.server_address,
        ))),
        ["apis"] if is_get && discovery::wants_aggregated(&accept) => {
            Ok(aggregated(discovery::aggregated(registry, false)))
        }
        ["apis"] if is_get => Ok(json_ok(&discovery::api_group_list(registry))),
        ["apis", group] if is_get => document(discovery::api_group(registry, group)),
        ["api", "v1"] if is_get => document(discovery::api_resource_list(registry, "", "v1")),
        ["apis", group, version] if is_get => {
            document(discovery::api_resource_list(registry, group, version))
        }
        ["openapi", "v2"] if is_get => Ok(openapi_v2()),
        ["openapi", "v3"] if is_get => Ok(json_ok(&openapi::index(registry))),
        ["openapi", "v3", rest @ ..] if is_get => {
            document(openapi::document(registry, &rest.join("/")))
        }
        ["api", "v1", rest @ ..] => {
            let target = request::resolve(registry, "", "v1", rest)?;
            resource(state, target, &mut parts, &query, &accept, body).await
        }
        ["apis", group, version, rest @ ..] => {
            let target = request::resolve(registry, group, version, rest)?;
            resource(state, target, &mut parts, &query, &accept, body).await
        }
        _ if is_get => Err(ApiError::NoSuchResource),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Serves a request on a resource path. `parts` is the whole request but its body: exec and
/// attach take the connection's upgrade out of its extensions.
async fn resource(
    state: &Arc<ApiState>,
    t: Target<'_>,
    parts: &mut Parts,
    query: &Query,
    accept: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let method = parts.method.clone();
    let headers = &parts.headers;
    let media = body::content_type(headers);
    let bytes = match method {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => body::read(body).await?,
        _ => bytes::Bytes::new(),
    };
    if method == Method::PATCH {
        if media == patch::APPLY_PATCH {
            return Err(patch::server_side_apply_unsupported());
        }
        if !patch::is_patch_type(&media) {
            return Err(ApiError::UnsupportedMediaType(format!(" (got {media:?})")));
        }
    }
    let patch_change = |bytes: &[u8]| -> Result<Change<'_>, ApiError> {
        Ok(Change::Patch {
            media: &media,
            patch: body::decode_json(bytes)?,
        })
    };
    let item = t.name.is_some();
    match (&method, item, t.subresource.as_deref()) {
        (&Method::GET, false, None) if query.flag("watch") => {
            watch::watch(state.clone(), &t, query, accept).await
        }
        (&Method::GET, false, None) => read::list(state, &t, query, accept).await,
        (&Method::GET, true, None) => read::get(state, &t, query, accept).await,
        (&Method::POST, false, None) => objects::create(state, &t, query, headers, &bytes).await,
        (&Method::PUT, true, None) => {
            let object = body::decode_object(&media, &bytes)?;
            objects::update(state, &t, query, Change::Replace(object), Part::Main).await
        }
        (&Method::PATCH, true, None) => {
            objects::update(state, &t, query, patch_change(&bytes)?, Part::Main).await
        }
        (&Method::DELETE, true, None) => delete::delete(state, &t, query, &bytes).await,
        (&Method::DELETE, false, None) => delete::delete_collection(state, &t, query, &bytes).await,
        (_, true, Some(sub)) if t.rt.subresource(sub).is_none() => Err(ApiError::NoSuchResource),
        (&Method::GET, true, Some("status")) => read::get(state, &t, query, accept).await,
        (&Method::PUT, true, Some("status")) => {
            let object = body::decode_object(&media, &bytes)?;
            objects::update(state, &t, query, Change::Replace(object), Part::Status).await
        }
        (&Method::PATCH, true, Some("status")) => {
            objects::update(state, &t, query, patch_change(&bytes)?, Part::Status).await
        }
        (&Method::GET | &Method::PUT | &Method::PATCH, true, Some("scale")) => {
            subresources::scale(state, &t, query, method.as_str(), &media, &bytes).await
        }
        (&Method::POST, true, Some("binding")) => {
            subresources::bind(state, &t, &media, &bytes).await
        }
        (&Method::POST, true, Some("eviction")) => {
            subresources::evict(state, &t, query, &bytes).await
        }
        (&Method::GET, true, Some("log")) if t.rt.kind == "Pod" => {
            proxy::pod_log(state, &t, query).await
        }
        (&Method::GET | &Method::POST, true, Some("exec")) if t.rt.kind == "Pod" => {
            stream::serve(state, &t, stream::Session::Exec, parts, query).await
        }
        (&Method::GET | &Method::POST, true, Some("attach")) if t.rt.kind == "Pod" => {
            stream::serve(state, &t, stream::Session::Attach, parts, query).await
        }
        (&Method::GET | &Method::POST, true, Some("portforward")) if t.rt.kind == "Pod" => {
            stream::portforward(state, &t, parts, query).await
        }
        (&Method::GET, true, Some("ephemeralcontainers")) => {
            read::get(state, &t, query, accept).await
        }
        (&Method::PUT, true, Some("ephemeralcontainers")) => {
            let object = body::decode_object(&media, &bytes)?;
            objects::update(
                state,
                &t,
                query,
                Change::Replace(object),
                Part::EphemeralContainers,
            )
            .await
        }
        (&Method::PATCH, true, Some("ephemeralcontainers")) => {
            objects::update(
                state,
                &t,
                query,
                patch_change(&bytes)?,
                Part::EphemeralContainers,
            )
            .await
        }
        (_, true, Some(sub))
            if !matches!(
                sub,
                "status"
                    | "scale"
                    | "binding"
                    | "eviction"
                    | "exec"
                    | "attach"
                    | "portforward"
                    | "ephemeralcontainers"
            ) =>
        {
            Err(subresources::node_served(&t, sub))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn json_ok(v: &Value) -> Response {
    response::json_response(StatusCode::OK, v, &[])
}

fn aggregated(v: Value) -> Response {
    let mut r = json_ok(&v);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED),
    );
    r
}

/// `GET /openapi/v2`: an empty protobuf `openapi_v2.Document`.
///
/// kubectl falls back to OpenAPI v2 when a kind is missing from the v3 documents (an unknown
/// kind, say); without a v2 document it fails with "failed to download openapi" instead of
/// the "no matches for kind" users know. An empty document decodes fine and names no kind.
fn openapi_v2() -> Response {
    let ty = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, ty)],
        Vec::<u8>::new(),
    )
        .into_response()
}

fn prometheus_text(text: String) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn health(state: &ApiState) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok",
    )
        .into_response()
}

/// `GET /`: the paths the server answers, as kube-apiserver lists them.
fn root_paths(registry: &Registry) -> Value {
    let mut paths = vec![
        "/api".to_string(),
        "/api/v1".to_string(),
        "/apis".to_string(),
    ];
    for (g, v) in registry.group_versions() {
        if !g.is_empty() {
            paths.push(format!("/apis/{g}"));
            paths.push(format!("/apis/{g}/{v}"));
        }
    }
    paths.push(format!("/apis/{}", metrics::GROUP));
    paths.push(format!("/apis/{}/{}", metrics::GROUP, metrics::VERSION));
    paths.extend(
        [
            "/healthz",
            "/livez",
            "/metrics",
            "/openapi/v3",
            "/readyz",
            "/version",
        ]
        .map(String::from),
    );
    paths.dedup();
    json!({"paths": paths})
}
