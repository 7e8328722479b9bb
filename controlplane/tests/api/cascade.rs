//! Cascading deletion: what `DELETE` with each propagation policy leaves behind (the API
//! server's finalizers), and the garbage collector finishing the job.

use std::time::Duration;

use controlplane::controllers::garbage_collector;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, ReplicationController};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::support::{Cluster, PodBuilder, Running, api_error, eventually};

const WAIT: Duration = Duration::from_secs(10);

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "wasmkube/toolbox:1"}]}})
}

async fn replica_set(cluster: &Cluster, name: &str, owner: Option<&Deployment>) -> ReplicaSet {
    let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template()}});
    if let Some(d) = owner {
        rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": d.name_any(), "uid": d.uid(), "controller": true, "blockOwnerDeletion": true}]);
    }
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(rs).expect("a replica set"),
    )
    .await
    .expect("replica set created")
}

fn uid<K: Resource>(obj: &K) -> String {
    obj.meta().uid.clone().expect("a uid")
}

fn owned_pod(name: &str, rs: &ReplicaSet, block: bool) -> PodBuilder {
    PodBuilder::named(name).container("c").owner(
        "apps/v1",
        "ReplicaSet",
        &rs.name_any(),
        &uid(rs),
        block,
    )
}

/// Waits until `name` is gone from `api`.
async fn gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(WAIT, || async {
        match api.get_opt(name).await.expect("get") {
            None => Ok(()),
            Some(o) => Err(format!("{name} is still there: {:?}", o.meta())),
        }
    })
    .await;
}

fn owner_uids(pod: &Pod) -> Vec<String> {
    pod.owner_references()
        .iter()
        .map(|r| r.uid.clone())
        .collect()
}

#[tokio::test]
async fn foreground_and_orphan_deletes_hold_the_owner_with_a_finalizer() {
    let cluster = Cluster::start().await;
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    replica_set(&cluster, "web", None).await;
    let held = api
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("deleted")
        .left()
        .expect("the object, still there");
    assert_eq!(held.finalizers(), ["foregroundDeletion"]);
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        api.get_opt("web").await.expect("get").is_some(),
        "no collector runs here"
    );
    // A second delete may change its mind: orphan instead, then background (gone at once).
    let orphaning = api
        .delete("web", &DeleteParams::orphan())
        .await
        .expect("deleted")
        .left()
        .expect("the object");
    assert_eq!(orphaning.finalizers(), ["orphan"]);
    api.delete("web", &DeleteParams::background())
        .await
        .expect("deleted");
    assert!(api.get_opt("web").await.expect("get").is_none());
    // Background, the default of apps/v1, deletes at once.
    replica_set(&cluster, "now", None).await;
    api.delete("now", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(api.get_opt("now").await.expect("get").is_none());
    cluster.stop().await;
}

#[tokio::test]
async fn core_replication_controllers_orphan_unless_told_and_legacy_orphan_dependents_works() {
    let cluster = Cluster::start().await;
    let rcs: Api<ReplicationController> = Api::namespaced(cluster.client.clone(), "default");
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc"}, "spec": {"replicas": 0, "selector": {"app": "web"},
            "template": template()}});
    let rc: ReplicationController = serde_json::from_value(rc).expect("an rc");
    rcs.create(&PostParams::default(), &rc)
        .await
        .expect("rc created");
    let held = rcs
        .delete("rc", &DeleteParams::default())
        .await
        .expect("deleted")
        .left()
        .expect("the object");
    assert_eq!(held.finalizers(), ["orphan"]);
    // `orphanDependents: false` (the pre-1.7 spelling of Background) lets it go.
    let request = http::Request::delete("/api/v1/namespaces/default/replicationcontrollers/rc")
        .header("content-type", "application/json")
        .body(br#"{"orphanDependents": false}"#.to_vec())
        .expect("request");
    cluster
        .client
        .request::<Value>(request)
        .await
        .expect("deleted");
    assert!(rcs.get_opt("rc").await.expect("get").is_none());
    cluster.stop().await;
}

#[tokio::test]
async fn delete_options_are_validated() {
    let cluster = Cluster::start().await;
    replica_set(&cluster, "web", None).await;
    let path = "/apis/apps/v1/namespaces/default/replicasets/web";
    let send = |uri: String, body: &'static str| {
        let request = http::Request::delete(uri)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .expect("request");
        cluster.client.request::<Value>(request)
    };
    let status = api_error(send(format!("{path}?propagationPolicy=Sideways"), "").await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "DeleteOptions \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\": \
         supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
    let both = r#"{"orphanDependents": true, "propagationPolicy": "Orphan"}"#;
    let status = api_error(send(path.to_string(), both).await);
    assert!(
        status
            .message
            .ends_with("orphanDependents and deletionPropagation cannot be both set"),
        "{status:?}"
    );
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    assert!(api.get_opt("web").await.expect("get").is_some());
    cluster.stop().await;
}

#[tokio::test]
async fn the_collector_deletes_what_only_gone_owners_held() {
    let cluster = Cluster::start().await;
    let _gc = Running::start(&cluster, garbage_collector::run);
    let pods = cluster.pods();
    let rs = replica_set(&cluster, "web", None).await;
    let other = replica_set(&cluster, "other", None).await;
    owned_pod("web-1", &rs, true).create(&cluster).await;
    owned_pod("web-2", &rs, false).create(&cluster).await;
    owned_pod("shared", &rs, true)
        .owner("apps/v1", "ReplicaSet", "other", &uid(&other), false)
        .create(&cluster)
        .await;
    // An owner that never existed (its uid was never handed out).
    PodBuilder::named("ghost")
        .container("c")
        .owner(
            "apps/v1",
            "ReplicaSet",
            "ghost",
            "2d1f3c52-0000-4000-8000-000000000000",
            true,
        )
        .create(&cluster)
        .await;
    gone(&pods, "ghost").await;
    assert!(
        pods.get_opt("web-1").await.expect("get").is_some(),
        "its owner exists"
    );

    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    rs_api
        .delete("web", &DeleteParams::background())
        .await
        .expect("deleted");
    gone(&pods, "web-1").await;
    gone(&pods, "web-2").await;
    let shared = eventually(WAIT, || async {
        let p = pods.get("shared").await.map_err(|e| e.to_string())?;
        if owner_uids(&p) == [uid(&other)] {
            Ok(p)
        } else {
            Err(format!("owners {:?}", owner_uids(&p)))
        }
    })
    .await;
    assert!(shared.metadata.deletion_timestamp.is_none());
    cluster.stop().await;
}

#[tokio::test]
async fn a_foreground_delete_ends_when_the_blocking_dependents_are_gone() {
    let cluster = Cluster::start().await;
    let _gc = Running::start(&cluster, garbage_collector::run);
    let pods = cluster.pods();
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    let rs = replica_set(&cluster, "web", None).await;
    // On a node: its deletion waits for the node agent's final delete.
    owned_pod("blocker", &rs, true)
        .node("n1")
        .create(&cluster)
        .await;
    owned_pod("loose", &rs, false).create(&cluster).await;
    rs_api
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("deleted");
    gone(&pods, "loose").await;
    let blocker = eventually(WAIT, || async {
        let p = pods.get("blocker").await.map_err(|e| e.to_string())?;
        match p.metadata.deletion_timestamp {
            Some(_) => Ok(p),
            None => Err("blocker is not terminating yet".into()),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = rs_api.get("web").await.expect("the owner waits");
    assert_eq!(waiting.finalizers(), ["foregroundDeletion"]);
    // The node agent finishes the pod's deletion.
    let finish = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    pods.delete(&blocker.name_any(), &finish)
        .await
        .expect("deleted");
    gone(&pods, "blocker").await;
    gone(&rs_api, "web").await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_deployment_deleted_in_the_foreground_goes_after_its_replica_sets_and_pods() {
    let cluster = Cluster::start().await;
    let _gc = Running::start(&cluster, garbage_collector::run);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template()}});
    let d = deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(d).expect("a deployment"),
        )
        .await
        .expect("deployment created");
    let rs = replica_set(&cluster, "web-abc", Some(&d)).await;
    owned_pod("web-abc-1", &rs, true).create(&cluster).await;
    deployments
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("deleted");
    gone(&cluster.pods(), "web-abc-1").await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    gone(&rs_api, "web-abc").await;
    gone(&deployments, "web").await;
    cluster.stop().await;
}

#[tokio::test]
async fn orphaning_removes_the_owner_from_its_dependents() {
    let cluster = Cluster::start().await;
    let _gc = Running::start(&cluster, garbage_collector::run);
    let pods = cluster.pods();
    let rs = replica_set(&cluster, "web", None).await;
    let other = replica_set(&cluster, "other", None).await;
    owned_pod("alone", &rs, true).create(&cluster).await;
    owned_pod("shared", &rs, true)
        .owner("apps/v1", "ReplicaSet", "other", &uid(&other), true)
        .create(&cluster)
        .await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    rs_api
        .delete("web", &DeleteParams::orphan())
        .await
        .expect("deleted");
    gone(&rs_api, "web").await;
    let alone = pods.get("alone").await.expect("kept");
    assert!(owner_uids(&alone).is_empty(), "{:?}", alone.metadata);
    assert_eq!(
        owner_uids(&pods.get("shared").await.expect("kept")),
        [uid(&other)]
    );
    // Orphans stay orphans: nothing collects them later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pods.get_opt("alone").await.expect("get").is_some());
    cluster.stop().await;
}

#[tokio::test]
async fn a_deleted_node_takes_its_lease_along() {
    let cluster = Cluster::start().await;
    let _gc = Running::start(&cluster, garbage_collector::run);
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).expect("node");
    let node = nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let lease = json!({"metadata": {"name": "n1", "ownerReferences": [{"apiVersion": "v1",
            "kind": "Node", "name": "n1", "uid": uid(&node)}]},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(lease).expect("lease"),
        )
        .await
        .expect("lease created");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        leases.get_opt("n1").await.expect("get").is_some(),
        "its node exists"
    );
    nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("deleted");
    gone(&leases, "n1").await;
    cluster.stop().await;
}
