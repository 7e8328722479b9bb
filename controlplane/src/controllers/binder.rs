//! A stand-in for the scheduler until it arrives: binds every pod without a node to the first
//! Ready node, through the API's `binding` subresource like any scheduler.
//!
//! Level-triggered: each pass lists unbound pods and Ready nodes; passes run on every pod or
//! node change and every `resync`. The scheduler issue replaces this with filters and scores.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Event, EventSource, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown`.
pub async fn run(client: Client, resync: Duration, shutdown: CancellationToken) {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let unbound = watcher::Config::default().fields("spec.nodeName=");
    let mut pod_changes = watcher(pods.clone(), unbound).boxed();
    let mut node_changes = watcher(nodes.clone(), watcher::Config::default()).boxed();
    loop {
        if let Err(e) = bind_pending(&client, &pods, &nodes).await {
            tracing::debug!(error = %e, "binding pass failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = pod_changes.next() => {}
            _ = node_changes.next() => {}
            () = tokio::time::sleep(resync) => {}
        }
    }
}

async fn bind_pending(
    client: &Client,
    pods: &Api<Pod>,
    nodes: &Api<Node>,
) -> Result<(), kube::Error> {
    let pending = pods
        .list(&ListParams::default().fields("spec.nodeName="))
        .await?;
    if pending.items.is_empty() {
        return Ok(());
    }
    let mut ready: Vec<String> = nodes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|n| {
            is_ready(n)
                && !n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false)
        })
        .map(|n| n.name_any())
        .collect();
    ready.sort();
    let Some(node) = ready.first() else {
        return Ok(());
    };
    for pod in pending
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let ns = pod.namespace().unwrap_or_default();
        let binding = Binding {
            metadata: kube::api::ObjectMeta {
                name: Some(pod.name_any()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let name = pod.name_any();
        let params = PostParams::default();
        let bound = api
            .create_subresource::<Binding, serde_json::Value>("binding", &name, &params, &binding);
        match bound.await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), node, "bound");
                scheduled_event(client, pod, node).await;
            }
            Err(e) => tracing::debug!(error = %e, "binding failed"),
        }
    }
    Ok(())
}

/// The `Scheduled` Event `kubectl describe pod` shows first, as the scheduler writes it.
async fn scheduled_event(client: &Client, pod: &Pod, node: &str) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(ns.clone()),
            name: Some(name.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some("Scheduled".into()),
        message: Some(format!("Successfully assigned {ns}/{name} to {node}")),
        type_: Some("Normal".into()),
        source: Some(EventSource {
            component: Some("default-scheduler".into()),
            host: None,
        }),
        reporting_component: Some("default-scheduler".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, "recording the Scheduled event failed");
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
