//! Desired state that heals itself (issue 6), on `wasmkube server` with three `wasmkube node`
//! processes: Deployments and ReplicaSets spread, come back after deletions, roll without
//! dropping below `replicas - maxUnavailable` ready, undo, cascade on delete; a killed node's
//! pods move; `drain` honours a PodDisruptionBudget; an unschedulable pod says why.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::nodes::start_nodes;
use crate::support::{Cluster, OutputExt, eventually};

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet: {path: /, port: 80}
          periodSeconds: 1
";

const KV: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: kv
spec:
  replicas: 3
  selector:
    matchLabels: {app: kv}
  template:
    metadata:
      labels: {app: kv}
    spec:
      containers:
      - name: redis
        image: redis
";

/// Live (not terminating) pods matching `selector`: `(name, node, ready)`.
fn live_pods(cluster: &Cluster, selector: &str) -> Vec<(String, String, bool)> {
    let out = cluster.kubectl_ok(&[
        "get", "pods", "-l", selector, "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [name, node, deleting, ready] = fields[..] else {
                return None;
            };
            deleting
                .is_empty()
                .then(|| (name.to_string(), node.to_string(), ready == "True"))
        })
        .collect()
}

/// How many live pods of `selector` each node runs, sorted.
fn spread(cluster: &Cluster, selector: &str) -> Vec<usize> {
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (_, node, _) in live_pods(cluster, selector) {
        *per_node.entry(node).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_node.into_values().collect();
    counts.sort();
    counts
}

fn wait_ready(cluster: &Cluster, selector: &str, want: usize) -> Vec<(String, String, bool)> {
    eventually(Duration::from_secs(60), || {
        let pods = live_pods(cluster, selector);
        let ready = pods.iter().filter(|p| p.2).count();
        if ready == want && pods.len() == want {
            Ok(pods)
        } else {
            Err(format!(
                "{selector}: {ready} ready of {} live, want {want}: {pods:?}",
                pods.len()
            ))
        }
    })
}

#[test]
fn replicas_spread_heal_roll_and_cascade() {
    let Some(cluster) = Cluster::server_with_kubectl("workloads::heal", &[]) else {
        return;
    };
    let _nodes = start_nodes(&cluster, &["node-a", "node-b", "node-c"], &[]);

    // "My web server always runs in 4 replicas and my database in 3."
    cluster.apply_yaml(WEB);
    cluster.apply_yaml(KV);
    wait_ready(&cluster, "app=web", 4);
    wait_ready(&cluster, "app=kv", 3);
    assert_eq!(
        spread(&cluster, "app=web"),
        [1, 1, 2],
        "4 replicas on 3 nodes land 2/1/1"
    );
    assert_eq!(spread(&cluster, "app=kv"), [1, 1, 1]);
    let rs = cluster.kubectl_ok(&["get", "rs", "kv"]);
    assert!(rs.contains("kv     3         3         3"), "{rs}");

    // A Service over the Deployment lists its 4 ready pods (Endpoints and EndpointSlices;
    // the services issue builds the rest on them).
    cluster.apply_yaml("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080, targetPort: 80}\n",
    );
    let ips: BTreeMap<String, ()> = live_pods(&cluster, "app=web")
        .into_iter()
        .map(|(name, _, _)| (cluster.jsonpath(&["pod", &name], "{.status.podIP}"), ()))
        .collect();
    eventually(Duration::from_secs(30), || {
        let listed = cluster.jsonpath(&["endpoints", "web"], "{.subsets[*].addresses[*].ip}");
        let got: BTreeMap<String, ()> = listed
            .split_whitespace()
            .map(|ip| (ip.to_string(), ()))
            .collect();
        let port = cluster.jsonpath(&["endpoints", "web"], "{.subsets[0].ports[0].port}");
        if got == ips && port == "80" {
            Ok(())
        } else {
            Err(format!("{listed} port {port}"))
        }
    });
    let slice = cluster.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "jsonpath={.items[*].endpoints[*].conditions.ready}",
    ]);
    assert_eq!(
        slice.split_whitespace().filter(|r| *r == "true").count(),
        4,
        "{slice}"
    );

    // "If any of the 7 fails, a new one replaces it."
    let before: Vec<String> = live_pods(&cluster, "app=kv")
        .into_iter()
        .map(|p| p.0)
        .collect();
    let victim = before[0].clone();
    cluster.kubectl_ok(&["delete", "pod", &victim, "--wait=false"]);
    let after = wait_ready(&cluster, "app=kv", 3);
    assert!(after.iter().all(|p| p.0 != victim), "{after:?}");
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=kv",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
    // The replacement started after the web Service existed: it gets its service links.
    // (The one pod that was not there before: creation timestamps have one-second steps.)
    let replacement = after
        .iter()
        .map(|p| p.0.clone())
        .find(|name| !before.contains(name))
        .unwrap();
    let links = cluster.kubectl_ok(&[
        "exec",
        &replacement,
        "--",
        "sh",
        "-c",
        "echo $WEB_SERVICE_HOST:$WEB_SERVICE_PORT $KUBERNETES_SERVICE_PORT",
    ]);
    let ip = cluster.jsonpath(&["service", "web"], "{.spec.clusterIP}");
    assert_eq!(
        links.trim(),
        format!("{ip}:8080 443"),
        "service links in {replacement}"
    );

    // A rolling update never drops below replicas - maxUnavailable = 3 ready.
    let watching = Arc::new(AtomicBool::new(true));
    let lowest = Arc::new(AtomicUsize::new(usize::MAX));
    let watcher = {
        let (watching, lowest) = (watching.clone(), lowest.clone());
        let probe = cluster.kubectl_command(&["get", "pods", "-l", "app=web", "-o",
            r#"jsonpath={range .items[*]}{.metadata.deletionTimestamp}/{.status.conditions[?(@.type=="Ready")].status} {end}"#]);
        let program = probe.get_program().to_owned();
        let args: Vec<_> = probe.get_args().map(|a| a.to_owned()).collect();
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                let out = std::process::Command::new(&program)
                    .args(&args)
                    .output()
                    .expect("kubectl");
                let text = String::from_utf8_lossy(&out.stdout);
                if out.status.success() {
                    let ready = text.split_whitespace().filter(|p| *p == "/True").count();
                    lowest.fetch_min(ready, Ordering::Relaxed);
                }
            }
        })
    };
    cluster.kubectl_ok(&["set", "image", "deployment/web", "nginx=httpd"]);
    let status = cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    watching.store(false, Ordering::Relaxed);
    watcher.join().unwrap();
    let lowest = lowest.load(Ordering::Relaxed);
    assert!(
        lowest >= 3,
        "ready pods fell to {lowest} during the rollout"
    );
    // (Old pods may still be terminating: they keep their listeners until they have left
    // the Service's endpoints.)
    eventually(Duration::from_secs(20), || {
        let images = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        if images.split_whitespace().all(|i| i == "httpd") {
            Ok(())
        } else {
            Err(images)
        }
    });

    // rollout history and undo.
    let history = cluster.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    cluster.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let image = cluster.jsonpath(
        &["deployment", "web"],
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "nginx");
    let revision = cluster.jsonpath(
        &["deployment", "web"],
        r#"{.metadata.annotations.deployment\.kubernetes\.io/revision}"#,
    );
    assert_eq!(
        revision, "3",
        "undo makes the old template the newest revision"
    );
    let conditions = cluster.jsonpath(
        &["deployment", "web"],
        r#"{.status.conditions[?(@.type=="Progressing")].reason}"#,
    );
    assert_eq!(conditions, "NewReplicaSetAvailable");

    // The same verbs from wasmkube's own CLI.
    let wk = |args: &[&str]| {
        let out = cluster.wasmkube(args);
        assert!(
            out.status.success(),
            "wasmkube {args:?}: {}",
            out.describe()
        );
        out.stdout_text()
    };
    assert!(wk(&["rollout", "history", "deployment/web"]).contains("3         <none>"));
    assert_eq!(
        wk(&["rollout", "pause", "deployment/web"]).trim(),
        "deployment.apps/web paused"
    );
    // Paused, it does not roll but it still scales (kube syncs a paused Deployment's size).
    for replicas in [5, 4] {
        cluster.kubectl_ok(&["scale", "deployment/web", &format!("--replicas={replicas}")]);
        eventually(Duration::from_secs(60), || {
            let ready = cluster.jsonpath(&["deployment", "web"], "{.status.readyReplicas}");
            let live = live_pods(&cluster, "app=web").len();
            if ready == replicas.to_string() && live == replicas {
                Ok(())
            } else {
                Err(format!("{ready} ready, {live} live"))
            }
        });
    }
    assert_eq!(
        wk(&["rollout", "resume", "deployment/web"]).trim(),
        "deployment.apps/web resumed"
    );
    assert_eq!(
        wk(&["rollout", "restart", "deployment/web"]).trim(),
        "deployment.apps/web restarted"
    );
    let status = wk(&["rollout", "status", "deployment/web", "--timeout", "90s"]);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );

    // Cascading deletion: the Deployment takes its ReplicaSets and pods along; an orphaning
    // delete of the ReplicaSet leaves its pods running without an owner.
    cluster.kubectl_ok(&["delete", "deployment", "web"]);
    eventually(Duration::from_secs(60), || {
        let left = cluster.kubectl_ok(&["get", "rs,pods", "-l", "app=web", "-o", "name"]);
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
    cluster.kubectl_ok(&["delete", "rs", "kv", "--cascade=orphan"]);
    eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["get", "rs", "kv"]);
        if out.status.success() {
            Err(out.stdout_text())
        } else {
            Ok(())
        }
    });
    let orphans = wait_ready(&cluster, "app=kv", 3);
    for (name, _, _) in orphans {
        let owners = cluster.jsonpath(&["pod", &name], "{.metadata.ownerReferences}");
        assert!(
            owners.is_empty() || owners == "[]",
            "{name} still has owners {owners}"
        );
    }
}

/// The seed notes' Deployment: web + api containers, 3 replicas (their `my-api` image
/// replaced by the catalog's api).
const SEED: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-app
spec:
  replicas: 3
  selector:
    matchLabels:
      app: my-app
  template:
    metadata:
      labels:
        app: my-app
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
        - name: web
          image: nginx:latest
          ports:
            - containerPort: 80
        - name: api
          image: wasmkube/api:latest
          ports:
            - containerPort: 5000
";

#[test]
fn a_lost_node_moves_its_pods_and_drain_respects_budgets() {
    let Some(cluster) = Cluster::server_with_kubectl(
        "workloads::nodes",
        &[
            "--node-monitor-grace-period",
            "4s",
            "--node-monitor-period",
            "1s",
        ],
    ) else {
        return;
    };
    let mut nodes = start_nodes(&cluster, &["node-a", "node-b", "node-c"], &[]);
    cluster.apply_yaml(SEED);
    let pods = wait_ready(&cluster, "app=my-app", 3);
    assert_eq!(spread(&cluster, "app=my-app"), [1, 1, 1], "{pods:?}");

    // node-c dies: Ready=Unknown, tainted, its pod evicted after its 2 s toleration and
    // replaced on the others.
    nodes[2].kill();
    eventually(Duration::from_secs(30), || {
        let ready = cluster.jsonpath(
            &["node", "node-c"],
            r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        );
        if ready == "Unknown" {
            Ok(())
        } else {
            Err(ready)
        }
    });
    let taints = cluster.jsonpath(&["node", "node-c"], "{.spec.taints[*].key}");
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    eventually(Duration::from_secs(60), || {
        let pods = live_pods(&cluster, "app=my-app");
        let on_live = pods.iter().filter(|p| p.1 != "node-c" && p.2).count();
        if on_live == 3 {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });

    // A budget that allows no disruption holds a drain back (429, retried by kubectl).
    cluster.apply_yaml("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: my-app\nspec:\n  minAvailable: 3\n  selector:\n    matchLabels: {app: my-app}\n",
    );
    eventually(Duration::from_secs(30), || {
        let allowed = cluster.jsonpath(
            &["pdb", "my-app"],
            "{.status.currentHealthy}/{.status.disruptionsAllowed}",
        );
        if allowed == "3/0" {
            Ok(())
        } else {
            Err(allowed)
        }
    });
    let held = cluster.kubectl(&["drain", "node-b", "--ignore-daemonsets", "--timeout=5s"]);
    assert!(!held.status.success(), "{}", held.describe());
    assert!(
        held.stderr_text().contains("disruption budget"),
        "{}",
        held.describe()
    );
    assert_eq!(
        cluster.jsonpath(&["node", "node-b"], "{.spec.unschedulable}"),
        "true",
        "drain cordons first"
    );
    // With room for one disruption at a time, the drain goes through.
    cluster.kubectl_ok(&[
        "patch",
        "pdb",
        "my-app",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":2}}"#,
    ]);
    cluster.kubectl_ok(&["drain", "node-b", "--ignore-daemonsets", "--timeout=60s"]);
    let pods = wait_ready(&cluster, "app=my-app", 3);
    assert!(
        pods.iter().all(|p| p.1 == "node-a"),
        "everything runs on node-a now: {pods:?}"
    );
    cluster.kubectl_ok(&["uncordon", "node-b"]);

    // A pod no node can take says why.
    cluster.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\nspec:\n  containers:\n  - name: c\n    image: nginx\n    resources:\n      requests: {memory: 100Ti}\n",
    );
    let message = eventually(Duration::from_secs(30), || {
        let m = cluster.jsonpath(
            &["pod", "huge"],
            r#"{.status.conditions[?(@.type=="PodScheduled")].message}"#,
        );
        if m.contains("0/3 nodes are available") {
            Ok(m)
        } else {
            Err(m)
        }
    });
    assert!(message.contains("Insufficient memory"), "{message}");
    assert!(
        message.contains("node.kubernetes.io/unreachable"),
        "{message}"
    );
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=huge",
    ]);
    assert!(events.contains("FailedScheduling"), "{events}");
}
