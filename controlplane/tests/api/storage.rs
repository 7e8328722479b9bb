//! The volume controller and the scheduler's VolumeBinding against a real API server: the
//! bootstrapped `local-path` class and retroactive default class assignment, static
//! binding and reclaim, `WaitForFirstConsumer` provisioning on the node the scheduler picks
//! (nodes here are only Node objects announcing their local-path root), in-use protection,
//! and the scheduler's reasons for pods whose claims cannot be met.

use std::time::Duration;

use controlplane::controllers::volume;
use controlplane::scheduler::{self, SchedulerOptions};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Cluster, Running, eventually};

const WAIT: Duration = Duration::from_secs(10);

fn claims(cluster: &Cluster) -> Api<PersistentVolumeClaim> {
    Api::namespaced(cluster.client.clone(), "default")
}

fn volumes(cluster: &Cluster) -> Api<PersistentVolume> {
    Api::all(cluster.client.clone())
}

async fn create<K>(api: &Api<K>, object: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).expect("an object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created")
}

fn claim(name: &str, class: Option<&str>, size: &str) -> Value {
    let mut c = json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}}}});
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    c
}

fn host_volume(name: &str, policy: &str, path: &str, extra: Value) -> Value {
    let mut v = json!({"metadata": {"name": name}, "spec": {
        "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
        "storageClassName": "", "persistentVolumeReclaimPolicy": policy,
        "hostPath": {"path": path}}});
    json_patch::merge(&mut v["spec"], &extra);
    v
}

/// A Ready node that keeps local-path volumes under `/srv/NAME`, as a node agent registers.
async fn add_node(cluster: &Cluster, name: &str) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    create(
        &nodes,
        json!({"metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name},
            "annotations": {"wasmkube.io/local-path-root": format!("/srv/{name}")}}}),
    )
    .await;
    let status = json!({"status": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("node status");
}

/// The `(reason, message)` of every Event about `name`.
async fn events_of(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn phase_of(cluster: &Cluster, claim: &str) -> String {
    claims(cluster)
        .get(claim)
        .await
        .map(|c| c.status.and_then(|s| s.phase).unwrap_or_default())
        .unwrap_or_else(|e| format!("{e}"))
}

async fn volume_phase(cluster: &Cluster, name: &str) -> String {
    volumes(cluster)
        .get(name)
        .await
        .map(|v| v.status.and_then(|s| s.phase).unwrap_or_default())
        .unwrap_or_else(|e| format!("{e}"))
}

/// Runs the scheduler until dropped.
struct Scheduler(CancellationToken);

impl Scheduler {
    fn start(cluster: &Cluster) -> Self {
        let stop = CancellationToken::new();
        let options = SchedulerOptions {
            retry_unschedulable: Duration::from_millis(200),
        };
        tokio::spawn(scheduler::run(
            cluster.client.clone(),
            options,
            stop.clone(),
        ));
        Self(stop)
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[tokio::test]
async fn claims_without_a_class_get_local_path_and_wait_for_a_consumer() {
    let cluster = Cluster::start().await;
    let classes: Api<StorageClass> = Api::all(cluster.client.clone());
    let sc = classes.get("local-path").await.expect("the default class");
    assert_eq!(sc.provisioner, "rancher.io/local-path");
    assert_eq!(
        sc.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    assert_eq!(
        sc.annotations()["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    let _volumes = Running::informed(&cluster, volume::run);
    let made = create(&claims(&cluster), claim("keep", None, "1Mi")).await;
    assert_eq!(made.finalizers(), ["kubernetes.io/pvc-protection"]);
    eventually(WAIT, || async {
        let c = claims(&cluster).get("keep").await.expect("claim");
        let class = c.spec.and_then(|s| s.storage_class_name);
        let events = events_of(&cluster, "keep").await;
        let waiting = events.iter().any(|(r, m)| {
            r == "WaitForFirstConsumer"
                && m == "waiting for first consumer to be created before binding"
        });
        (class.as_deref() == Some("local-path") && waiting)
            .then_some(())
            .ok_or(format!("class {class:?}, events {events:?}"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = events_of(&cluster, "keep").await;
    assert_eq!(events.len(), 1, "said once: {events:?}");
    assert_eq!(phase_of(&cluster, "keep").await, "Pending");
    cluster.stop().await;
}

#[tokio::test]
async fn static_volumes_bind_and_are_reclaimed_by_their_policy() {
    let cluster = Cluster::start().await;
    let _volumes = Running::informed(&cluster, volume::run);
    let pvs = volumes(&cluster);
    create(&pvs, host_volume("kept", "Retain", "/srv/kept", json!({}))).await;
    create(
        &pvs,
        host_volume(
            "big",
            "Retain",
            "/srv/big",
            json!({"capacity": {"storage": "5Gi"}}),
        ),
    )
    .await;
    create(&claims(&cluster), claim("small", Some(""), "100Mi")).await;
    eventually(WAIT, || async {
        let (claim, volume) = (
            phase_of(&cluster, "small").await,
            volume_phase(&cluster, "kept").await,
        );
        (claim == "Bound" && volume == "Bound")
            .then_some(())
            .ok_or(format!("claim {claim}, volume {volume}"))
    })
    .await;
    let c = claims(&cluster).get("small").await.expect("claim");
    assert_eq!(
        c.spec.as_ref().and_then(|s| s.volume_name.as_deref()),
        Some("kept"),
        "smallest fit"
    );
    assert_eq!(c.annotations()["pv.kubernetes.io/bind-completed"], "yes");
    assert_eq!(
        c.annotations()["pv.kubernetes.io/bound-by-controller"],
        "yes"
    );
    let status = c.status.expect("status");
    assert_eq!(status.capacity.expect("capacity")["storage"].0, "1Gi");
    let pv = pvs.get("kept").await.expect("volume");
    assert_eq!(
        pv.annotations()["pv.kubernetes.io/bound-by-controller"],
        "yes"
    );
    let claim_ref = pv.spec.and_then(|s| s.claim_ref).expect("claimRef");
    assert_eq!(claim_ref.uid, c.metadata.uid);
    // The unchosen volume is Available (once a pass has looked at it).
    eventually(WAIT, || async {
        let phase = volume_phase(&cluster, "big").await;
        (phase == "Available").then_some(()).ok_or(phase)
    })
    .await;

    // Retain: Released with the claim gone.
    claims(&cluster)
        .delete("small", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually(WAIT, || async {
        let phase = volume_phase(&cluster, "kept").await;
        (phase == "Released").then_some(()).ok_or(phase)
    })
    .await;

    // Delete, for a volume nobody here can delete: Failed, in Kubernetes' words.
    create(
        &pvs,
        host_volume("doomed", "Delete", "/mnt/data", json!({})),
    )
    .await;
    let mut pinned = claim("pinned", Some(""), "1Gi");
    pinned["spec"]["volumeName"] = json!("doomed");
    create(&claims(&cluster), pinned).await;
    eventually(WAIT, || async {
        let phase = phase_of(&cluster, "pinned").await;
        (phase == "Bound").then_some(()).ok_or(phase)
    })
    .await;
    let c = claims(&cluster).get("pinned").await.expect("claim");
    assert!(
        !c.annotations()
            .contains_key("pv.kubernetes.io/bound-by-controller"),
        "the user chose"
    );
    claims(&cluster)
        .delete("pinned", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually(WAIT, || async {
        let pv = pvs.get("doomed").await.expect("volume");
        let status = pv.status.unwrap_or_default();
        let want = "host_path deleter only supports /tmp/.+ but received provided /mnt/data";
        match (status.phase.as_deref(), status.message.as_deref()) {
            (Some("Failed"), Some(m)) if m == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn the_first_consumers_node_gets_the_volume() {
    let cluster = Cluster::start().await;
    add_node(&cluster, "n1").await;
    add_node(&cluster, "n2").await;
    let _volumes = Running::informed(&cluster, volume::run);
    let _scheduler = Scheduler::start(&cluster);
    let made = create(&claims(&cluster), claim("data", Some("local-path"), "64Mi")).await;
    let uid = made.metadata.uid.clone().expect("uid");
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "redis"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
        .expect("pod");
    cluster
        .pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let node = eventually(WAIT, || async {
        let pod = cluster.pods().get("db").await.expect("pod");
        pod.spec
            .and_then(|s| s.node_name)
            .ok_or("not bound yet".to_string())
    })
    .await;
    eventually(WAIT, || async {
        let phase = phase_of(&cluster, "data").await;
        (phase == "Bound").then_some(()).ok_or(phase)
    })
    .await;
    let c = claims(&cluster).get("data").await.expect("claim");
    let annotations = c.annotations();
    assert_eq!(annotations["volume.kubernetes.io/selected-node"], node);
    assert_eq!(
        annotations["volume.kubernetes.io/storage-provisioner"],
        "rancher.io/local-path"
    );
    assert_eq!(
        annotations["volume.beta.kubernetes.io/storage-provisioner"],
        "rancher.io/local-path"
    );
    let name = format!("pvc-{uid}");
    assert_eq!(
        c.spec.and_then(|s| s.volume_name).as_deref(),
        Some(name.as_str())
    );
    let pv = serde_json::to_value(volumes(&cluster).get(&name).await.expect("the volume"))
        .expect("json");
    assert_eq!(
        pv["spec"]["hostPath"],
        json!({"path": format!("/srv/{node}/pvc-{uid}_default_data"), "type": "DirectoryOrCreate"})
    );
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!([node])
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    assert_eq!(
        pv["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
    let reasons: Vec<String> = events_of(&cluster, "data")
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    for want in [
        "ExternalProvisioning",
        "Provisioning",
        "ProvisioningSucceeded",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }

    // A second pod of the claim goes where the volume is.
    let again: Pod =
        serde_json::from_value(json!({"metadata": {"name": "db2", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "redis"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
        .expect("pod");
    cluster
        .pods()
        .create(&PostParams::default(), &again)
        .await
        .expect("pod created");
    let second = eventually(WAIT, || async {
        let pod = cluster.pods().get("db2").await.expect("pod");
        pod.spec
            .and_then(|s| s.node_name)
            .ok_or("not bound yet".to_string())
    })
    .await;
    assert_eq!(second, node);
    cluster.stop().await;
}

#[tokio::test]
async fn a_claim_in_use_is_deleted_only_after_its_pod_finishes() {
    let cluster = Cluster::start().await;
    let _volumes = Running::informed(&cluster, volume::run);
    create(
        &volumes(&cluster),
        host_volume("pv", "Retain", "/srv/pv", json!({})),
    )
    .await;
    create(&claims(&cluster), claim("used", Some(""), "1Gi")).await;
    eventually(WAIT, || async {
        let phase = phase_of(&cluster, "used").await;
        (phase == "Bound").then_some(()).ok_or(phase)
    })
    .await;
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "user", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "used"}}]}}))
        .expect("pod");
    cluster
        .pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    claims(&cluster)
        .delete("used", &DeleteParams::default())
        .await
        .expect("deleting");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let held = claims(&cluster).get("used").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(volume_phase(&cluster, "pv").await, "Bound");
    // The volume itself is held while bound.
    volumes(&cluster)
        .delete("pv", &DeleteParams::default())
        .await
        .expect("deleting");
    cluster
        .pods()
        .patch_status(
            "user",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .expect("finished");
    eventually(WAIT, || async {
        match (
            claims(&cluster).get_opt("used").await,
            volumes(&cluster).get_opt("pv").await,
        ) {
            (Ok(None), Ok(None)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn pods_whose_claims_cannot_be_met_say_why() {
    let cluster = Cluster::start().await;
    add_node(&cluster, "n1").await;
    let _volumes = Running::informed(&cluster, volume::run);
    let _scheduler = Scheduler::start(&cluster);
    // A claim bound to a volume on a node that is not there.
    create(
        &volumes(&cluster),
        host_volume(
            "elsewhere",
            "Retain",
            "/srv/x",
            json!({"nodeAffinity": {"required": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname",
                "operator": "In", "values": ["n9"]}]}]}}}),
        ),
    )
    .await;
    create(&claims(&cluster), claim("far", Some(""), "1Gi")).await;
    create(&claims(&cluster), claim("nothing", Some(""), "10Ti")).await;
    let cases = [
        (
            "missing",
            "gone",
            "0/1 nodes are available: persistentvolumeclaim \"gone\" not found.",
        ),
        (
            "unbound",
            "nothing",
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        ),
        (
            "conflict",
            "far",
            "0/1 nodes are available: 1 node(s) had volume node affinity conflict.",
        ),
    ];
    for (pod, claim, _) in cases {
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": pod, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}))
            .expect("pod");
        cluster
            .pods()
            .create(&PostParams::default(), &p)
            .await
            .expect("pod created");
    }
    for (pod, _, message) in cases {
        eventually(WAIT, || async {
            let events = events_of(&cluster, pod).await;
            events
                .iter()
                .any(|(r, m)| r == "FailedScheduling" && m == message)
                .then_some(())
                .ok_or(format!("{pod}: {events:?}"))
        })
        .await;
    }
    let events = events_of(&cluster, "nothing").await;
    assert!(
        events.iter().any(|(r, m)| r == "FailedBinding"
            && m == "no persistent volumes available for this claim and no storage class is set"),
        "{events:?}"
    );
    cluster.stop().await;
}
