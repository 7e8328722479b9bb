//! The scheduler's loop against a real API server in-process (memory store, kube client over
//! the router): binds, spreading, the unschedulable report and the retry when a node arrives.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{SchedulerOptions, run};
use crate::apiserver::{self, ApiState, Options};
use crate::store::memory::MemoryStore;

async fn cluster() -> (Client, Arc<ApiState>) {
    let state = ApiState::new(
        Arc::new(MemoryStore::new()),
        Options::default(),
        CancellationToken::new(),
    );
    let client = Client::new(apiserver::router(state.clone()), "default");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
    (client, state)
}

/// Registers a Ready node as a node agent does: create, then its status.
async fn add_node(client: &Client, name: &str, cpu: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

async fn add_pod(client: &Client, name: &str, cpu: &str, owner: Option<&str>) {
    let mut pod = json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "web", "resources": {"requests": {"cpu": cpu}}}]},
    });
    if let Some(owner) = owner {
        pod["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true,
        }]);
    }
    let pod: Pod = serde_json::from_value(pod).unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// Polls `check` every 20 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

#[tokio::test]
async fn binds_spreads_reports_and_retries_when_a_node_arrives() {
    let (client, _state) = cluster().await;
    add_node(&client, "n1", "2").await;
    add_node(&client, "n2", "2").await;
    let stop = CancellationToken::new();
    let options = SchedulerOptions {
        retry_unschedulable: Duration::from_secs(600),
    };
    let task = tokio::spawn(run(client.clone(), options, stop.clone()));

    for i in 0..4 {
        add_pod(&client, &format!("web-{i}"), "100m", Some("rs-web")).await;
    }
    add_pod(&client, "big", "3", None).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("4 replicas bound", || async {
        let list = pods.list(&ListParams::default()).await.unwrap();
        list.items.iter().filter(|p| node_of(p).is_some()).count() == 4
    })
    .await;
    let list = pods.list(&ListParams::default()).await.unwrap();
    let on_n1 = list
        .items
        .iter()
        .filter(|p| node_of(p).as_deref() == Some("n1"))
        .count();
    assert_eq!(on_n1, 2, "2/2 over two equal nodes");

    let message = "0/2 nodes are available: 2 Insufficient cpu.";
    eventually("big marked unschedulable", || async {
        let big = pods.get("big").await.unwrap();
        big.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(message)
            })
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let failed = || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .collect::<Vec<_>>()
    };
    eventually("a FailedScheduling event", || async {
        !failed().await.is_empty()
    })
    .await;
    // The status patch echoes back through the watch; it must not write a second event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failed = failed().await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    assert_eq!(failed[0].message.as_deref(), Some(message));
    let scheduled = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
        .count();
    assert_eq!(scheduled, 4);

    add_node(&client, "large", "8").await;
    eventually("big bound once a large node arrives", || async {
        node_of(&pods.get("big").await.unwrap()).as_deref() == Some("large")
    })
    .await;
    let big = pods.get("big").await.unwrap();
    let scheduled = big
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        scheduled.status, "True",
        "the binding sets PodScheduled=True"
    );

    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn pods_for_another_scheduler_are_left_alone() {
    let (client, _state) = cluster().await;
    add_node(&client, "n1", "2").await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(
        client.clone(),
        SchedulerOptions::default(),
        stop.clone(),
    ));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let other: Pod = serde_json::from_value(json!({
        "metadata": {"name": "other"},
        "spec": {"schedulerName": "my-scheduler", "containers": [{"name": "c", "image": "web"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &other).await.unwrap();
    add_pod(&client, "mine", "100m", None).await;
    eventually("mine bound", || async {
        node_of(&pods.get("mine").await.unwrap()).is_some()
    })
    .await;
    assert_eq!(node_of(&pods.get("other").await.unwrap()), None);
    stop.cancel();
    task.await.unwrap();
}
