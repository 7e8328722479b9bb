//! Decoding a write's body into storage form: apiVersion/kind filled in, the typed round
//! trip that drops unknown fields (reported per `fieldValidation`), conversion to the storage
//! version.

use serde_json::{Value, json};

use super::error::ApiError;
use super::request::Query;
use crate::registry::ResourceType;

/// A decoded, normalized body in storage form, with the warnings decoding produced.
pub struct Decoded {
    /// The object, in its storage version.
    pub object: Value,
    /// `Warning:` lines (unknown fields under `fieldValidation=Warn`, deprecations).
    pub warnings: Vec<String>,
}

/// Decodes a served-version object: fills apiVersion/kind, normalizes, checks unknown fields.
pub fn normalize(rt: &ResourceType, mut obj: Value, query: &Query) -> Result<Decoded, ApiError> {
    let api_version = rt.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("body must be an object".into()))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(rt.kind));
        }
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    let known = rt.normalize(obj.clone()).map_err(|e| {
        ApiError::BadRequest(format!("unable to decode {} {}: {e}", rt.kind, api_version))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&obj, &known, "", &mut unknown);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        let listed: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        match query.get("fieldValidation").unwrap_or("Warn") {
            "Strict" => {
                return Err(ApiError::BadRequest(format!(
                    "strict decoding error: {}",
                    listed.join(", ")
                )));
            }
            "Ignore" => {}
            _ => warnings.extend(listed),
        }
    }
    if let Some(w) = rt.deprecation {
        warnings.push(w.to_string());
    }
    let object = match rt.storage {
        Some(c) => (c.to_storage)(known),
        None => known,
    };
    Ok(Decoded { object, warnings })
}

/// Collects paths present (non-null) in `input` but dropped by the typed round trip.
fn unknown_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None if !v.is_null() => out.push(p),
                    Some(bv) => unknown_fields(v, bv, &p, out),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unknown_fields_with_paths() {
        let input = json!({"spec": {"replicas": 1, "bogus": 2, "template": {"spec": {"containers": [{"name": "a", "colour": "red"}]}}}});
        let known =
            json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}});
        let mut out = Vec::new();
        unknown_fields(&input, &known, "", &mut out);
        assert_eq!(
            out,
            vec!["spec.bogus", "spec.template.spec.containers[0].colour"]
        );
    }
}
