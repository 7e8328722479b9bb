//! The OCI distribution API (`/v2/...`) over the [`ImageStore`]: what `oci-client`, Docker and
//! other registry clients call to push and pull images.
//!
//! [`serve`] parses the path into an [`Endpoint`], then one `match` on method and endpoint picks
//! the store call. Names may contain `/`, so the path is read from its end: tags, digests and
//! upload ids never do. Bodies are streamed into the store, never read whole through the API
//! server's 3 MiB limit; only manifests (at most 4 MiB) are buffered.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::error::Error;
use super::manifest::MAX_MANIFEST;
use super::names::{Digest, Reference, RepoName, UploadId};
use super::store::ImageStore;
use crate::apiserver::request::Query;

/// The header every response carries, which clients probe `/v2/` for.
pub const API_VERSION_HEADER: HeaderName =
    HeaderName::from_static("docker-distribution-api-version");
/// Its value.
pub const API_VERSION: &str = "registry/2.0";
/// The digest of the content a response carries or a request created.
pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// The id of an upload session.
pub const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");

/// Extra response headers.
type Headers = Vec<(HeaderName, String)>;

/// Whether a request path belongs to the distribution API.
pub fn handles(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// What a `/v2` path names. Names are still unvalidated here.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint<'p> {
    /// `/v2/`: the version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(&'p str),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(&'p str, &'p str),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(&'p str, &'p str),
    /// `/v2/<name>/blobs/uploads/`: start an upload.
    Uploads(&'p str),
    /// `/v2/<name>/blobs/uploads/<uuid>`: an upload session.
    Upload(&'p str, &'p str),
}

impl<'p> Endpoint<'p> {
    /// Parses a decoded path (with its `/v2` prefix); `None` if it is no endpoint.
    pub fn parse(path: &'p str) -> Option<Self> {
        let rest = path.strip_prefix("/v2")?;
        if rest.is_empty() || rest == "/" {
            return Some(Endpoint::Base);
        }
        let rest = rest.strip_prefix('/')?;
        if rest == "_catalog" {
            return Some(Endpoint::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Endpoint::Tags(name));
        }
        let trimmed = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(name) = trimmed.strip_suffix("/blobs/uploads") {
            return Some(Endpoint::Uploads(name));
        }
        let (head, last) = rest.rsplit_once('/')?;
        if let Some(name) = head.strip_suffix("/blobs/uploads") {
            Some(Endpoint::Upload(name, last))
        } else if let Some(name) = head.strip_suffix("/manifests") {
            Some(Endpoint::Manifest(name, last))
        } else {
            head.strip_suffix("/blobs")
                .map(|name| Endpoint::Blob(name, last))
        }
    }
}

/// Serves one distribution API request.
pub async fn serve(store: &ImageStore, request: Request) -> Response {
    match dispatch(store, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(store: &ImageStore, request: Request) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let raw = parts.uri.path();
    let path = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::NameInvalid(raw.to_string()))?;
    let endpoint = Endpoint::parse(&path).ok_or_else(|| Error::NoEndpoint(raw.to_string()))?;
    let query = Query::parse(parts.uri.query());
    let method = &parts.method;
    let head = method == Method::HEAD;
    let declared = declared_length(&parts.headers);
    let unsupported = || Err(Error::Unsupported(raw.to_string()));
    match endpoint {
        Endpoint::Base if head || method == Method::GET => {
            Ok(json_reply(StatusCode::OK, &json!({}), &[]))
        }
        Endpoint::Catalog if method == Method::GET => {
            let names = store.catalog().await?;
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let (page, link) = paginate(&names, &query, "/v2/_catalog")?;
            Ok(json_reply(
                StatusCode::OK,
                &json!({"repositories": page}),
                &link,
            ))
        }
        Endpoint::Tags(name) if method == Method::GET => {
            let name = RepoName::parse(name)?;
            let tags: Vec<String> = store
                .tags(&name)
                .await?
                .iter()
                .map(|t| t.to_string())
                .collect();
            let (page, link) = paginate(&tags, &query, &format!("/v2/{name}/tags/list"))?;
            Ok(json_reply(
                StatusCode::OK,
                &json!({"name": name.as_str(), "tags": page}),
                &link,
            ))
        }
        Endpoint::Manifest(name, reference) => {
            let name = RepoName::parse(name)?;
            let reference = Reference::parse(reference)?;
            match *method {
                Method::GET | Method::HEAD => {
                    let m = store.manifest(&name, &reference).await?;
                    let headers = [
                        (header::CONTENT_TYPE, m.media_type.clone()),
                        (CONTENT_DIGEST, m.digest.to_string()),
                        (header::CONTENT_LENGTH, m.bytes.len().to_string()),
                    ];
                    let body = if head {
                        Body::empty()
                    } else {
                        Body::from(m.bytes)
                    };
                    Ok(reply(StatusCode::OK, &headers, body))
                }
                Method::PUT => {
                    let bytes = read_manifest(body, declared).await?;
                    let digest = store.put_manifest(&name, &reference, bytes).await?;
                    Ok(created(format!("/v2/{name}/manifests/{digest}"), &digest))
                }
                Method::DELETE => {
                    store.delete_manifest(&name, &reference).await?;
                    Ok(reply(StatusCode::ACCEPTED, &[], Body::empty()))
                }
                _ => unsupported(),
            }
        }
        Endpoint::Blob(name, digest) => {
            let name = RepoName::parse(name)?;
            let digest = Digest::parse(digest)?;
            match *method {
                Method::GET | Method::HEAD => {
                    let blob = store.blob(&name, &digest).await?;
                    let headers = [
                        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                        (CONTENT_DIGEST, digest.to_string()),
                        (header::CONTENT_LENGTH, blob.size.to_string()),
                    ];
                    let body = if head {
                        Body::empty()
                    } else {
                        Body::from_stream(tokio_util::io::ReaderStream::new(blob.file))
                    };
                    Ok(reply(StatusCode::OK, &headers, body))
                }
                Method::DELETE => {
                    store.unlink_blob(&name, &digest).await?;
                    Ok(reply(StatusCode::ACCEPTED, &[], Body::empty()))
                }
                _ => unsupported(),
            }
        }
        Endpoint::Uploads(name) if method == Method::POST => {
            let name = RepoName::parse(name)?;
            if let Some(digest) = mount_source(&query)
                && let Some(from) = query.get("from").and_then(|f| RepoName::parse(f).ok())
                && store.mount(&name, &digest, &from).await?
            {
                return Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest));
            }
            if let Some(digest) = query.get("digest") {
                let digest = Digest::parse(digest)?;
                check_declared(store, declared)?;
                store
                    .put_blob(&name, &digest, body.into_data_stream())
                    .await?;
                return Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest));
            }
            let id = store.start_upload(&name).await?;
            Ok(upload_reply(StatusCode::ACCEPTED, &name, &id, 0))
        }
        Endpoint::Upload(name, id) => {
            let name = RepoName::parse(name)?;
            let id = UploadId::parse(id)?;
            match *method {
                Method::GET => {
                    let size = store.upload_size(&name, &id).await?;
                    Ok(upload_reply(StatusCode::NO_CONTENT, &name, &id, size))
                }
                Method::PATCH => {
                    let start = content_range_start(&parts.headers)?;
                    if let Err(e) = check_declared(store, declared) {
                        store.cancel(&name, &id).await?;
                        return Err(e);
                    }
                    let stream = body.into_data_stream();
                    let size = store.append(&name, &id, start, stream).await?;
                    Ok(upload_reply(StatusCode::ACCEPTED, &name, &id, size))
                }
                Method::PUT => {
                    let digest = query.get("digest").ok_or_else(|| {
                        Error::DigestInvalid("(none: add ?digest=sha256:<hex> to finish)".into())
                    })?;
                    let digest = Digest::parse(digest)?;
                    if let Err(e) = check_declared(store, declared) {
                        store.cancel(&name, &id).await?;
                        return Err(e);
                    }
                    store
                        .finish(&name, &id, &digest, body.into_data_stream())
                        .await?;
                    Ok(created(format!("/v2/{name}/blobs/{digest}"), &digest))
                }
                Method::DELETE => {
                    store.cancel(&name, &id).await?;
                    Ok(reply(StatusCode::NO_CONTENT, &[], Body::empty()))
                }
                _ => unsupported(),
            }
        }
        _ => unsupported(),
    }
}

/// The `mount` digest of a cross-repository mount, if it is one we could serve.
fn mount_source(query: &Query) -> Option<Digest> {
    query.get("mount").and_then(|d| Digest::parse(d).ok())
}

/// A `Content-Length` over the blob limit is refused before reading a byte of it.
fn check_declared(store: &ImageStore, declared: Option<u64>) -> Result<(), Error> {
    match declared {
        Some(n) if n > store.max_blob() => Err(Error::TooLarge {
            what: "blob",
            limit: store.max_blob(),
        }),
        _ => Ok(()),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The first byte of a `Content-Range: <start>-<end>` (Docker's `bytes` prefix allowed).
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let malformed = || Error::RangeMalformed(text.to_string());
    let range = text
        .strip_prefix("bytes")
        .map(str::trim_start)
        .unwrap_or(text);
    let range = range.split('/').next().unwrap_or_default();
    let (start, end) = range.split_once('-').ok_or_else(malformed)?;
    let start: u64 = start.trim().parse().map_err(|_| malformed())?;
    let end: u64 = end.trim().parse().map_err(|_| malformed())?;
    if end < start {
        return Err(malformed());
    }
    Ok(Some(start))
}

/// Reads a manifest body, at most [`MAX_MANIFEST`] bytes.
async fn read_manifest(body: Body, declared: Option<u64>) -> Result<Bytes, Error> {
    let too_large = || Error::TooLarge {
        what: "manifest",
        limit: MAX_MANIFEST,
    };
    if declared.is_some_and(|n| n > MAX_MANIFEST) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BodyRead(e.to_string()))?;
        if (bytes.len() + chunk.len()) as u64 > MAX_MANIFEST {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// Applies `n` and `last` to a sorted list; the `Link` header points at the next page when
/// there is one.
fn paginate(items: &[String], query: &Query, base: &str) -> Result<(Vec<String>, Headers), Error> {
    let n = match query.get("n").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| Error::PaginationInvalid(format!("n={v:?} is not a count")))?,
        ),
        None => None,
    };
    let after: Vec<&String> = match query.get("last").filter(|v| !v.is_empty()) {
        Some(last) => items.iter().filter(|i| i.as_str() > last).collect(),
        None => items.iter().collect(),
    };
    let take = n.unwrap_or(after.len()).min(after.len());
    let page: Vec<String> = after[..take].iter().map(|s| s.to_string()).collect();
    let mut link = Vec::new();
    if let (Some(n), Some(last)) = (n, page.last())
        && take < after.len()
    {
        link.push((
            header::LINK,
            format!("<{base}?n={n}&last={last}>; rel=\"next\""),
        ));
    }
    Ok((page, link))
}

/// 201 for a stored blob or manifest.
fn created(location: String, digest: &Digest) -> Response {
    let headers = [
        (header::LOCATION, location),
        (CONTENT_DIGEST, digest.to_string()),
        (header::CONTENT_LENGTH, "0".to_string()),
    ];
    reply(StatusCode::CREATED, &headers, Body::empty())
}

/// An upload session's state: where to send the next chunk and what the registry has.
fn upload_reply(status: StatusCode, name: &RepoName, id: &UploadId, size: u64) -> Response {
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
        // The spec's inclusive range; an empty upload is `0-0`, as Docker's registry says.
        (header::RANGE, format!("0-{}", size.saturating_sub(1))),
        (UPLOAD_UUID, id.to_string()),
    ];
    // A 204 must not carry a length at all.
    if status != StatusCode::NO_CONTENT {
        headers.push((header::CONTENT_LENGTH, "0".to_string()));
    }
    reply(status, &headers, Body::empty())
}

fn json_reply(
    status: StatusCode,
    value: &serde_json::Value,
    extra: &[(HeaderName, String)],
) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    headers.extend_from_slice(extra);
    reply(status, &headers, Body::from(bytes))
}

fn reply(status: StatusCode, headers: &[(HeaderName, String)], body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    for (name, value) in headers {
        // Every value is built from validated names, digests and numbers, so this never skips.
        if let Ok(v) = HeaderValue::from_str(value) {
            map.insert(name.clone(), v);
        }
    }
    response
}
