//! The node lifecycle controller against a real API server: nodes that stop sending
//! heartbeats turn `Unknown` and get tainted, their pods are marked not Ready and evicted by
//! their tolerations, and it all goes away when the node is back.

use std::time::Duration;

use controlplane::controllers::node_lifecycle;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Taint};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, PodBuilder, Running, eventually};

const WAIT: Duration = Duration::from_secs(10);

/// Registers node `name` whose status says `ready` with a heartbeat at `heartbeat`.
async fn node(cluster: &Cluster, name: &str, ready: &str, heartbeat: Timestamp) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    post_status(cluster, name, ready, heartbeat).await;
}

/// Writes the node's status as its agent does.
async fn post_status(cluster: &Cluster, name: &str, ready: &str, heartbeat: Timestamp) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let beat = heartbeat.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let status = json!({"status": {"conditions": [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
            "lastHeartbeatTime": beat, "lastTransitionTime": beat},
        {"type": "Ready", "status": ready, "reason": "KubeletReady",
            "lastHeartbeatTime": beat, "lastTransitionTime": beat}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("node status set");
}

/// A heartbeat that stays fresh for the whole test.
fn forever() -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(1)
}

fn taints(node: &Node) -> Vec<String> {
    let mut t: Vec<String> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t: &Taint| format!("{}:{}", t.key, t.effect))
        .collect();
    t.sort();
    t
}

fn condition(node: &Node, type_: &str) -> (String, String, String) {
    let c = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .expect("the condition");
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

async fn wait_for_node<F>(cluster: &Cluster, name: &str, what: &str, ok: F) -> Node
where
    F: Fn(&Node) -> bool,
{
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    eventually(WAIT, || async {
        let n = nodes.get(name).await.map_err(|e| e.to_string())?;
        if ok(&n) {
            Ok(n)
        } else {
            Err(format!("{name} is not {what}: {:?}", n.status))
        }
    })
    .await
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn pod_ready(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn tolerate_unreachable(seconds: i64) -> serde_json::Value {
    json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
        "tolerationSeconds": seconds})
}

async fn reasons(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_silent_node_is_marked_unknown_tainted_and_its_pods_evicted_by_toleration() {
    let cluster = Cluster::start().await;
    node(&cluster, "alive", "True", forever()).await;
    node(&cluster, "gone", "True", Timestamp::now()).await;
    let pods = cluster.pods();
    for (name, seconds) in [("strict", Some(0)), ("patient", Some(2)), ("default", None)] {
        let mut pod = PodBuilder::named(name).container("c").node("gone").ready();
        if let Some(s) = seconds {
            pod = pod.toleration(tolerate_unreachable(s));
        }
        pod.create(&cluster).await;
    }
    let _nlc = Running::informed(&cluster, node_lifecycle::run);

    let gone = wait_for_node(&cluster, "gone", "Unknown", |n| {
        condition(n, "Ready").0 == "Unknown"
    })
    .await;
    assert_eq!(
        condition(&gone, "Ready"),
        (
            "Unknown".into(),
            "NodeStatusUnknown".into(),
            "Kubelet stopped posting node status.".into()
        )
    );
    assert_eq!(condition(&gone, "MemoryPressure").0, "Unknown");
    let gone = wait_for_node(&cluster, "gone", "tainted", |n| taints(n).len() == 2).await;
    assert_eq!(
        taints(&gone),
        [
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/unreachable:NoSchedule"
        ]
    );
    let no_execute = gone.spec.as_ref().unwrap().taints.as_ref().unwrap();
    assert!(
        no_execute
            .iter()
            .any(|t| t.effect == "NoExecute" && t.time_added.is_some())
    );

    eventually(WAIT, || async {
        let p = pods.get("strict").await.map_err(|e| e.to_string())?;
        if terminating(&p) {
            Ok(())
        } else {
            Err("strict still runs".into())
        }
    })
    .await;
    assert!(
        !terminating(&pods.get("patient").await.expect("patient")),
        "patient tolerates for 2 s"
    );
    eventually(WAIT, || async {
        let p = pods.get("patient").await.map_err(|e| e.to_string())?;
        if terminating(&p) {
            Ok(())
        } else {
            Err("patient still runs".into())
        }
    })
    .await;
    let default = pods.get("default").await.expect("default");
    assert!(!terminating(&default), "300 s default toleration");
    assert_eq!(
        pod_ready(&default).as_deref(),
        Some("False"),
        "marked not ready"
    );
    let strict = pods.get("strict").await.expect("strict");
    let target = strict
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
        .expect("DisruptionTarget");
    assert_eq!(target.reason.as_deref(), Some("DeletionByTaintManager"));

    assert!(reasons(&cluster, "gone").await.contains(&(
        "NodeNotReady".into(),
        "Node gone status is now: NodeNotReady".into()
    )));
    assert!(reasons(&cluster, "strict").await.contains(&(
        "TaintManagerEviction".into(),
        "Marking for deletion Pod default/strict".into()
    )));
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    assert!(taints(&nodes.get("alive").await.expect("alive")).is_empty());

    // The node agent comes back: Ready again, untainted.
    post_status(&cluster, "gone", "True", forever()).await;
    wait_for_node(&cluster, "gone", "untainted", |n| taints(n).is_empty()).await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_that_says_it_is_not_ready_is_tainted_not_ready() {
    let cluster = Cluster::start().await;
    node(&cluster, "alive", "True", forever()).await;
    node(&cluster, "sick", "False", forever()).await;
    let _nlc = Running::informed(&cluster, node_lifecycle::run);
    let sick = wait_for_node(&cluster, "sick", "tainted", |n| taints(n).len() == 2).await;
    assert_eq!(
        taints(&sick),
        [
            "node.kubernetes.io/not-ready:NoExecute",
            "node.kubernetes.io/not-ready:NoSchedule"
        ]
    );
    assert_eq!(
        condition(&sick, "Ready").1,
        "KubeletReady",
        "its own status stays"
    );
    // Cordoned nodes get the unschedulable taint.
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let cordon = json!({"spec": {"unschedulable": true}});
    nodes
        .patch("alive", &PatchParams::default(), &Patch::Merge(cordon))
        .await
        .expect("cordoned");
    wait_for_node(&cluster, "alive", "cordoned", |n| {
        taints(n) == ["node.kubernetes.io/unschedulable:NoSchedule"]
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn when_every_node_is_silent_nothing_is_evicted() {
    let cluster = Cluster::start().await;
    node(&cluster, "only", "True", Timestamp::now()).await;
    let pods = cluster.pods();
    PodBuilder::named("strict")
        .container("c")
        .node("only")
        .toleration(tolerate_unreachable(0))
        .ready()
        .create(&cluster)
        .await;
    let _nlc = Running::informed(&cluster, node_lifecycle::run);
    let only = wait_for_node(&cluster, "only", "tainted", |n| !taints(n).is_empty()).await;
    assert_eq!(taints(&only), ["node.kubernetes.io/unreachable:NoSchedule"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let strict = pods.get("strict").await.expect("strict");
    assert!(
        !terminating(&strict),
        "the whole cluster looks down: no evictions"
    );
    assert_eq!(pod_ready(&strict).as_deref(), Some("False"));
    cluster.stop().await;
}
