//! Images tutorials use run as their stand-ins (issue 5, first part): the user's own pod
//! manifests from the seed notes, with only their private app images replaced by catalog
//! images, and the HPA walkthrough's CPU-burning php-apache.

use std::time::Duration;

use crate::support::{Cluster, FAST, OutputExt, eventually};

/// `kubectl exec POD -c C -- wget -qO- URL`, retried while the server is not listening yet
/// (Running comes a moment before a server listens, as with any container).
fn fetch(cluster: &Cluster, pod: &str, container: &str, url: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["exec", pod, "-c", container, "--", "wget", "-qO-", url]);
        if out.status.success() {
            Ok(out.stdout_text())
        } else {
            Err(out.describe())
        }
    })
}

#[test]
fn the_seed_pods_run_on_stand_ins() {
    let Some(cluster) = Cluster::up_with_kubectl("images::seed_pods", FAST) else {
        return;
    };
    cluster.apply_manifest("seed-my-app.yaml");
    cluster.apply_manifest("seed-my-database.yaml");
    cluster.kubectl_ok(&[
        "run",
        "php-apache",
        "--image=registry.k8s.io/hpa-example",
        "--port=80",
    ]);
    for pod in ["my-app", "my-database", "php-apache"] {
        cluster.wait_running(pod);
    }

    // nginx and the node app share localhost.
    let health = fetch(&cluster, "my-app", "nginx", "http://localhost:3000/healthz");
    assert_eq!(health.trim(), r#"{"status":"ok"}"#);
    let page = fetch(&cluster, "my-app", "node-app", "http://localhost/");
    assert!(
        page.contains("my-app"),
        "nginx's stand-in serves its page: {page}"
    );

    // The app counts visits in "postgres", whose data lands in the shared emptyDir.
    fetch(
        &cluster,
        "my-database",
        "django-app",
        "http://localhost:5432/healthz",
    );
    for want in [1, 2] {
        let visits = fetch(
            &cluster,
            "my-database",
            "django-app",
            "http://localhost:3000/visits",
        );
        assert_eq!(visits.trim(), format!(r#"{{"visits":{want}}}"#));
    }
    let shared = cluster.kubectl_ok(&[
        "exec",
        "my-database",
        "-c",
        "django-app",
        "--",
        "ls",
        "/app/data",
    ]);
    assert!(
        shared.contains("kv.log"),
        "the database's files are in the shared volume: {shared}"
    );
    let describe = cluster.kubectl_ok(&["describe", "pod", "my-database"]);
    assert!(
        describe.contains(r#"Image "postgres" runs as its wasmkube stand-in wasmkube/kv"#),
        "{describe}"
    );

    // php-apache answers OK! after burning CPU.
    let ip = cluster.jsonpath(&["pod", "php-apache"], "{.status.podIP}");
    let ok = fetch(&cluster, "my-app", "nginx", &format!("http://{ip}/"));
    assert_eq!(ok, "OK!");
}
