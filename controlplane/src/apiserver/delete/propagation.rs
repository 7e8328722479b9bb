//! Cascading deletion as the API server's half of it: `DeleteOptions.propagationPolicy` (and
//! the legacy `orphanDependents`) become the finalizers the garbage collector acts on, as
//! kube-apiserver's `deletionFinalizersForGarbageCollection` does.
//!
//! `Background` deletes the owner at once (the collector removes dependents afterwards);
//! `Foreground` holds the owner with [`FOREGROUND`] until its blocking dependents are gone;
//! `Orphan` holds it with [`ORPHAN`] until its dependents no longer point at it. A second
//! delete may switch policy: the finalizers are recomputed each time, so a `Background` delete
//! of an object stuck in foreground deletion removes it at once.

use serde_json::{Value, json};

use crate::apiserver::error::{ApiError, Subject};
use crate::registry::{Causes, ResourceType};

/// The finalizer of an owner whose dependents are deleted first (`metav1.FinalizerDeleteDependents`).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner whose dependents are orphaned first (`metav1.FinalizerOrphanDependents`).
pub const ORPHAN: &str = "orphan";

/// What happens to an object's dependents when it is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// The owner goes now; the garbage collector deletes the dependents afterwards.
    Background,
    /// The owner stays, marked, until the garbage collector has deleted its dependents.
    Foreground,
    /// The owner stays until the garbage collector has removed it from its dependents.
    Orphan,
}

impl Propagation {
    /// The policy a kind gets when a delete names none. Every kind cascades in the background
    /// except core/v1 ReplicationControllers, which orphan for backward compatibility
    /// (kube-apiserver's `rcStrategy.DefaultGarbageCollectionPolicy`); `kubectl delete` always
    /// names a policy (`Background` unless `--cascade` says otherwise).
    pub fn default_for(rt: &ResourceType) -> Self {
        if rt.group.is_empty() && rt.kind == "ReplicationController" {
            Propagation::Orphan
        } else {
            Propagation::Background
        }
    }
}

/// The policy a delete asked for: `propagationPolicy` or `orphanDependents` from the query or
/// the `DeleteOptions` body (the query wins), checked as `ValidateDeleteOptions` does.
pub fn requested(
    query_policy: Option<&str>,
    query_orphan: Option<&str>,
    body: &Value,
) -> Result<Option<Propagation>, ApiError> {
    let policy = query_policy
        .map(str::to_string)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|p| !p.is_empty());
    let orphan = match query_orphan {
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid value for orphanDependents: {other:?}"
            )));
        }
        None => body.get("orphanDependents").and_then(Value::as_bool),
    };
    let mut causes = Causes::default();
    if orphan.is_some()
        && let Some(p) = &policy
    {
        causes.invalid(
            "propagationPolicy",
            &json!(p),
            "orphanDependents and deletionPropagation cannot be both set",
        );
    }
    let parsed = match policy.as_deref() {
        None => None,
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Background") => Some(Propagation::Background),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            causes.not_supported(
                "propagationPolicy",
                &json!(other),
                &["Foreground", "Background", "Orphan", "nil"],
            );
            None
        }
    };
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            subject: Subject {
                name: String::new(),
                group: "meta.k8s.io".into(),
                plural: "deleteoptions".into(),
                kind: "DeleteOptions".into(),
            },
            causes: causes.0,
        });
    }
    Ok(match orphan {
        Some(true) => Some(Propagation::Orphan),
        Some(false) => Some(Propagation::Background),
        None => parsed,
    })
}

/// The object's finalizers after a delete with `requested`, or `None` when they stay as they
/// are. Without an explicit policy a finalizer already there decides, then the kind's default.
pub fn finalizers_after(
    rt: &ResourceType,
    obj: &Value,
    requested: Option<Propagation>,
) -> Option<Vec<Value>> {
    let current: Vec<&str> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let has = |f: &str| current.contains(&f);
    let policy = requested.unwrap_or(if has(ORPHAN) {
        Propagation::Orphan
    } else if has(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::default_for(rt)
    });
    let mut next: Vec<&str> = current
        .iter()
        .copied()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .collect();
    match policy {
        Propagation::Orphan => next.push(ORPHAN),
        Propagation::Foreground => next.push(FOREGROUND),
        Propagation::Background => {}
    }
    let same = next.len() == current.len() && next.iter().all(|f| has(f));
    (!same).then(|| next.into_iter().map(|f| json!(f)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn finalizers(obj: &Value) -> Vec<String> {
        obj.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn policy_comes_from_query_or_body_and_orphan_dependents_maps_to_it() {
        let none = json!({});
        assert_eq!(requested(None, None, &none).unwrap(), None);
        assert_eq!(
            requested(Some("Foreground"), None, &none).unwrap(),
            Some(Propagation::Foreground)
        );
        let body = json!({"kind": "DeleteOptions", "propagationPolicy": "Orphan"});
        assert_eq!(
            requested(None, None, &body).unwrap(),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            requested(None, None, &json!({"orphanDependents": true})).unwrap(),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            requested(None, Some("false"), &none).unwrap(),
            Some(Propagation::Background)
        );
    }

    #[test]
    fn rejects_unknown_policy_and_both_fields() {
        let e = requested(Some("Sideways"), None, &json!({})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DeleteOptions \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": \
             supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let both = json!({"orphanDependents": false, "propagationPolicy": "Background"});
        let e = requested(None, None, &both).unwrap_err();
        assert!(
            e.to_string()
                .contains("orphanDependents and deletionPropagation cannot be both set"),
            "{e}"
        );
    }

    #[test]
    fn finalizers_follow_the_policy_and_keep_others() {
        let registry = Registry::new();
        let rs = registry.lookup("apps", "v1", "replicasets").unwrap();
        let obj = json!({"metadata": {"name": "r", "finalizers": ["example.com/keep"]}});
        assert_eq!(
            finalizers_after(rs, &obj, None),
            None,
            "background by default"
        );
        let fg = finalizers_after(rs, &obj, Some(Propagation::Foreground)).unwrap();
        assert_eq!(fg, vec![json!("example.com/keep"), json!(FOREGROUND)]);
        let mut deleting = obj.clone();
        deleting["metadata"]["finalizers"] = json!(fg);
        assert_eq!(
            finalizers_after(rs, &deleting, None),
            None,
            "an existing finalizer decides"
        );
        let orphan = finalizers_after(rs, &deleting, Some(Propagation::Orphan)).unwrap();
        assert_eq!(orphan, vec![json!("example.com/keep"), json!(ORPHAN)]);
        let background = finalizers_after(rs, &deleting, Some(Propagation::Background)).unwrap();
        deleting["metadata"]["finalizers"] = json!(background);
        assert_eq!(finalizers(&deleting), ["example.com/keep"]);
    }

    #[test]
    fn core_replication_controllers_orphan_by_default() {
        let registry = Registry::new();
        let rc = registry.lookup("", "v1", "replicationcontrollers").unwrap();
        let obj = json!({"metadata": {"name": "rc"}});
        assert_eq!(finalizers_after(rc, &obj, None), Some(vec![json!(ORPHAN)]));
        assert_eq!(
            finalizers_after(rc, &obj, Some(Propagation::Background)),
            None
        );
    }
}
