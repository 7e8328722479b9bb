//! The distribution API through the API server's router (`oneshot`, no socket), as a registry
//! client sees it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::distribution::Endpoint;
use super::names::{Digest, Reference, RepoName, Tag};
use crate::apiserver::{self, ApiState, Options};
use crate::store::memory::MemoryStore;

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

struct Registry {
    app: Router,
    _state: Arc<ApiState>,
}

impl Registry {
    fn new() -> Self {
        Self::with(Options::default())
    }
    fn with(options: Options) -> Self {
        let state = ApiState::new(
            Arc::new(MemoryStore::new()),
            options,
            CancellationToken::new(),
        );
        Self {
            app: apiserver::router(state.clone()),
            _state: state,
        }
    }
    async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Body::from(body.to_vec())).expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
    async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], b"").await
    }
    /// Uploads a blob in one request; returns its digest.
    async fn push_blob(&self, name: &str, content: &[u8]) -> String {
        let digest = Digest::of(content).to_string();
        let uri = format!("/v2/{name}/blobs/uploads/?digest={digest}");
        let r = self.send(Method::POST, &uri, &[], content).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        digest
    }
    /// Pushes a config and a layer and a manifest naming them; returns (manifest bytes, digest).
    async fn push_image(&self, name: &str, tag: &str, layer: &[u8]) -> (Vec<u8>, String) {
        let config = self.push_blob(name, b"{}").await;
        let layer_digest = self.push_blob(name, layer).await;
        let manifest = manifest_bytes(&config, &layer_digest);
        let uri = format!("/v2/{name}/manifests/{tag}");
        let r = self
            .send(Method::PUT, &uri, &[("content-type", OCI)], &manifest)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let digest = r.header("docker-content-digest").to_string();
        (manifest, digest)
    }
}

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest_bytes(config: &str, layer: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": layer, "size": 4}],
    }))
    .expect("json")
}

#[tokio::test]
async fn base_endpoint_answers_with_the_api_version_header() {
    let reg = Registry::new();
    let r = reg.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    assert_eq!(r.json(), json!({}));
}

#[tokio::test]
async fn chunked_upload_then_get_returns_the_bytes() {
    let reg = Registry::new();
    let r = reg
        .send(Method::POST, "/v2/app/blobs/uploads/", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-0");
    let location = r.header("location").to_string();
    let uuid = r.header("docker-upload-uuid").to_string();
    assert_eq!(location, format!("/v2/app/blobs/uploads/{uuid}"));

    let r = reg
        .send(
            Method::PATCH,
            &location,
            &[("content-range", "0-4")],
            b"hello",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-4");
    // Docker sends chunks without Content-Range.
    let r = reg.send(Method::PATCH, &location, &[], b" world").await;
    assert_eq!(r.header("range"), "0-10");
    let r = reg.send(Method::GET, &location, &[], b"").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-10");

    let digest = Digest::of(b"hello world!");
    let r = reg
        .send(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            &[],
            b"!",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("location"), format!("/v2/app/blobs/{digest}"));
    assert_eq!(r.header("docker-content-digest"), digest.as_str());

    let r = reg.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"hello world!");
    assert_eq!(r.header("content-length"), "12");
    assert_eq!(r.header("content-type"), "application/octet-stream");
    let r = reg
        .send(Method::HEAD, &format!("/v2/app/blobs/{digest}"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "12");
    assert!(r.body.is_empty());
    // The finished session is gone.
    let r = reg.send(Method::GET, &location, &[], b"").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
}

#[tokio::test]
async fn monolithic_post_with_digest_stores_the_blob() {
    let reg = Registry::new();
    let digest = reg.push_blob("app", b"wasm bytes").await;
    let r = reg.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(&r.body[..], b"wasm bytes");
    assert_eq!(r.header("docker-content-digest"), digest);
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_the_blob_is_absent() {
    let reg = Registry::new();
    let claimed = Digest::of(b"something else");
    let uri = format!("/v2/app/blobs/uploads/?digest={claimed}");
    let r = reg.send(Method::POST, &uri, &[], b"content").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    assert_eq!(r.header("content-type"), "application/json");
    for digest in [claimed, Digest::of(b"content")] {
        let r = reg.get(&format!("/v2/app/blobs/{digest}")).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
        );
    }

    // A session finished with the wrong digest is dropped.
    let r = reg
        .send(Method::POST, "/v2/app/blobs/uploads/", &[], b"")
        .await;
    let location = r.header("location").to_string();
    let uri = format!("{location}?digest={}", Digest::of(b"x"));
    let r = reg.send(Method::PUT, &uri, &[], b"y").await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = reg.get(&location).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn manifest_by_tag_and_by_digest_are_identical() {
    let reg = Registry::new();
    let (manifest, digest) = reg.push_image("app", "v1", b"wasm").await;
    assert_eq!(digest, Digest::of(&manifest).as_str());

    let by_tag = reg.get("/v2/app/manifests/v1").await;
    let by_digest = reg.get(&format!("/v2/app/manifests/{digest}")).await;
    for r in [&by_tag, &by_digest] {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], &manifest[..]);
        assert_eq!(r.header("content-type"), OCI);
        assert_eq!(r.header("docker-content-digest"), digest);
        assert_eq!(r.header("content-length"), manifest.len().to_string());
    }
    let head = reg
        .send(Method::HEAD, "/v2/app/manifests/v1", &[], b"")
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("docker-content-digest"), digest);
    assert_eq!(head.header("content-length"), manifest.len().to_string());
    // The manifest is also a blob of the repository.
    let blob = reg.get(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(&blob.body[..], &manifest[..]);
}

#[tokio::test]
async fn manifest_put_by_digest_must_match_its_content() {
    let reg = Registry::new();
    let config = reg.push_blob("app", b"{}").await;
    let layer = reg.push_blob("app", b"wasm").await;
    let manifest = manifest_bytes(&config, &layer);
    let wrong = format!("/v2/app/manifests/{}", Digest::of(b"nope"));
    let r = reg.send(Method::PUT, &wrong, &[], &manifest).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let right = format!("/v2/app/manifests/{}", Digest::of(&manifest));
    let r = reg.send(Method::PUT, &right, &[], &manifest).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), right);
}

#[tokio::test]
async fn manifest_referencing_a_missing_blob_is_rejected() {
    let reg = Registry::new();
    let config = reg.push_blob("app", b"{}").await;
    let missing = Digest::of(b"never pushed").to_string();
    let manifest = manifest_bytes(&config, &missing);
    let r = reg
        .send(Method::PUT, "/v2/app/manifests/v1", &[], &manifest)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&missing)
    );
    assert_eq!(
        reg.get("/v2/app/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn malformed_manifests_are_manifest_invalid() {
    let reg = Registry::new();
    for body in [
        &b"not json"[..],
        b"[]",
        br#"{"schemaVersion": 2}"#,
        br#"{"schemaVersion": 1, "fsLayers": []}"#,
    ] {
        let r = reg
            .send(Method::PUT, "/v2/app/manifests/v1", &[], body)
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn an_index_is_served_with_its_media_type() {
    let reg = Registry::new();
    let (_, child) = reg.push_image("app", "amd64", b"wasm").await;
    let index = serde_json::to_vec(&json!({"schemaVersion": 2,
        "manifests": [{"mediaType": OCI, "digest": child, "size": 10}]}))
    .expect("json");
    let r = reg
        .send(Method::PUT, "/v2/app/manifests/latest", &[], &index)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = reg.get("/v2/app/manifests/latest").await;
    assert_eq!(
        r.header("content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
}

#[tokio::test]
async fn missing_tag_is_manifest_unknown() {
    let reg = Registry::new();
    reg.push_image("app", "v1", b"wasm").await;
    for uri in ["/v2/app/manifests/v2", "/v2/other/manifests/v1"] {
        let r = reg.get(uri).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
        );
    }
    let r = reg
        .get(&format!("/v2/app/manifests/{}", Digest::of(b"x")))
        .await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
}

/// Catalog, deletes, names, limits and upload sessions.
mod repositories;
