//! Deletes: `DELETE` on an item or a collection, with kube-apiserver's lifecycle: a namespace
//! starts terminating, finalizers hold an object back, a pod on a node gets its grace period
//! (its node agent finishes the deletion), and anything else goes at once.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::ApiState;
use super::body;
use super::error::{ApiError, Subject, with_subject};
use super::objects::{RETRIES, is_dry_run, meta_mut, name_of, same_object};
use super::request::{Query, Target};
use super::response::{json_response, served};
use crate::registry::ResourceType;
use crate::registry::meta::now;
use crate::store::{self, Versioned, Write};

/// A pod whose graceful deletion is still under way (its node agent finishes it).
pub(super) fn is_graceful_pod(rt: &ResourceType, obj: &Value) -> bool {
    rt.kind == "Pod" && rt.group.is_empty() && obj.pointer("/spec/nodeName").is_some()
}

/// Whether a DELETE of this pod waits for its node: bound and not yet Succeeded or Failed
/// (kube-apiserver deletes unbound and terminal pods at once).
fn deletes_gracefully(rt: &ResourceType, obj: &Value) -> bool {
    let terminal = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    is_graceful_pod(rt, obj) && !terminal
}

/// `DeleteOptions` from the body and query.
struct DeleteOptions {
    grace: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
    dry_run: bool,
}

fn delete_options(query: &Query, bytes: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body::decode_json(bytes)?
    };
    Ok(DeleteOptions {
        grace: query
            .int("gracePeriodSeconds")?
            .or_else(|| body.get("gracePeriodSeconds").and_then(Value::as_i64)),
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: is_dry_run(query)
            || body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "All")),
    })
}

/// `DELETE` on an item.
pub async fn delete(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let rt = t.rt;
    let name = t.name.clone().ok_or(ApiError::MethodNotAllowed)?;
    let opts = delete_options(query, bytes)?;
    let key = rt.key(t.namespace.as_deref(), &name);
    for _ in 0..RETRIES {
        let current = state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound(Subject::of(rt, &name)))?;
        let obj = &current.value;
        if opts
            .uid
            .as_deref()
            .is_some_and(|u| Some(u) != obj.pointer("/metadata/uid").and_then(Value::as_str))
            || opts
                .resource_version
                .as_deref()
                .is_some_and(|rv| rv != current.revision.to_string())
        {
            return Err(ApiError::Conflict(Subject::of(rt, &name)));
        }
        let next = deletion_step(rt, obj, opts.grace);
        if opts.dry_run {
            return Ok(json_response(StatusCode::OK, &served(rt, obj), &[]));
        }
        let write = match next {
            Some(v) if same_object(&v, obj) => {
                return Ok(json_response(StatusCode::OK, &served(rt, obj), &[]));
            }
            Some(v) => Write::Update {
                key: key.clone(),
                value: v,
                expected: Some(current.revision),
            },
            None => Write::Delete {
                key: key.clone(),
                expected: Some(current.revision),
            },
        };
        let is_removal = matches!(write, Write::Delete { .. });
        match state.store.write(write).await {
            Ok(Versioned { value, .. }) => {
                let code = if is_removal {
                    StatusCode::OK
                } else {
                    StatusCode::ACCEPTED
                };
                return Ok(json_response(code, &served(rt, &value), &[]));
            }
            Err(store::Error::Conflict { .. } | store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(with_subject(e, rt, &name)),
        }
    }
    Err(ApiError::Conflict(Subject::of(rt, &name)))
}

/// What a delete does to `obj`: `None` removes it now; `Some(v)` marks it for deletion (a
/// namespace starts terminating, finalizers must run, a running pod gets its grace period).
fn deletion_step(rt: &ResourceType, obj: &Value, grace: Option<i64>) -> Option<Value> {
    let mut next = obj.clone();
    let already = obj.pointer("/metadata/deletionTimestamp").is_some();
    let has_finalizers = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if rt.kind == "Namespace" && rt.group.is_empty() {
        if !already {
            meta_mut(&mut next).insert("deletionTimestamp".into(), json!(now()));
            next["status"] = json!({"phase": "Terminating"});
        }
        return Some(next);
    }
    if deletes_gracefully(rt, obj) {
        let grace = grace
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0);
        let current = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        if grace == 0 && !has_finalizers {
            return None;
        }
        // A second delete may only shorten the grace period.
        if current.is_none_or(|c| grace < c) {
            let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            let meta = meta_mut(&mut next);
            meta.insert(
                "deletionTimestamp".into(),
                json!(deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        return Some(next);
    }
    if has_finalizers {
        if !already {
            let meta = meta_mut(&mut next);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        return Some(next);
    }
    None
}

/// `DELETE` on a collection: deletes every object the selectors match.
pub async fn delete_collection(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let filter = super::read::Filter::from_query(t.rt, query)?;
    let (items, _) = state
        .store
        .list(&t.rt.key_prefix(t.namespace.as_deref()))
        .await?;
    for item in items.iter().filter(|i| filter.matches(t.rt, &i.value)) {
        let name = name_of(&item.value);
        let ns = item
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let target = Target {
            rt: t.rt,
            namespace: ns,
            name: Some(name),
            subresource: None,
        };
        match delete(state, &target, query, bytes).await {
            Ok(_) | Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_bound_pod_is_graceful() {
        let registry = crate::registry::Registry::new();
        let rt = registry.lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}});
        let next = deletion_step(rt, &pod, None).unwrap();
        assert_eq!(next["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(deletion_step(rt, &pod, Some(0)).is_none());
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(deletion_step(rt, &unbound, None).is_none());
        let mut done = pod.clone();
        done["status"] = json!({"phase": "Failed", "reason": "OutOfpods"});
        assert!(
            deletion_step(rt, &done, None).is_none(),
            "a terminal pod goes at once"
        );
    }
}
