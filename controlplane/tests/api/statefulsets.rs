//! The StatefulSet controller against a real API server: ordered creation and scale-down,
//! a rolling update from the highest ordinal, and `kubectl rollout undo`'s patch. No node
//! agents run here, so the tests make pods Running and Ready through `pods/status` as a
//! kubelet would.

use std::time::Duration;

use controlplane::controllers::{garbage_collector, statefulset, volume};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Cluster, Running, eventually};

const WAIT: Duration = Duration::from_secs(10);

async fn create_set(cluster: &Cluster, replicas: i32, extra: serde_json::Value) -> StatefulSet {
    let mut set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "wasmkube/toolbox:1"}]}}}});
    if let (Some(spec), Some(extra)) = (set["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    sets(cluster)
        .create(
            &PostParams::default(),
            &serde_json::from_value(set).expect("a statefulset"),
        )
        .await
        .expect("statefulset created")
}

fn sets(cluster: &Cluster) -> Api<StatefulSet> {
    Api::namespaced(cluster.client.clone(), "default")
}

/// Makes a pod Running and Ready, as its node agent would.
async fn make_ready(cluster: &Cluster, name: &str) {
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready",
        "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    cluster
        .pods()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("pod status set");
}

/// The names of the live pods in `default`, sorted.
async fn pod_names(cluster: &Cluster) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .pods()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

async fn wait_for_pods(cluster: &Cluster, want: &[&str]) {
    eventually(WAIT, || async {
        let names = pod_names(cluster).await;
        if names == want {
            Ok(())
        } else {
            Err(format!("pods are {names:?}, want {want:?}"))
        }
    })
    .await;
}

/// Waits a little and checks nothing more than `want` was made.
async fn still_only(cluster: &Cluster, want: &[&str]) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pod_names(cluster).await, want);
}

async fn pod(cluster: &Cluster, name: &str) -> Pod {
    cluster.pods().get(name).await.expect("pod")
}

#[tokio::test]
async fn ordered_ready_creates_one_ordinal_after_another_and_scales_down_from_the_top() {
    let cluster = Cluster::start().await;
    let _sts = Running::informed(&cluster, statefulset::run);
    create_set(&cluster, 3, json!({})).await;

    wait_for_pods(&cluster, &["web-0"]).await;
    still_only(&cluster, &["web-0"]).await;
    let first = pod(&cluster, "web-0").await;
    let labels = first.labels();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert!(labels["controller-revision-hash"].starts_with("web-"));
    let spec = first.spec.as_ref().expect("spec");
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    assert_eq!(first.owner_references()[0].kind, "StatefulSet");

    make_ready(&cluster, "web-0").await;
    wait_for_pods(&cluster, &["web-0", "web-1"]).await;
    still_only(&cluster, &["web-0", "web-1"]).await;
    make_ready(&cluster, "web-1").await;
    wait_for_pods(&cluster, &["web-0", "web-1", "web-2"]).await;
    make_ready(&cluster, "web-2").await;
    eventually(WAIT, || async {
        let status = sets(&cluster)
            .get("web")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        match (
            status.ready_replicas,
            &status.current_revision,
            &status.update_revision,
        ) {
            (Some(3), Some(c), Some(u)) if c == u && status.replicas == 3 => Ok(()),
            _ => Err(format!("status is {status:?}")),
        }
    })
    .await;

    // Scale to 1: web-2 goes, then web-1.
    sets(&cluster)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scaled");
    wait_for_pods(&cluster, &["web-0"]).await;
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    let messages: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    for want in [
        "create Pod web-0 in StatefulSet web successful",
        "delete Pod web-2 in StatefulSet web successful",
        "delete Pod web-1 in StatefulSet web successful",
    ] {
        assert!(
            messages.iter().any(|m| m == want),
            "{want:?} not in {messages:?}"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn rolling_update_replaces_the_highest_ordinal_first_and_undo_goes_back() {
    let cluster = Cluster::start().await;
    let _sts = Running::informed(&cluster, statefulset::run);
    create_set(&cluster, 2, json!({"podManagementPolicy": "Parallel"})).await;
    wait_for_pods(&cluster, &["web-0", "web-1"]).await;
    make_ready(&cluster, "web-0").await;
    make_ready(&cluster, "web-1").await;
    let first = pod(&cluster, "web-0").await.labels()["controller-revision-hash"].clone();

    let image = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "wasmkube/toolbox:2"}]}}}});
    sets(&cluster)
        .patch("web", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .expect("template changed");
    let update = eventually(WAIT, || async {
        let status = sets(&cluster)
            .get("web")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        match status.update_revision {
            Some(u) if u != first => Ok(u),
            other => Err(format!("update revision is {other:?}")),
        }
    })
    .await;
    // web-1 first; web-0 keeps the old revision until web-1 is back and Ready.
    for ordinal in [1, 0] {
        let name = format!("web-{ordinal}");
        eventually(WAIT, || async {
            let p = cluster.pods().get_opt(&name).await.expect("get");
            match p {
                Some(p) if p.labels().get("controller-revision-hash") == Some(&update) => Ok(()),
                other => Err(format!("{name} is {:?}", other.map(|p| p.labels().clone()))),
            }
        })
        .await;
        if ordinal == 1 {
            still_only(&cluster, &["web-0", "web-1"]).await;
            assert_eq!(
                pod(&cluster, "web-0").await.labels()["controller-revision-hash"],
                first
            );
        }
        make_ready(&cluster, &name).await;
    }
    eventually(WAIT, || async {
        let status = sets(&cluster)
            .get("web")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        match (&status.current_revision, status.updated_replicas) {
            (Some(c), Some(2)) if *c == update => Ok(()),
            _ => Err(format!("status is {status:?}")),
        }
    })
    .await;

    // `kubectl rollout undo` PATCHes the old revision's data as a strategic merge patch.
    let revisions: Api<ControllerRevision> = Api::namespaced(cluster.client.clone(), "default");
    let old = revisions.get(&first).await.expect("the first revision");
    assert_eq!(old.data.0["spec"]["template"]["$patch"], "replace");
    assert_eq!(old.revision, Some(1));
    sets(&cluster)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(old.data.0.clone()),
        )
        .await
        .expect("rolled back");
    let back = sets(&cluster).get("web").await.expect("get");
    let image = back.spec.template.spec.as_ref().expect("spec").containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("wasmkube/toolbox:1"));
    eventually(WAIT, || async {
        let r = revisions.get(&first).await.expect("get");
        let status = sets(&cluster)
            .get("web")
            .await
            .expect("get")
            .status
            .unwrap_or_default();
        match (r.revision, status.update_revision) {
            (Some(3), Some(u)) if u == first => Ok(()),
            other => Err(format!("revision and update revision are {other:?}")),
        }
    })
    .await;
    cluster.stop().await;
}

fn claims(cluster: &Cluster) -> Api<PersistentVolumeClaim> {
    Api::namespaced(cluster.client.clone(), "default")
}

/// The claims in `default` not being deleted, sorted.
async fn claim_names(cluster: &Cluster) -> Vec<String> {
    let mut names: Vec<String> = claims(cluster)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| c.name_any())
        .collect();
    names.sort();
    names
}

const TEMPLATES: &str = r#"{"volumeClaimTemplates": [{"metadata": {"name": "data"},
    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
        "resources": {"requests": {"storage": "1Gi"}}}}]}"#;

#[tokio::test]
async fn each_ordinal_gets_its_claim_which_outlives_a_scale_down() {
    let cluster = Cluster::start().await;
    let _sts = Running::informed(&cluster, statefulset::run);
    let templates: serde_json::Value = serde_json::from_str(TEMPLATES).expect("json");
    create_set(
        &cluster,
        2,
        json!({"podManagementPolicy": "Parallel",
        "volumeClaimTemplates": templates["volumeClaimTemplates"]}),
    )
    .await;
    wait_for_pods(&cluster, &["web-0", "web-1"]).await;
    assert_eq!(claim_names(&cluster).await, ["data-web-0", "data-web-1"]);
    let claim = claims(&cluster).get("data-web-1").await.expect("claim");
    assert_eq!(claim.labels()["app"], "web", "the selector's labels");
    assert!(
        claim.metadata.owner_references.is_none(),
        "Retain: not owned"
    );
    let volumes = pod(&cluster, "web-1")
        .await
        .spec
        .expect("spec")
        .volumes
        .expect("volumes");
    let data = volumes
        .iter()
        .find(|v| v.name == "data")
        .expect("a data volume");
    assert_eq!(
        data.persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("data-web-1")
    );
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    eventually(WAIT, || async {
        let made = events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter_map(|e| e.message)
            .any(|m| m == "create Claim data-web-0 Pod web-0 in StatefulSet web success");
        made.then_some(())
            .ok_or("no SuccessfulCreate for the claim".to_string())
    })
    .await;

    sets(&cluster)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scaled");
    wait_for_pods(&cluster, &["web-0"]).await;
    still_only(&cluster, &["web-0"]).await;
    assert_eq!(
        claim_names(&cluster).await,
        ["data-web-0", "data-web-1"],
        "kept"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn when_scaled_delete_gives_condemned_claims_to_their_pods() {
    let cluster = Cluster::start().await;
    let _sts = Running::informed(&cluster, statefulset::run);
    let _gc = Running::start(&cluster, garbage_collector::run);
    let _volumes = Running::informed(&cluster, volume::run);
    let templates: serde_json::Value = serde_json::from_str(TEMPLATES).expect("json");
    create_set(
        &cluster,
        2,
        json!({"podManagementPolicy": "Parallel",
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
        "volumeClaimTemplates": templates["volumeClaimTemplates"]}),
    )
    .await;
    wait_for_pods(&cluster, &["web-0", "web-1"]).await;
    eventually(WAIT, || async {
        let claim = claims(&cluster).get("data-web-0").await.expect("claim");
        match claim.owner_references().first() {
            Some(r) if r.kind == "StatefulSet" => Ok(()),
            other => Err(format!("owners {other:?}")),
        }
    })
    .await;
    sets(&cluster)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scaled");
    eventually(WAIT, || async {
        let names = claim_names(&cluster).await;
        (names == ["data-web-0"])
            .then_some(())
            .ok_or(format!("claims {names:?}"))
    })
    .await;
    cluster.stop().await;
}
