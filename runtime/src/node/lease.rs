//! The node's heartbeat: a `coordination.k8s.io/v1` Lease named after the node in
//! `kube-node-lease`, renewed every `lease_renew_interval` (10 s) with a
//! `leaseDurationSeconds` of 40, owned by the Node so it goes when the Node goes.
//!
//! The node-lifecycle controller reads `spec.renewTime`; a node whose lease is older than
//! the duration is NotReady. An unreachable API server only delays the next renewal: the
//! loop keeps trying and never touches the pods.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";
/// `spec.leaseDurationSeconds` of the node lease, as the kubelet sets it.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// What can go wrong renewing the lease.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action} lease {NAMESPACE}/{node}")]
    Api {
        /// What was attempted.
        action: &'static str,
        /// The node name.
        node: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The lease of a node, as first created.
pub fn lease(node: &str, node_uid: &str, now: jiff::Timestamp) -> Lease {
    let owner = (!node_uid.is_empty()).then(|| OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_string(),
        uid: node_uid.to_string(),
        ..OwnerReference::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews the lease once, creating it if it does not exist.
pub async fn renew(api: &Api<Lease>, node: &str, node_uid: &str) -> Result<(), Error> {
    let now = jiff::Timestamp::now();
    let err = |action: &'static str| {
        move |source| Error::Api {
            action,
            node: node.to_string(),
            source,
        }
    };
    let patch = json!({
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": MicroTime(now),
        }
    });
    match api
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => {
            match api
                .create(&PostParams::default(), &lease(node, node_uid, now))
                .await
            {
                Ok(_) => Ok(()),
                // Someone (a previous run still shutting down) created it meanwhile.
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
                Err(e) => Err(err("creating")(e)),
            }
        }
        Err(e) => Err(err("renewing")(e)),
    }
}

/// Renews the lease every `interval` until `shutdown`. Failures are logged and retried at
/// the next tick (at most `interval` apart, so a brief outage costs one renewal).
pub async fn run(
    client: kube::Client,
    node: String,
    node_uid: String,
    interval: std::time::Duration,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = renew(&api, &node, &node_uid).await {
            tracing::warn!(node = %node, error = %error, "node lease renewal failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_held_by_the_node_and_owned_by_it() {
        let l = serde_json::to_value(lease("n1", "u-1", jiff::Timestamp::UNIX_EPOCH)).unwrap();
        assert_eq!(l["metadata"]["namespace"], NAMESPACE);
        assert_eq!(l["spec"]["holderIdentity"], "n1");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert!(
            l["spec"]["renewTime"]
                .as_str()
                .unwrap()
                .starts_with("1970-01-01T00:00:00")
        );
    }
}
