//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7396) and Kubernetes strategic
//! merge patch ([`strategic`]), chosen by the request's media type.

pub mod strategic;

use serde_json::Value;

use super::error::ApiError;

/// The patch media types we accept.
pub const JSON_PATCH: &str = "application/json-patch+json";
/// JSON merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Strategic merge patch.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
/// Server-side apply (not implemented yet).
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Applies `patch` (of media type `media`) to `current`, an object of `kind`.
pub fn apply(media: &str, current: &Value, patch: &Value, kind: &str) -> Result<Value, ApiError> {
    match media {
        JSON_PATCH => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::UnprocessablePatch(format!(
                    "the JSON patch could not be applied to the {kind}: {e}"
                ))
            })?;
            Ok(doc)
        }
        MERGE_PATCH => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        STRATEGIC_MERGE_PATCH => strategic::strategic_merge(current, patch, kind)
            .map_err(|e| ApiError::BadRequest(format!("invalid strategic merge patch: {e}"))),
        APPLY_PATCH => Err(server_side_apply_unsupported()),
        other => Err(ApiError::UnsupportedMediaType(format!(" (got {other})"))),
    }
}

/// Whether `media` is a patch type we decode as JSON.
pub fn is_patch_type(media: &str) -> bool {
    matches!(
        media,
        JSON_PATCH | MERGE_PATCH | STRATEGIC_MERGE_PATCH | APPLY_PATCH
    )
}

/// The error for server-side apply until it is implemented (with managedFields).
pub fn server_side_apply_unsupported() -> ApiError {
    ApiError::UnsupportedMediaType(
        ". Server-side apply (application/apply-patch+yaml) is not supported by wasmkube yet: \
         use client-side `kubectl apply` (without --server-side)"
            .into(),
    )
}
