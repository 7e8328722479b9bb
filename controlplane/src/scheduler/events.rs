//! What the scheduler tells people about a pod: the `Scheduled` and `FailedScheduling`
//! Events (`kubectl describe pod`), and the `PodScheduled=False` condition with reason
//! `Unschedulable` (`kubectl get pods` shows `Pending`, and cluster autoscalers read it).
//! `PodScheduled=True` is the API's part: the `binding` subresource sets it.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::podinfo::SCHEDULER_NAME;

/// A core/v1 Event about `pod` from `default-scheduler`.
pub fn pod_event(pod: &Pod, type_: &str, reason: &str, message: String) -> Event {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let now = Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns),
            name: Some(name),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(SCHEDULER_NAME.into()),
            host: None,
        }),
        reporting_component: Some(SCHEDULER_NAME.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// Writes `event`; a failure is only logged (Events are best effort, as in Kubernetes).
pub async fn record(client: &Client, event: Event) {
    let ns = event.metadata.namespace.clone().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, "recording an event failed");
    }
}

/// `Successfully assigned ns/name to node`.
pub async fn scheduled(client: &Client, pod: &Pod, node: &str) {
    let message = format!(
        "Successfully assigned {}/{} to {node}",
        pod.namespace().unwrap_or_default(),
        pod.name_any()
    );
    record(client, pod_event(pod, "Normal", "Scheduled", message)).await;
}

/// Sets `PodScheduled=False` (reason `Unschedulable`, `message`) unless the pod already says
/// exactly that, and records a `FailedScheduling` Warning. The caller writes this once per
/// distinct message, so a pod waiting for room does not flood its Events.
pub async fn unschedulable(client: &Client, pod: &Pod, message: String) {
    let already = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
    if !already {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": Timestamp::now().to_string(),
        }]}});
        let patched = pods
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await;
        if let Err(e) = patched {
            tracing::debug!(error = %e, "setting PodScheduled=False failed");
        }
    }
    record(
        client,
        pod_event(pod, "Warning", "FailedScheduling", message),
    )
    .await;
}
