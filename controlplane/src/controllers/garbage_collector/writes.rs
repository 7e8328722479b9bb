//! The garbage collector's writes: deleting an object whose owners are gone, removing
//! ownerReferences, removing its own finalizers. Each takes a 404 as done.

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use serde_json::json;

use super::graph::Key;
use super::{Error, Shared};
use crate::apiserver::delete::Propagation;

impl Shared {
    /// Deletes `key` (uid `uid`) as it was judged at `resource_version`, with `propagation`
    /// for its own dependents. `Ok(false)`: it changed since (409), so it must be judged again.
    pub(super) async fn delete(
        &self,
        key: &Key,
        uid: String,
        resource_version: Option<String>,
        propagation: Propagation,
    ) -> Result<bool, Error> {
        tracing::info!(kind = %self.kinds[key.kind].resource.kind, namespace = ?key.namespace,
            name = %key.name, ?propagation, "deleting an object whose owners are gone");
        let params = DeleteParams {
            propagation_policy: Some(match propagation {
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Foreground => PropagationPolicy::Foreground,
                Propagation::Orphan => PropagationPolicy::Orphan,
            }),
            // Only the object that was judged: not a namesake, not after its owners changed.
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version,
            }),
            ..DeleteParams::default()
        };
        match self.api(key).delete(&key.name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(true),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `finalizer` from `key` (a set removal: other finalizers stay untouched).
    pub(super) async fn remove_finalizer(&self, key: &Key, finalizer: &str) -> Result<(), Error> {
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer]}});
        tracing::info!(kind = %self.kinds[key.kind].resource.kind, namespace = ?key.namespace,
            name = %key.name, finalizer, "removing finalizer");
        ignore_not_found(
            self.api(key)
                .patch(&key.name, &PatchParams::default(), &Patch::Strategic(patch))
                .await,
        )
    }

    /// Removes the ownerReferences to `owners` from `key`.
    pub(super) async fn drop_owners(&self, key: &Key, owners: &[String]) -> Result<(), Error> {
        let refs: Vec<_> = owners
            .iter()
            .map(|uid| json!({"$patch": "delete", "uid": uid}))
            .collect();
        let patch = json!({"metadata": {"ownerReferences": refs}});
        ignore_not_found(
            self.api(key)
                .patch(&key.name, &PatchParams::default(), &Patch::Strategic(patch))
                .await,
        )
    }
}

fn ignore_not_found<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
