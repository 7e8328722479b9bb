//! Binding a pod to the node chosen for it: `POST pods/{name}/binding`, as every scheduler
//! does (the API sets `spec.nodeName` and `PodScheduled=True`), then the `Scheduled` Event.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

use super::events;
use super::podinfo::pod_key;

/// How one bind went.
#[derive(Debug)]
pub struct Bound {
    /// The pod's `namespace/name`.
    pub key: String,
    /// The node it was bound to (or was meant to be).
    pub node: String,
    /// The API's answer.
    pub result: Result<(), kube::Error>,
    /// Whether it failed before the Binding, telling the pod's claims their node (so even a
    /// 404, a claim gone, means "decide again", not "the pod is gone").
    pub pre_bind: bool,
}

/// Binds `pod` to `node`; on success records the `Scheduled` Event.
#[tracing::instrument(skip_all, fields(pod = %pod_key(&pod), node = %node))]
pub async fn bind(client: Client, pod: Arc<Pod>, node: String) -> Bound {
    let key = pod_key(&pod);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            namespace: pod.namespace(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..Default::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let result = api
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            &pod.name_any(),
            &PostParams::default(),
            &binding,
        )
        .await
        .map(drop);
    match &result {
        Ok(()) => {
            tracing::debug!("bound");
            events::scheduled(&client, &pod, &node).await;
        }
        Err(e) => tracing::debug!(error = %e, "binding failed"),
    }
    Bound {
        key,
        node,
        result,
        pre_bind: false,
    }
}
