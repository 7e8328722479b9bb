//! Deletes: `DELETE` on an item or a collection, with kube-apiserver's lifecycle: a namespace
//! starts terminating, finalizers hold an object back, a pod on a node gets its grace period
//! (its node agent finishes the deletion), and anything else goes at once. The propagation
//! policy adds or removes the garbage collector's finalizers first (`delete/propagation.rs`).

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

mod propagation;

pub use propagation::{FOREGROUND, ORPHAN, Propagation};

/// A pod whose graceful deletion is still under way (its node agent finishes it): bound, and
/// not yet given the zero grace period that says its containers are gone. Once it has that,
/// removing its last finalizer removes it, as kube-apiserver does when
/// `deletionGracePeriodSeconds` is 0.
pub(super) fn is_graceful_pod(rt: &ResourceType, obj: &Value) -> bool {
    rt.kind == "Pod"
        && rt.group.is_empty()
        && obj.pointer("/spec/nodeName").is_some()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            != Some(0)
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
    /// The propagation policy asked for (`None`: the object's finalizers or the kind decide).
    propagation: Option<Propagation>,
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
        propagation: propagation::requested(
            query.get("propagationPolicy"),
            query.get("orphanDependents"),
            &body,
        )?,
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
        let next = deletion_step(rt, obj, &opts);
        if opts.dry_run {
            let shown = next.as_ref().unwrap_or(obj);
            return Ok(json_response(StatusCode::OK, &served(rt, shown), &[]));
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
/// The propagation policy's finalizers are set first, except on a pod whose grace period is
/// already running (kube-apiserver: finalizers cannot change once a deletion is pending).
fn deletion_step(rt: &ResourceType, obj: &Value, opts: &DeleteOptions) -> Option<Value> {
    let mut next = obj.clone();
    let already = obj.pointer("/metadata/deletionTimestamp").is_some();
    if rt.kind == "Namespace" && rt.group.is_empty() {
        if !already {
            meta_mut(&mut next).insert("deletionTimestamp".into(), json!(now()));
            next["status"] = json!({"phase": "Terminating"});
        }
        return Some(next);
    }
    let finalizers = propagation::finalizers_after(rt, obj, opts.propagation);
    if deletes_gracefully(rt, obj) {
        let grace = opts
            .grace
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0);
        let current = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        // A second delete may only shorten the grace period.
        if current.is_some_and(|c| grace >= c) {
            return Some(next);
        }
        if let Some(f) = finalizers {
            meta_mut(&mut next).insert("finalizers".into(), Value::Array(f));
        }
        if grace == 0 && !has_finalizers(&next) {
            return None;
        }
        let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
        let meta = meta_mut(&mut next);
        meta.insert(
            "deletionTimestamp".into(),
            json!(deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        return Some(next);
    }
    if let Some(f) = finalizers {
        meta_mut(&mut next).insert("finalizers".into(), Value::Array(f));
    }
    if !has_finalizers(&next) {
        return None;
    }
    if !already {
        let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
        let meta = meta_mut(&mut next);
        meta.insert("deletionTimestamp".into(), json!(now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        // kube-apiserver's markAsDeleting: the object changed, so its generation moves.
        if let Some(g) = generation.filter(|g| *g > 0) {
            meta.insert("generation".into(), json!(g + 1));
        }
    }
    Some(next)
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
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

    fn opts(grace: Option<i64>, propagation: Option<Propagation>) -> DeleteOptions {
        DeleteOptions {
            grace,
            uid: None,
            resource_version: None,
            dry_run: false,
            propagation,
        }
    }

    #[test]
    fn deleting_a_bound_pod_is_graceful() {
        let registry = crate::registry::Registry::new();
        let rt = registry.lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}});
        let next = deletion_step(rt, &pod, &opts(None, None)).unwrap();
        assert_eq!(next["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(deletion_step(rt, &pod, &opts(Some(0), None)).is_none());
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(deletion_step(rt, &unbound, &opts(None, None)).is_none());
        let mut done = pod.clone();
        done["status"] = json!({"phase": "Failed", "reason": "OutOfpods"});
        assert!(
            deletion_step(rt, &done, &opts(None, None)).is_none(),
            "a terminal pod goes at once"
        );
    }

    #[test]
    fn foreground_and_orphan_hold_the_owner_with_a_finalizer() {
        let registry = crate::registry::Registry::new();
        let rt = registry.lookup("apps", "v1", "replicasets").unwrap();
        let rs = json!({"metadata": {"name": "r", "generation": 2}, "spec": {}});
        assert!(deletion_step(rt, &rs, &opts(None, None)).is_none());
        let held = deletion_step(rt, &rs, &opts(None, Some(Propagation::Foreground))).unwrap();
        assert_eq!(held["metadata"]["finalizers"], json!([FOREGROUND]));
        assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(held["metadata"]["generation"], 3);
        assert!(held.pointer("/metadata/deletionTimestamp").is_some());
        // Deleting again in the background lets it go at once.
        assert!(deletion_step(rt, &held, &opts(None, Some(Propagation::Background))).is_none());
        let orphan = deletion_step(rt, &held, &opts(None, Some(Propagation::Orphan))).unwrap();
        assert_eq!(orphan["metadata"]["finalizers"], json!([ORPHAN]));
        assert_eq!(
            orphan["metadata"]["generation"], 3,
            "already deleting: no second bump"
        );
    }

    #[test]
    fn a_pending_grace_period_keeps_its_finalizers() {
        let registry = crate::registry::Registry::new();
        let rt = registry.lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let terminating = deletion_step(rt, &pod, &opts(None, None)).unwrap();
        let again =
            deletion_step(rt, &terminating, &opts(None, Some(Propagation::Orphan))).unwrap();
        assert!(again["metadata"].get("finalizers").is_none());
        // The node agent's final grace-0 delete of a pod held in the foreground keeps it.
        let held = deletion_step(rt, &pod, &opts(None, Some(Propagation::Foreground))).unwrap();
        let mut done = deletion_step(rt, &held, &opts(Some(0), None)).unwrap();
        assert_eq!(done["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(done["metadata"]["finalizers"], json!([FOREGROUND]));
        assert!(!is_graceful_pod(rt, &done), "its containers are gone");
        done["metadata"]["finalizers"] = json!([]);
        assert!(deletion_step(rt, &done, &opts(Some(0), None)).is_none());
    }
}
