//! Namespace deletion: a namespace marked `Terminating` loses every namespaced object in it,
//! then disappears itself.
//!
//! Deleting goes through the same code as an API `DELETE`, so finalizers hold objects back and
//! pods on a node get their grace period; the namespace stays `Terminating` until nothing is
//! left, re-checked every `retry` until then. Level-triggered: every namespace event, and the
//! periodic retry, re-examines all terminating namespaces.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::apiserver::ApiState;
use crate::apiserver::delete;
use crate::apiserver::error::ApiError;
use crate::apiserver::request::{Query, Target};
use crate::store::{self, Write};

/// Runs the controller until the server shuts down.
pub async fn run(state: Arc<ApiState>, retry: Duration) {
    let Some(ns_type) = state.registry.by_kind("", "Namespace") else {
        return;
    };
    let prefix = ns_type.key_prefix(None);
    loop {
        let mut watch = match state.store.watch(&prefix, state.store.revision()) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "namespace controller cannot watch namespaces");
                return;
            }
        };
        let pending = match sweep(&state).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "namespace cleanup failed; retrying");
                true
            }
        };
        let wait = async {
            if pending {
                tokio::time::sleep(retry).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = wait => {}
            event = watch.next() => if let Err(store::Error::Closed) = event { return },
        }
    }
}

/// Cleans every terminating namespace; `Ok(true)` while some still have contents.
async fn sweep(state: &ApiState) -> Result<bool, ApiError> {
    let Some(ns_type) = state.registry.by_kind("", "Namespace") else {
        return Ok(false);
    };
    let (namespaces, _) = state.store.list(&ns_type.key_prefix(None)).await?;
    let mut pending = false;
    for ns in namespaces
        .iter()
        .filter(|n| n.value.pointer("/metadata/deletionTimestamp").is_some())
    {
        let name = ns
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if remove_contents(state, name).await? > 0 {
            pending = true;
            continue;
        }
        let finalizers = ns
            .value
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array);
        if finalizers.is_some_and(|f| !f.is_empty()) {
            pending = true;
            continue;
        }
        let key = ns_type.key(None, name);
        match state
            .store
            .write(Write::Delete {
                key,
                expected: Some(ns.revision),
            })
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "namespace deleted"),
            Err(store::Error::Conflict { .. } | store::Error::NotFound { .. }) => pending = true,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(pending)
}

/// Deletes what is left in namespace `ns`; returns how many objects remain.
async fn remove_contents(state: &ApiState, ns: &str) -> Result<usize, ApiError> {
    let mut remaining = 0;
    let query = Query::default();
    for rt in state
        .registry
        .types()
        .iter()
        .filter(|t| t.namespaced && t.storage.is_none())
    {
        let (items, _) = state.store.list(&rt.key_prefix(Some(ns))).await?;
        for item in &items {
            remaining += 1;
            let name = item
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let target = Target {
                rt,
                namespace: Some(ns.to_string()),
                name: Some(name.to_string()),
                subresource: None,
            };
            match delete::delete(state, &target, &query, &[]).await {
                Ok(_) | Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(remaining)
}
