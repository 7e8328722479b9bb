//! Writes: create, update (PUT) and patch, one generic path for every kind (delete is in
//! [`super::delete`]).
//!
//! Each write decodes the body (`decode.rs`: a round trip through the kind's typed struct,
//! which also finds unknown fields for `fieldValidation`, and conversion to the storage
//! version), lets the kind's
//! strategy default and validate it, and commits it with compare-and-swap on the revision it
//! read. Updates without a `resourceVersion` retry on conflict, as kube-apiserver's
//! `GuaranteedUpdate` does.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::ApiState;
use super::body::{self, content_type};
use super::decode::{Decoded, normalize};
use super::delete::is_graceful_pod;
use super::error::{ApiError, Subject, with_subject};
use super::patch;
use super::request::{Query, Target};
use super::response::{json_response, served};
use crate::registry::meta::now;
use crate::registry::{Causes, CreateContext, ResourceType};
use crate::store::{self, Write};

/// How many times an update without a precondition retries on conflict.
pub(super) const RETRIES: usize = 16;

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    crate::registry::meta::child(
        obj.as_object_mut().expect("objects are JSON objects"),
        "metadata",
    )
}

pub(super) fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Checks metadata common to every kind.
fn validate_meta(rt: &ResourceType, obj: &Value, causes: &mut Causes) {
    match obj.pointer("/metadata/name").and_then(Value::as_str) {
        None | Some("") => causes.required("metadata.name"),
        Some(n) if matches!(rt.kind, "Namespace" | "Service") => {
            causes.dns_label("metadata.name", n)
        }
        Some(n) => causes.dns_subdomain("metadata.name", n),
    }
    causes.labels("metadata.labels", obj.pointer("/metadata/labels"));
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let size: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 256 * 1024 {
            causes.0.push(crate::registry::Cause {
                reason: crate::registry::validation::Reason::TooLong,
                field: "metadata.annotations".into(),
                message: format!("Too long: may not be more than 262144 bytes (got {size})"),
            });
        }
    }
}

fn invalid(rt: &ResourceType, obj: &Value, causes: Causes) -> Result<(), ApiError> {
    if causes.is_empty() {
        return Ok(());
    }
    let mut subject = Subject::of(rt, &name_of(obj));
    subject.group = rt.group.to_string();
    Err(ApiError::Invalid {
        subject,
        causes: causes.0,
    })
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub(super) fn is_dry_run(query: &Query) -> bool {
    query.get("dryRun") == Some("All")
}

/// Checks the namespace exists and is not terminating, for creates in it.
async fn check_namespace(state: &ApiState, ns: &str) -> Result<(), ApiError> {
    let ns_type = state
        .registry
        .by_kind("", "Namespace")
        .expect("namespaces are served");
    let found = state.store.get(&ns_type.key(None, ns)).await?;
    match found {
        None => Err(ApiError::NotFound(Subject::of(ns_type, ns))),
        Some(v) if v.value.pointer("/metadata/deletionTimestamp").is_some() => {
            Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// `POST` to a collection.
pub async fn create(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let rt = t.rt;
    let media = content_type(headers);
    if media == "application/apply-patch+yaml" {
        return Err(patch::server_side_apply_unsupported());
    }
    let raw = body::decode_object(&media, bytes)?;
    let Decoded {
        mut object,
        mut warnings,
    } = normalize(rt, raw, query)?;
    let meta = meta_mut(&mut object);
    if rt.namespaced {
        let url_ns = t.namespace.clone().ok_or(ApiError::MethodNotAllowed)?;
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::BadRequest(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    let name_missing = meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if name_missing
        && let Some(prefix) = meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
    {
        let name = format!("{prefix}{}", random_suffix());
        meta.insert("name".into(), json!(name));
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    for f in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(f);
    }
    if rt.strategy.tracks_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if let Some(ns) = &t.namespace
        && rt.namespaced
    {
        check_namespace(state, ns).await?;
    }
    let strategy = rt.strategy;
    strategy.default(&mut object);
    let (_guard, existing) = allocations(state, rt).await?;
    let ctx = CreateContext {
        existing: &existing,
        cluster_cidr: state.options.cluster_cidr,
        service_cidr: state.options.service_cidr,
    };
    strategy.prepare_create(&mut object, &ctx);
    let mut causes = Causes::default();
    validate_meta(rt, &object, &mut causes);
    strategy.validate(&object, None, &mut causes);
    strategy.validate_allocation(&object, &ctx, &mut causes);
    invalid(rt, &object, causes)?;
    warnings.extend(strategy.warnings(&object));
    let name = name_of(&object);
    if is_dry_run(query) {
        return Ok(json_response(
            StatusCode::CREATED,
            &served(rt, &object),
            &warnings,
        ));
    }
    let key = rt.key(t.namespace.as_deref(), &name);
    let stored = state
        .store
        .write(Write::Create { key, value: object })
        .await
        .map_err(|e| with_subject(e, rt, &name))?;
    Ok(json_response(
        StatusCode::CREATED,
        &served(rt, &stored.value),
        &warnings,
    ))
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The status subresource: only status.
    Status,
    /// Pods' `ephemeralcontainers` subresource: only `spec.ephemeralContainers`.
    EphemeralContainers,
}

/// Merges a requested new object with the current one as kube-apiserver's update strategies
/// do: identity and lifecycle metadata are kept, status or spec is kept depending on `part`,
/// and generation moves when the spec changed.
fn merge_update(rt: &ResourceType, current: &Value, mut new: Value, part: Part) -> Value {
    if part == Part::Status {
        let mut merged = current.clone();
        merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if merged["status"].is_null() {
            merged.as_object_mut().map(|m| m.remove("status"));
        }
        return merged;
    }
    if part == Part::EphemeralContainers {
        let mut merged = current.clone();
        let spec = crate::registry::meta::child(
            merged.as_object_mut().expect("objects are JSON objects"),
            "spec",
        );
        match new.pointer("/spec/ephemeralContainers") {
            Some(list) if !list.is_null() => {
                spec.insert("ephemeralContainers".into(), list.clone());
            }
            _ => {
                spec.remove("ephemeralContainers");
            }
        }
        return merged;
    }
    let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(&mut new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ] {
        match cur_meta.get(f) {
            Some(v) => meta.insert(f.to_string(), v.clone()),
            None => meta.remove(f),
        };
    }
    if rt.strategy.has_status() {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|m| m.remove("status"));
            }
        }
    }
    if rt.strategy.tracks_generation() {
        let spec_of = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let bumped = if spec_of(current) != spec_of(&new) {
            generation + 1
        } else {
            generation
        };
        meta_mut(&mut new).insert("generation".into(), json!(bumped));
    }
    new
}

/// Moves `metadata.generation` on when the field at `pointer` changed (compared defaulted).
fn bump_generation_if_changed(rt: &ResourceType, current: &Value, new: &mut Value, pointer: &str) {
    if rt.strategy.tracks_generation() && current.pointer(pointer) != new.pointer(pointer) {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(new).insert("generation".into(), json!(generation + 1));
    }
}

/// Strips what differs between two reads of the same unchanged object.
pub(super) fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// How an update computes the new object from the current one.
pub enum Change<'a> {
    /// PUT: the object in the body.
    Replace(Value),
    /// PATCH: a patch of the given media type, applied to the current object.
    Patch {
        /// The patch's media type.
        media: &'a str,
        /// The patch document.
        patch: Value,
    },
}

/// `PUT` or `PATCH` on an item (or its status).
pub async fn update(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    change: Change<'_>,
    part: Part,
) -> Result<Response, ApiError> {
    let (object, warnings) = update_object(state, t, query, change, part).await?;
    Ok(json_response(StatusCode::OK, &object, &warnings))
}

/// The update behind [`update`]: returns the object as served, and the warnings.
pub async fn update_object(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
    change: Change<'_>,
    part: Part,
) -> Result<(Value, Vec<String>), ApiError> {
    let rt = t.rt;
    let name = t.name.clone().ok_or(ApiError::MethodNotAllowed)?;
    let key = rt.key(t.namespace.as_deref(), &name);
    let precondition = match &change {
        Change::Replace(body) => body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        Change::Patch { patch, .. } => patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let expected = precondition
        .map(|rv| {
            rv.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))
        })
        .transpose()?;
    for _ in 0..RETRIES {
        let current = state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound(Subject::of(rt, &name)))?;
        let requested = match &change {
            Change::Replace(body) => body.clone(),
            Change::Patch { media, patch } => {
                patch::apply(media, &served(rt, &current.value), patch, rt.kind)?
            }
        };
        if name_of(&requested) != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&requested)
            )));
        }
        let Decoded {
            object,
            mut warnings,
        } = normalize(rt, requested, query)?;
        if let (Some(ns), Some(body_ns)) = (
            &t.namespace,
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str),
        ) && rt.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        let mut object = merge_update(rt, &current.value, object, part);
        rt.strategy.default(&mut object);
        // Held until the write: another create or update could take what this one allocates.
        let (_guard, existing) = match part {
            Part::Main => allocations(state, rt).await?,
            _ => (None, Vec::new()),
        };
        let others: Vec<Arc<Value>> = existing
            .into_iter()
            .filter(|o| o.pointer("/metadata/uid") != current.value.pointer("/metadata/uid"))
            .collect();
        let ctx = CreateContext {
            existing: &others,
            cluster_cidr: state.options.cluster_cidr,
            service_cidr: state.options.service_cidr,
        };
        if part == Part::Main {
            rt.strategy
                .prepare_update(&mut object, &current.value, &ctx);
        }
        if part == Part::EphemeralContainers {
            bump_generation_if_changed(
                rt,
                &current.value,
                &mut object,
                "/spec/ephemeralContainers",
            );
        }
        let mut causes = Causes::default();
        validate_meta(rt, &object, &mut causes);
        match part {
            // The one write that may change a running pod's ephemeral containers.
            Part::EphemeralContainers => {
                crate::registry::pod::validate_ephemeral_containers_update(
                    &object,
                    &current.value,
                    &mut causes,
                )
            }
            Part::Main => {
                rt.strategy
                    .validate(&object, Some(&current.value), &mut causes);
                rt.strategy.validate_allocation(&object, &ctx, &mut causes);
            }
            Part::Status => rt
                .strategy
                .validate(&object, Some(&current.value), &mut causes),
        }
        invalid(rt, &object, causes)?;
        if part == Part::Main {
            warnings.extend(rt.strategy.warnings(&object));
        }
        if let Some(rv) = expected
            && rv != current.revision
        {
            return Err(ApiError::Conflict(Subject::of(rt, &name)));
        }
        if same_object(&object, &current.value) || is_dry_run(query) {
            return Ok((served(rt, &object), warnings));
        }
        let finalized = object.pointer("/metadata/deletionTimestamp").is_some()
            && object
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && !is_graceful_pod(rt, &object);
        let write = if finalized {
            Write::Delete {
                key: key.clone(),
                expected: Some(current.revision),
            }
        } else {
            Write::Update {
                key: key.clone(),
                value: object,
                expected: Some(current.revision),
            }
        };
        match state.store.write(write).await {
            Ok(stored) => return Ok((served(rt, &stored.value), warnings)),
            Err(store::Error::Conflict { .. }) if expected.is_none() => continue,
            Err(e) => return Err(with_subject(e, rt, &name)),
        }
    }
    Err(ApiError::Conflict(Subject::of(rt, &name)))
}

/// For a kind whose objects allocate from a shared pool (ClusterIPs, NodePorts): the lock
/// that serialises such writes and every object of the kind; nothing for other kinds.
async fn allocations<'a>(
    state: &'a ApiState,
    rt: &ResourceType,
) -> Result<(Option<tokio::sync::MutexGuard<'a, ()>>, Vec<Arc<Value>>), ApiError> {
    if !rt.strategy.allocates() {
        return Ok((None, Vec::new()));
    }
    let guard = state.allocation.lock().await;
    let existing = state
        .store
        .list(&rt.key_prefix(None))
        .await?
        .0
        .into_iter()
        .map(|v| v.value)
        .collect();
    Ok((Some(guard), existing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_change_bumps_generation_but_status_is_kept() {
        let registry = crate::registry::Registry::new();
        let rt = registry.lookup("apps", "v1", "deployments").unwrap();
        let cur = json!({"metadata": {"name": "d", "generation": 3, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        let merged = merge_update(rt, &cur, new, Part::Main);
        assert_eq!(merged["metadata"]["generation"], 4);
        assert_eq!(merged["metadata"]["uid"], "u");
        assert_eq!(merged["status"]["replicas"], 1);
    }
}
