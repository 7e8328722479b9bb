//! The pod garbage collector's orphan rule: a pod bound to a Node that no longer exists has no
//! node agent to finish it, so it is deleted at once (grace period 0), as kube-controller-manager's
//! PodGC does. Without it, a deleted node's pods would stay Terminating forever and a
//! DaemonSet or StatefulSet could not replace them.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::DeleteParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::ControllerOptions;
use super::informer::Informers;

/// Runs until `shutdown`: every `node_monitor_period`, deletes pods bound to missing nodes.
pub async fn run(
    client: Client,
    informers: Informers,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let pods = informers.pods.store();
    let (nodes, node_writer) = reflector::store::<Node>();
    let node_events = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| futures::future::ready(()));
    let sweep = async {
        if pods.wait_until_ready().await.is_err() || nodes.wait_until_ready().await.is_err() {
            return;
        }
        loop {
            sweep_orphans(&client, &pods, &nodes).await;
            tokio::time::sleep(options.node_monitor_period.max(Duration::from_millis(100))).await;
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = node_events => {}
        () = sweep => {}
    }
}

/// Pods whose `spec.nodeName` names no Node.
fn orphans(pods: &[std::sync::Arc<Pod>], nodes: &HashSet<String>) -> Vec<(String, String)> {
    pods.iter()
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.as_ref()?;
            (!nodes.contains(node)).then(|| (p.namespace().unwrap_or_default(), p.name_any()))
        })
        .collect()
}

async fn sweep_orphans(client: &Client, pods: &Store<Pod>, nodes: &Store<Node>) {
    let known: HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
    for (ns, name) in orphans(&pods.state(), &known) {
        tracing::info!(pod = %format!("{ns}/{name}"), "deleting a pod bound to a node that no longer exists");
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            tracing::debug!(error = %e, "pod gc delete failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pods_on_missing_nodes_are_orphans() {
        let pod = |name: &str, node: Option<&str>| -> std::sync::Arc<Pod> {
            std::sync::Arc::new(
                serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "containers": []}}))
                .unwrap(),
            )
        };
        let pods = [
            pod("a", Some("node-a")),
            pod("b", Some("gone")),
            pod("c", None),
        ];
        let nodes = HashSet::from(["node-a".to_string()]);
        assert_eq!(
            orphans(&pods, &nodes),
            vec![("default".to_string(), "b".to_string())]
        );
    }
}
