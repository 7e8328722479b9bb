//! [`ApiError`]: the one type that turns failures into Kubernetes `Status` responses.
//!
//! kubectl pretty-prints a failure only when the body is a `Status` (`kind: Status`,
//! `apiVersion: v1`) with the apiserver's conventions: `details.kind` is the plural resource
//! for NotFound/AlreadyExists/Conflict, and the Kind for Invalid (with `causes`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::{Cause, ResourceType};
use crate::store;

/// Which object an error is about, for `details`.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    /// Object name.
    pub name: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource (`deployments`).
    pub plural: String,
    /// Kind (`Deployment`), used for Invalid.
    pub kind: String,
}

impl Subject {
    /// The subject `name` of kind `rt`.
    pub fn of(rt: &ResourceType, name: &str) -> Self {
        Self {
            name: name.to_string(),
            group: rt.group.to_string(),
            plural: rt.plural.to_string(),
            kind: rt.kind.to_string(),
        }
    }
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// An API failure. Each variant knows its HTTP code and `Status.reason`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the object does not exist.
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Subject),
    /// 404: the path names no resource we serve.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    /// 409: create of an existing object.
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Subject),
    /// 409: the resourceVersion precondition failed.
    #[error("Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again", .0.qualified(), .0.name)]
    Conflict(Subject),
    /// 422: the object is invalid.
    #[error("{kind} \"{name}\" is invalid: {}", causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join(", "), kind = .subject.kind, name = .subject.name)]
    Invalid {
        /// The object.
        subject: Subject,
        /// What is wrong with it.
        causes: Vec<Cause>,
    },
    /// 422: a patch that cannot be applied (e.g. a JSON patch `test` failed).
    #[error("{0}")]
    UnprocessablePatch(String),
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 405: the verb is not supported on this path.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406: no acceptable representation.
    #[error("{0}")]
    NotAcceptable(String),
    /// 413: the body is too large.
    #[error("the request is too large: {0}")]
    TooLarge(String),
    /// 415: the content type is not one we decode.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json{0}"
    )]
    UnsupportedMediaType(String),
    /// 410: a watch or continue token is older than the kept history.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still available.
        oldest: u64,
    },
    /// 409 with a message of its own (e.g. a pod already bound).
    #[error("{1}")]
    ConflictMessage(Subject, String),
    /// 403: the namespace is being deleted or the operation is forbidden.
    #[error("{0}")]
    Forbidden(String),
    /// 429: e.g. an eviction blocked by a disruption budget.
    #[error("{0}")]
    TooManyRequests(String),
    /// 500: a failure that is ours, not the client's.
    #[error("{0}")]
    Internal(String),
    /// 503: the store is shutting down.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// Replaces a conflict's message, keeping its subject.
    pub fn with_message(self, message: String) -> Self {
        match self {
            ApiError::Conflict(s) => ApiError::ConflictMessage(s, message),
            other => other,
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::NoSuchResource => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict(_) | ApiError::ConflictMessage(..) => {
                StatusCode::CONFLICT
            }
            ApiError::Invalid { .. } | ApiError::UnprocessablePatch(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::NoSuchResource => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict(_) | ApiError::ConflictMessage(..) => "Conflict",
            ApiError::Invalid { .. } | ApiError::UnprocessablePatch(_) => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Gone { .. } => "Expired",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::TooManyRequests(_) => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
            ApiError::Unavailable(_) => "ServiceUnavailable",
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound(s)
            | ApiError::AlreadyExists(s)
            | ApiError::Conflict(s)
            | ApiError::ConflictMessage(s, _) => {
                let mut d = json!({"name": s.name, "kind": s.plural});
                if !s.group.is_empty() {
                    d["group"] = json!(s.group);
                }
                Some(d)
            }
            ApiError::Invalid { subject, causes } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason.as_str(), "message": c.message, "field": c.field}))
                    .collect();
                let mut d = json!({"name": subject.name, "kind": subject.kind, "causes": causes});
                if !subject.group.is_empty() {
                    d["group"] = json!(subject.group);
                }
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound { .. } => ApiError::NotFound(Subject::default()),
            store::Error::AlreadyExists { .. } => ApiError::AlreadyExists(Subject::default()),
            store::Error::Conflict { .. } => ApiError::Conflict(Subject::default()),
            store::Error::Gone { requested, oldest } => ApiError::Gone { requested, oldest },
            store::Error::Closed => ApiError::Unavailable("the store is shutting down".into()),
            store::Error::Backend(m) => ApiError::Internal(format!("storage failed: {m}")),
        }
    }
}

/// Attaches the subject to a store error's API form (the store only knows keys).
pub fn with_subject(e: store::Error, rt: &ResourceType, name: &str) -> ApiError {
    match ApiError::from(e) {
        ApiError::NotFound(_) => ApiError::NotFound(Subject::of(rt, name)),
        ApiError::AlreadyExists(_) => ApiError::AlreadyExists(Subject::of(rt, name)),
        ApiError::Conflict(_) => ApiError::Conflict(Subject::of(rt, name)),
        other => other,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal(_)) {
            tracing::error!(error = %self, "internal error");
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut resp = (self.code(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::validation::Reason;

    #[test]
    fn not_found_names_plural_and_group() {
        let e = ApiError::NotFound(Subject {
            name: "nope".into(),
            group: "apps".into(),
            plural: "deployments".into(),
            kind: "Deployment".into(),
        });
        let s = e.status();
        assert_eq!(s["message"], "deployments.apps \"nope\" not found");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["code"], 404);
    }

    #[test]
    fn invalid_carries_kind_and_causes() {
        let e = ApiError::Invalid {
            subject: Subject {
                name: "x".into(),
                group: "apps".into(),
                plural: "deployments".into(),
                kind: "Deployment".into(),
            },
            causes: vec![Cause {
                reason: Reason::Invalid,
                field: "spec.replicas".into(),
                message: "Invalid value: -1: must be greater than or equal to 0".into(),
            }],
        };
        let s = e.status();
        assert_eq!(s["details"]["kind"], "Deployment");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(s["code"], 422);
    }
}
