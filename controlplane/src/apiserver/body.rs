//! Request bodies: reading them within the size limit and decoding JSON, YAML or protobuf into
//! JSON values. A missing Content-Type means JSON (the Python client sends none).

use axum::body::Body;
use axum::http::HeaderMap;
use serde_json::Value;

use super::error::ApiError;
use super::protobuf;

/// The largest body the API accepts, as kube-apiserver: 3 MiB.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Reads the whole body, or 413 when it passes [`MAX_BODY`].
pub async fn read(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge(format!("limit is {MAX_BODY} bytes")))
}

/// Decodes an object body by its media type.
pub fn decode_object(media_type: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    let value = match media_type {
        "" | "application/json" | "*/*" => decode_json(bytes)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(bytes)?,
        "application/vnd.kubernetes.protobuf" => protobuf::decode(bytes)
            .map_err(|e| ApiError::BadRequest(format!("failed to decode protobuf body: {e}")))?,
        other => return Err(ApiError::UnsupportedMediaType(format!(" (got {other})"))),
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON or YAML object".into(),
        ));
    }
    Ok(value)
}

/// Decodes JSON, with the 400 message kube-apiserver gives.
pub fn decode_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

/// Decodes YAML (one document).
pub fn decode_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_yaml::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body of the request could not be decoded as YAML: {e}"
        ))
    })
}
