//! [`Error`]: what can go wrong in the image store, and the OCI error response each failure
//! becomes (`{"errors":[{"code":"NAME_UNKNOWN","message":"...","detail":{}}]}`).
//!
//! Registry clients read these codes, not Kubernetes `Status` objects, so the distribution API
//! has its own error type instead of going through the API server's `ApiError`.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::names::{Digest, RepoName};

/// An image store or distribution API failure. Each variant knows its HTTP status and OCI code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository name does not match the spec's grammar.
    #[error(
        "invalid repository name {0:?}: use lowercase letters and digits, separated by '.', '_', '__' or '-', in components joined by '/', at most 255 characters"
    )]
    NameInvalid(String),
    /// The tag does not match the spec's grammar.
    #[error(
        "invalid tag {0:?}: use letters, digits, '_', '.' and '-' (not first), at most 128 characters"
    )]
    TagInvalid(String),
    /// The digest is malformed or not sha256.
    #[error("invalid digest {0:?}: only sha256:<64 lowercase hex digits> is supported")]
    DigestInvalid(String),
    /// The content does not hash to the digest the client gave.
    #[error("the content hashes to {actual}, not {expected}: upload the blob again")]
    DigestMismatch {
        /// What the client said.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// The repository has no manifests.
    #[error("repository {0} is not known: push an image to it first")]
    NameUnknown(RepoName),
    /// No such tag or manifest digest in the repository.
    #[error("manifest {reference} is not known in repository {name}")]
    ManifestUnknown {
        /// The repository.
        name: RepoName,
        /// The tag or digest asked for.
        reference: String,
    },
    /// No such blob in the repository (it may exist in another one: mount it).
    #[error("blob {digest} is not known in repository {name}")]
    BlobUnknown {
        /// The repository.
        name: RepoName,
        /// The blob.
        digest: Digest,
    },
    /// No such upload session.
    #[error("blob upload {0} is not known: start a new one with POST /v2/<name>/blobs/uploads/")]
    UploadUnknown(String),
    /// A chunk does not start where the upload ends.
    #[error("the chunk starts at {start} but the upload has {size} bytes: resume from {size}")]
    RangeInvalid {
        /// The upload's size.
        size: u64,
        /// The chunk's first byte.
        start: u64,
    },
    /// A `Content-Range` header that is not `<start>-<end>`.
    #[error("invalid Content-Range {0:?}: expected <start>-<end>")]
    RangeMalformed(String),
    /// Another request is writing the same upload.
    #[error("blob upload {0} is busy with another request: send chunks one at a time")]
    UploadBusy(String),
    /// The manifest is not JSON or not a manifest we understand.
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    /// The manifest references a blob the repository does not have.
    #[error("the manifest references blob {0}, which is not in the repository: push it first")]
    ManifestBlobUnknown(Digest),
    /// A body over the limit.
    #[error("the {what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// A blob or a manifest.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The request body broke off.
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    /// A bad `n` or `last` query parameter.
    #[error("invalid pagination parameter: {0}")]
    PaginationInvalid(String),
    /// The method is not served on this path.
    #[error("the method is not supported on {0}")]
    Unsupported(String),
    /// The path is not a distribution API endpoint.
    #[error("no such endpoint: {0}")]
    NoEndpoint(String),
    /// A file system operation failed.
    #[error("image storage failed to {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NameInvalid(_)
            | Error::TagInvalid(_)
            | Error::DigestInvalid(_)
            | Error::DigestMismatch { .. }
            | Error::ManifestInvalid(_)
            | Error::ManifestBlobUnknown(_)
            | Error::BodyRead(_)
            | Error::PaginationInvalid(_)
            | Error::RangeMalformed(_) => StatusCode::BAD_REQUEST,
            Error::NameUnknown(_)
            | Error::ManifestUnknown { .. }
            | Error::BlobUnknown { .. }
            | Error::UploadUnknown(_)
            | Error::NoEndpoint(_) => StatusCode::NOT_FOUND,
            Error::RangeInvalid { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::UploadBusy(_) => StatusCode::CONFLICT,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OCI error code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NameInvalid(_) => "NAME_INVALID",
            Error::TagInvalid(_) => "TAG_INVALID",
            Error::DigestInvalid(_) | Error::DigestMismatch { .. } => "DIGEST_INVALID",
            Error::NameUnknown(_) => "NAME_UNKNOWN",
            Error::ManifestUnknown { .. } => "MANIFEST_UNKNOWN",
            Error::BlobUnknown { .. } => "BLOB_UNKNOWN",
            Error::UploadUnknown(_) => "BLOB_UPLOAD_UNKNOWN",
            Error::RangeInvalid { .. }
            | Error::RangeMalformed(_)
            | Error::UploadBusy(_)
            | Error::BodyRead(_) => "BLOB_UPLOAD_INVALID",
            Error::ManifestInvalid(_) => "MANIFEST_INVALID",
            Error::ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            Error::TooLarge { .. } => "SIZE_INVALID",
            Error::PaginationInvalid(_) => "PAGINATION_NUMBER_INVALID",
            Error::Unsupported(_) | Error::NoEndpoint(_) => "UNSUPPORTED",
            Error::Io { .. } => "UNKNOWN",
        }
    }

    /// The response body: the spec's `errors` array with one entry.
    pub fn body(&self) -> serde_json::Value {
        // Paths and OS errors stay in the log; the client learns only that it was not its fault.
        let message = match self {
            Error::Io { .. } => "the image store failed; see the API server's log".to_string(),
            other => other.to_string(),
        };
        let detail = match self {
            Error::RangeInvalid { size, .. } => json!({"size": size}),
            Error::TooLarge { limit, .. } => json!({"limit": limit}),
            _ => json!({}),
        };
        json!({"errors": [{"code": self.code(), "message": message, "detail": detail}]})
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Io { what, path, source } = &self {
            tracing::warn!(what, path = %path.display(), error = %source, "image store failed");
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status(), body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            super::distribution::API_VERSION_HEADER,
            HeaderValue::from_static(super::distribution::API_VERSION),
        );
        resp
    }
}
