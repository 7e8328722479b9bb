//! Reads: get and list, with label/field selectors, `limit`/`continue` paging, and the
//! Table / PartialObjectMetadata renderings.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, Subject};
use super::request::{Query, Target};
use super::response::{IncludeObject, Rendering, json_response, partial_metadata, served, table};
use super::selectors::{FieldSelector, LabelSelector};
use crate::registry::ResourceType;

/// The label and field selectors of a list or watch.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`; unknown field labels are a 400.
    pub fn from_query(rt: &ResourceType, query: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::BadRequest)?;
        for f in fields.fields() {
            let known = matches!(f, "metadata.name" | "metadata.namespace")
                || rt.strategy.field_labels().iter().any(|(l, _)| *l == f);
            if !known {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok(Self { labels, fields })
    }

    /// Whether a stored object passes both selectors.
    pub fn matches(&self, rt: &ResourceType, obj: &Value) -> bool {
        self.labels.matches(obj.pointer("/metadata/labels"))
            && self.fields.matches(|f| field_value(rt, obj, f))
    }
}

/// The value of a field selector label on an object, as a string ("" when absent).
pub fn field_value(rt: &ResourceType, obj: &Value, field: &str) -> String {
    let pointer = match field {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        _ => rt
            .strategy
            .field_labels()
            .iter()
            .find(|(l, _)| *l == field)
            .map(|(_, p)| *p)
            .unwrap_or(""),
    };
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `GET` on an item.
pub async fn get(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    accept: &str,
) -> Result<Response, ApiError> {
    let rt = t.rt;
    let name = t.name.as_deref().unwrap_or_default();
    let found = state
        .store
        .get(&rt.key(t.namespace.as_deref(), name))
        .await?
        .ok_or_else(|| ApiError::NotFound(Subject::of(rt, name)))?;
    let warnings: Vec<String> = rt.deprecation.map(str::to_string).into_iter().collect();
    let body = match Rendering::from_accept(accept) {
        Rendering::Table => table(
            rt,
            std::slice::from_ref(&found.value),
            json!({"resourceVersion": found.revision.to_string()}),
            IncludeObject::parse(query.get("includeObject")),
            true,
        ),
        Rendering::Metadata => partial_metadata(&found.value),
        Rendering::Full => served(rt, &found.value),
    };
    Ok(json_response(StatusCode::OK, &body, &warnings))
}

/// A `continue` token: where the next page starts and the list's revision.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    /// The last key returned.
    start: String,
    /// The revision of the first page.
    rv: u64,
}

fn encode_continue(c: &Continue) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<Continue, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::BadRequest("continue key is not valid".into()))
}

/// `GET` on a collection (without `watch`).
pub async fn list(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    accept: &str,
) -> Result<Response, ApiError> {
    let rt = t.rt;
    let filter = Filter::from_query(rt, query)?;
    let limit = query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let cont = query
        .get("continue")
        .filter(|c| !c.is_empty())
        .map(decode_continue)
        .transpose()?;
    let prefix = rt.key_prefix(t.namespace.as_deref());
    let (items, revision) = state.store.list(&prefix).await?;
    let list_rv = cont.as_ref().map_or(revision, |c| c.rv);
    let mut selected: Vec<(String, Arc<Value>)> = Vec::new();
    let mut more = false;
    for item in items {
        let key = item_key(&item.value, rt);
        if cont
            .as_ref()
            .is_some_and(|c| key.as_str() <= c.start.as_str())
        {
            continue;
        }
        if !filter.matches(rt, &item.value) {
            continue;
        }
        if limit.is_some_and(|l| selected.len() >= l) {
            more = true;
            break;
        }
        selected.push((key, item.value));
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if more && let Some((last, _)) = selected.last() {
        meta["continue"] = json!(encode_continue(&Continue {
            start: last.clone(),
            rv: list_rv
        }));
    }
    let objects: Vec<Arc<Value>> = selected.into_iter().map(|(_, v)| v).collect();
    let warnings: Vec<String> = rt.deprecation.map(str::to_string).into_iter().collect();
    let body = match Rendering::from_accept(accept) {
        Rendering::Table => table(
            rt,
            &objects,
            meta,
            IncludeObject::parse(query.get("includeObject")),
            true,
        ),
        Rendering::Metadata => {
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": meta, "items": objects.iter().map(|o| partial_metadata(o)).collect::<Vec<_>>()})
        }
        Rendering::Full => {
            json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
            "metadata": meta, "items": objects.iter().map(|o| served(rt, o)).collect::<Vec<_>>()})
        }
    };
    Ok(json_response(StatusCode::OK, &body, &warnings))
}

/// The store key of a stored object (namespace/name order is the list order).
fn item_key(obj: &Value, rt: &ResourceType) -> String {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    rt.key(ns, name)
}
