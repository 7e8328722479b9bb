//! Building responses: JSON bodies with `Warning:` headers, the served form of stored objects,
//! and the Table / PartialObjectMetadata renderings `kubectl get` and kube-rs ask for.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::table;
use crate::registry::ResourceType;

/// How the client asked for objects to be rendered (from its `Accept` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    /// The objects themselves.
    Full,
    /// A `meta.k8s.io/v1` Table (`kubectl get`).
    Table,
    /// `PartialObjectMetadata` (kube-rs metadata watches).
    Metadata,
}

impl Rendering {
    /// Picks the rendering from an `Accept` header.
    pub fn from_accept(accept: &str) -> Self {
        if accept.contains("as=Table") {
            Rendering::Table
        } else if accept.contains("as=PartialObjectMetadata") {
            Rendering::Metadata
        } else {
            Rendering::Full
        }
    }
}

/// A JSON response with `Warning:` headers (`299 - "text"`), as kube-apiserver sends them.
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (code, bytes).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = format!("299 - {:?}", w.replace('"', "'"));
        if let Ok(v) = HeaderValue::from_str(&text) {
            headers.append(header::WARNING, v);
        }
    }
    resp
}

/// The object as the client's version sees it (converted from the storage version).
pub fn served(rt: &ResourceType, stored: &Value) -> Value {
    match rt.storage {
        Some(c) => (c.from_storage)(stored.clone()),
        None => stored.clone(),
    }
}

/// The `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// What `includeObject` asks rows to carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// From the `includeObject` query parameter.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Renders objects as a `meta.k8s.io/v1` Table, with the kind's columns.
pub fn table(
    rt: &ResourceType,
    objects: &[Arc<Value>],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let columns: Vec<Value> = if with_columns {
        table::columns(rt.kind)
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.type_, "format": c.format,
                "description": c.description, "priority": c.priority})
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let obj = served(rt, o);
            let mut row = json!({"cells": table::cells(rt.kind, &obj, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(&obj),
                IncludeObject::Object => row["object"] = obj,
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": columns, "rows": rows})
}
