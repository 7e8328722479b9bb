//! The DaemonSet controller against a real API server: one pod per Ready Node, pinned by a
//! required node affinity on the node's name, following Nodes as they join and leave.

use std::time::Duration;

use controlplane::controllers::daemonset;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, Running, eventually};

const WAIT: Duration = Duration::from_secs(10);

/// Creates a Ready Node.
async fn ready_node(cluster: &Cluster, name: &str) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("node status set");
}

/// The node each live daemon pod is pinned to, sorted.
fn pinned_nodes(pods: &[Pod]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let affinity = serde_json::to_value(&p.spec.as_ref()?.affinity).ok()?;
            let term = &affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchFields"][0];
            (term["key"] == "metadata.name" && term["operator"] == "In")
                .then(|| term["values"][0].as_str().map(String::from))
                .flatten()
        })
        .collect();
    nodes.sort();
    nodes
}

async fn wait_for_nodes(cluster: &Cluster, want: &[&str]) -> Vec<Pod> {
    eventually(WAIT, || async {
        let pods = cluster
            .pods()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        let live: Vec<Pod> = pods
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let nodes = pinned_nodes(&live);
        if nodes == want && live.len() == want.len() {
            Ok(live)
        } else {
            Err(format!(
                "daemon pods are on {nodes:?} ({} pods), want {want:?}",
                live.len()
            ))
        }
    })
    .await
}

#[tokio::test]
async fn one_pod_per_node_following_nodes_as_they_join_and_leave() {
    let cluster = Cluster::start().await;
    ready_node(&cluster, "n1").await;
    ready_node(&cluster, "n2").await;
    let _ds = Running::informed(&cluster, daemonset::run);
    let set = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "wasmkube/toolbox:1"}]}}}});
    let sets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), "default");
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(set).expect("a daemonset"),
    )
    .await
    .expect("daemonset created");

    let pods = wait_for_nodes(&cluster, &["n1", "n2"]).await;
    for pod in &pods {
        assert!(pod.name_any().starts_with("agent-"));
        assert!(pod.labels().contains_key("controller-revision-hash"));
        assert_eq!(pod.labels()["pod-template-generation"], "1");
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        assert!(tolerations.iter().any(|t| {
            t.key.as_deref() == Some("node.kubernetes.io/unreachable")
                && t.effect.as_deref() == Some("NoExecute")
                && t.operator.as_deref() == Some("Exists")
        }));
    }
    eventually(WAIT, || async {
        let status = sets
            .get("agent")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        match (
            status.desired_number_scheduled,
            status.current_number_scheduled,
        ) {
            (2, 2) if status.observed_generation == Some(1) => Ok(()),
            _ => Err(format!("status is {status:?}")),
        }
    })
    .await;

    ready_node(&cluster, "n3").await;
    wait_for_nodes(&cluster, &["n1", "n2", "n3"]).await;

    let nodes: Api<Node> = Api::all(cluster.client.clone());
    nodes
        .delete("n2", &DeleteParams::default())
        .await
        .expect("node deleted");
    wait_for_nodes(&cluster, &["n1", "n3"]).await;

    // A node the pod template does not tolerate gets no pod.
    let taint = json!({"spec": {"taints": [{"key": "dedicated", "value": "db",
        "effect": "NoExecute"}]}});
    nodes
        .patch("n3", &PatchParams::default(), &Patch::Merge(taint))
        .await
        .expect("tainted");
    wait_for_nodes(&cluster, &["n1"]).await;
    cluster.stop().await;
}
