//! Subresources with behaviour of their own: `scale` (an autoscaling/v1 Scale view of a
//! workload's replicas), pods' `binding` (the scheduler's write) and `eviction` (a delete that
//! respects PodDisruptionBudgets, in `subresources/eviction.rs`). `status` goes through the generic update
//! with [`Part::Status`].

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::body;
use super::error::{ApiError, Subject};
use super::objects::{self, Change, Part};
use super::patch::{self, MERGE_PATCH};
use super::request::{Query, Target};
use super::response::json_response;
use super::selectors::LabelSelector;
use crate::registry::Causes;
use crate::registry::meta::now;
use crate::store::Write;

mod eviction;

pub use eviction::evict;

fn status_success(code: StatusCode) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
        &[],
    )
}

/// The Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector")
        .map(|s| {
            if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                LabelSelector::from_object(s).to_query()
            } else {
                // ReplicationControllers select with a plain map.
                LabelSelector::from_object(&json!({"matchLabels": s})).to_query()
            }
        })
        .unwrap_or_default();
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector}})
}

/// `GET`, `PUT` or `PATCH` on `.../scale`.
pub async fn scale(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    method: &str,
    media: &str,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let rt = t.rt;
    let name = t.name.clone().unwrap_or_default();
    let current = state
        .store
        .get(&rt.key(t.namespace.as_deref(), &name))
        .await?
        .ok_or_else(|| ApiError::NotFound(Subject::of(rt, &name)))?;
    let scale = scale_of(&current.value);
    if method == "GET" {
        return Ok(json_response(StatusCode::OK, &scale, &[]));
    }
    let requested = match method {
        "PUT" => body::decode_object(media, bytes)?,
        _ => patch::apply(media, &scale, &body::decode_json(bytes)?, "Scale")?,
    };
    let replicas = requested
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(json!(0));
    let mut causes = Causes::default();
    if !replicas.is_i64() {
        causes.invalid("spec.replicas", &replicas, "must be an integer");
    }
    causes.at_least("spec.replicas", Some(&replicas), 0);
    if !causes.is_empty() {
        let subject = Subject {
            name: name.clone(),
            group: "autoscaling".into(),
            plural: "scale".into(),
            kind: "Scale".into(),
        };
        return Err(ApiError::Invalid {
            subject,
            causes: causes.0,
        });
    }
    let mut change = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = requested
        .pointer("/metadata/resourceVersion")
        .filter(|rv| *rv != &scale["metadata"]["resourceVersion"] || method == "PUT")
    {
        change["metadata"] = json!({"resourceVersion": rv});
    }
    let (updated, _) = objects::update_object(
        state,
        t,
        query,
        Change::Patch {
            media: MERGE_PATCH,
            patch: change,
        },
        Part::Main,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &scale_of(&updated), &[]))
}

/// `POST pods/{name}/binding`: assigns the pod to a node, once.
pub async fn bind(
    state: &ApiState,
    t: &Target<'_>,
    media: &str,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let rt = t.rt;
    let name = t.name.clone().unwrap_or_default();
    let binding = body::decode_object(media, bytes)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Invalid {
            subject: Subject {
                name: name.clone(),
                group: String::new(),
                plural: "bindings".into(),
                kind: "Binding".into(),
            },
            causes: vec![crate::registry::Cause {
                reason: crate::registry::validation::Reason::Required,
                field: "target.name".into(),
                message: "Required value".into(),
            }],
        })?
        .to_string();
    let key = rt.key(t.namespace.as_deref(), &name);
    loop {
        let current = state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound(Subject::of(rt, &name)))?;
        let mut pod = (*current.value).clone();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::Conflict(Subject::of(rt, &name)));
        }
        if let Some(n) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            return Err(ApiError::Conflict(Subject::of(rt, &name)).with_message(format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{n}\""
            )));
        }
        pod["spec"]["nodeName"] = json!(node);
        let conditions = pod["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert(json!([])));
        if let Some(Value::Array(list)) = conditions {
            list.retain(|c| c["type"] != "PodScheduled");
            list.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now()}));
        }
        match state
            .store
            .write(Write::Update {
                key: key.clone(),
                value: pod,
                expected: Some(current.revision),
            })
            .await
        {
            Ok(_) => return Ok(status_success(StatusCode::CREATED)),
            Err(crate::store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Subresources served by the node agent, which arrives with the next issue.
pub fn node_served(t: &Target<'_>, sub: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "pods/{sub} for pod \"{}\" is served by the pod's node agent, and no node agent serves it yet \
         (`wasmkube up` starts node agents; `wasmkube server` alone has none)",
        t.name.as_deref().unwrap_or_default()
    ))
}
