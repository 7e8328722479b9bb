//! PodDisruptionBudgets: the disruption controller's status, and evictions (`kubectl drain`'s
//! request) that respect it, also when several race for the last allowed disruption.

use std::time::Duration;

use controlplane::controllers::disruption;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, PostParams};
use prost::Message;
use serde_json::{Value, json};

use crate::support::{Cluster, PodBuilder, Running, api_error, assert_status, eventually};

const WAIT: Duration = Duration::from_secs(10);

/// The refusal kubectl drain prints (and retries on).
fn refusal(healthy: i32) -> String {
    format!(
        "Cannot evict pod as it would violate the pod's disruption budget. \
         The disruption budget web needs 2 healthy pods and has {healthy} currently"
    )
}

async fn budget(cluster: &Cluster, spec: Value) -> Api<PodDisruptionBudget> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(cluster.client.clone(), "default");
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"}, "spec": spec});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(pdb).expect("a pdb"),
    )
    .await
    .expect("pdb created");
    api
}

async fn web_pods(cluster: &Cluster, names: &[&str]) {
    for name in names {
        PodBuilder::named(name)
            .container("c")
            .label("app", "web")
            .ready()
            .create(cluster)
            .await;
    }
}

fn summary(pdb: &PodDisruptionBudget) -> (i32, i32, i32, i32, i64) {
    let s = pdb.status.clone().unwrap_or_default();
    (
        s.current_healthy.unwrap_or(0),
        s.desired_healthy.unwrap_or(0),
        s.expected_pods.unwrap_or(0),
        s.disruptions_allowed.unwrap_or(0),
        s.observed_generation.unwrap_or(0),
    )
}

async fn wait_for(
    api: &Api<PodDisruptionBudget>,
    want: (i32, i32, i32, i32, i64),
) -> PodDisruptionBudget {
    eventually(WAIT, || async {
        let pdb = api.get("web").await.map_err(|e| e.to_string())?;
        if summary(&pdb) == want {
            Ok(pdb)
        } else {
            Err(format!("{:?}", summary(&pdb)))
        }
    })
    .await
}

fn allowed_condition(pdb: &PodDisruptionBudget) -> (String, String) {
    let c = pdb
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionAllowed"))
        .expect("DisruptionAllowed");
    (c.status.clone(), c.reason.clone())
}

#[tokio::test]
async fn the_status_counts_ready_pods_and_evictions_take_from_it() {
    let cluster = Cluster::start().await;
    let _dc = Running::informed(&cluster, disruption::run);
    web_pods(&cluster, &["web-0", "web-1", "web-2"]).await;
    PodBuilder::named("web-x")
        .container("c")
        .label("app", "web")
        .phase("Running")
        .create(&cluster)
        .await;
    let pdbs = budget(
        &cluster,
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    // Four selected pods, three of them Ready; two must stay.
    let pdb = wait_for(&pdbs, (3, 2, 4, 1, 1)).await;
    assert_eq!(
        allowed_condition(&pdb),
        ("True".into(), "SufficientPods".into())
    );

    let pods = cluster.pods();
    pods.evict("web-0", &EvictParams::default())
        .await
        .expect("one disruption is allowed");
    assert!(pods.get_opt("web-0").await.expect("get").is_none());
    let pdb = wait_for(&pdbs, (2, 2, 3, 0, 1)).await;
    assert_eq!(
        allowed_condition(&pdb),
        ("False".into(), "InsufficientPods".into())
    );
    let refused = api_error(pods.evict("web-1", &EvictParams::default()).await);
    assert_status(&refused, 429, "TooManyRequests", refusal(2));
    // An unready pod takes nothing from a budget that is met.
    pods.evict("web-x", &EvictParams::default())
        .await
        .expect("web-x is not healthy anyway");
    // A budget in percent counts what the pods' controllers want; these pods have none.
    let half = json!({"spec": {"minAvailable": "50%"}});
    pdbs.patch("web", &Default::default(), &kube::api::Patch::Merge(half))
        .await
        .expect("patched");
    wait_for(&pdbs, (2, 0, 0, 0, 2)).await;
    cluster.stop().await;
}

#[tokio::test]
async fn evictions_racing_for_the_last_disruption_let_one_through() {
    // Regression: a drain evicting in parallel must not take more than the budget allows.
    let cluster = Cluster::start().await;
    web_pods(&cluster, &["a", "b", "c"]).await;
    let pdbs = budget(
        &cluster,
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    // The status the disruption controller would write (none runs here).
    let mut pdb = pdbs.get("web").await.expect("pdb");
    pdb.status = Some(
        serde_json::from_value(json!({"currentHealthy": 3, "desiredHealthy": 2,
        "expectedPods": 3, "disruptionsAllowed": 1, "observedGeneration": 1}))
        .expect("status"),
    );
    pdbs.replace_status("web", &PostParams::default(), &pdb)
        .await
        .expect("status set");
    let pods = cluster.pods();
    let params = EvictParams::default();
    let (a, b, c) = tokio::join!(
        pods.evict("a", &params),
        pods.evict("b", &params),
        pods.evict("c", &params)
    );
    let results = [("a", a), ("b", b), ("c", c)];
    let passed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(passed.len(), 1, "{results:?}");
    for (_, r) in results.into_iter().filter(|(_, r)| r.is_err()) {
        assert_status(&api_error(r), 429, "TooManyRequests", refusal(3));
    }
    let status = pdbs.get("web").await.expect("pdb").status.expect("status");
    assert_eq!(status.disruptions_allowed, Some(0));
    let disrupted: Vec<String> = status
        .disrupted_pods
        .unwrap_or_default()
        .into_keys()
        .collect();
    assert_eq!(disrupted, passed);
    assert!(pods.get_opt(passed[0]).await.expect("get").is_none());
    cluster.stop().await;
}

#[tokio::test]
async fn a_budget_not_yet_processed_refuses_and_a_missing_pod_is_not_found() {
    let cluster = Cluster::start().await;
    web_pods(&cluster, &["a"]).await;
    budget(
        &cluster,
        json!({"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    let pods = cluster.pods();
    let refused = api_error(pods.evict("a", &EvictParams::default()).await);
    assert_status(
        &refused,
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget. \
         The disruption budget web is still being processed by the server.",
    );
    let missing = api_error(pods.evict("nope", &EvictParams::default()).await);
    assert_status(&missing, 404, "NotFound", "pods \"nope\" not found");
    cluster.stop().await;
}

/// Posts a policy/v1 Eviction of `name` with `delete_options` (kube-rs's `EvictParams`
/// spells the field `delete_options`, which kube-apiserver ignores as we do).
async fn evict_with(
    cluster: &Cluster,
    name: &str,
    delete_options: Value,
) -> Result<Value, kube::Error> {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"}, "deleteOptions": delete_options});
    let request = http::Request::post(format!("/api/v1/namespaces/default/pods/{name}/eviction"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request");
    cluster.client.request(request).await
}

#[tokio::test]
async fn an_eviction_no_budget_covers_is_a_delete_with_its_options() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    for name in ["now", "graceful", "dry"] {
        PodBuilder::named(name)
            .container("c")
            .node("n1")
            .ready()
            .create(&cluster)
            .await;
    }
    evict_with(&cluster, "now", json!({"gracePeriodSeconds": 0}))
        .await
        .expect("evicted");
    assert!(pods.get_opt("now").await.expect("get").is_none());
    pods.evict("graceful", &EvictParams::default())
        .await
        .expect("evicted");
    let graceful = pods.get("graceful").await.expect("terminating");
    assert_eq!(graceful.metadata.deletion_grace_period_seconds, Some(30));
    evict_with(&cluster, "dry", json!({"dryRun": ["All"]}))
        .await
        .expect("evicted, dry run");
    assert!(
        pods.get("dry")
            .await
            .expect("kept")
            .metadata
            .deletion_timestamp
            .is_none()
    );
    let renamed =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}});
    let request = http::Request::post("/api/v1/namespaces/default/pods/dry/eviction")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&renamed).expect("json"))
        .expect("request");
    let status = api_error(cluster.client.request::<Value>(request).await);
    assert_status(
        &status,
        400,
        "BadRequest",
        "name in URL does not match name in Eviction object",
    );
    cluster.stop().await;
}

#[tokio::test]
async fn kubectl_drains_protobuf_eviction_is_understood() {
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let cluster = Cluster::start().await;
    web_pods(&cluster, &["p"]).await;
    let eviction = k8s_pb::api::policy::v1::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            ..Default::default()
        }),
        delete_options: Some(meta::DeleteOptions::default()),
    };
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("policy/v1".into()),
            kind: Some("Eviction".into()),
        }),
        raw: Some(eviction.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(envelope.encode_to_vec());
    let request = http::Request::post("/api/v1/namespaces/default/pods/p/eviction")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(body)
        .expect("request");
    let status: Value = cluster.client.request(request).await.expect("evicted");
    assert_eq!(
        (status["status"].as_str(), status["code"].as_i64()),
        (Some("Success"), Some(201))
    );
    let pods: Api<Pod> = cluster.pods();
    assert!(pods.get_opt("p").await.expect("get").is_none());
    cluster.stop().await;
}
