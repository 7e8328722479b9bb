//! Services (issue 8) on `up --nodes 3` with the real kubectl: a ClusterIP in front of a web
//! Deployment, balanced in the socket layer at connect time; cluster DNS from a toolbox pod;
//! session affinity; the `kubernetes` Service from inside a pod; zero failed requests while
//! the Deployment rolls and while a pod is deleted gracefully; `api` reaching `kv` by name; a
//! StatefulSet pod's DNS name; the docs' init container that waits for a Service.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Cluster, FAST, OutputExt, TOOLBOX, eventually};

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
      terminationGracePeriodSeconds: 5
      containers:
      - name: nginx
        image: nginx
        ports:
        - {name: http, containerPort: 80}
        readinessProbe:
          httpGet: {path: /, port: 80}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: sticky
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports:
  - {port: 8080, targetPort: 80}
";

/// The pods named by `n` page fetches of `url` from the toolbox.
fn served_by(cluster: &Cluster, url: &str, n: usize) -> BTreeSet<String> {
    let pages = cluster.exec_sh(
        "toolbox",
        &format!("i=0; while [ $i -lt {n} ]; do wget -qO- {url}; i=$((i+1)); done"),
    );
    let names: Vec<String> = pages
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("web-") && w.matches('-').count() == 2)
        .map(String::from)
        .collect();
    assert_eq!(names.len(), n, "every request answered:\n{pages}");
    names.into_iter().collect()
}

/// The web pods that are running and not terminating.
fn web_pods(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let name = fields.next()?;
            fields.next().is_none().then(|| name.to_string())
        })
        .collect()
}

#[test]
fn cluster_ips_balance_resolve_and_never_drop_a_request() {
    let mut flags = vec!["--nodes", "3"];
    flags.extend_from_slice(FAST);
    let Some(cluster) = Cluster::up_with_kubectl("services::balance", &flags) else {
        return;
    };
    cluster.apply_yaml(WEB);
    cluster.apply_yaml(TOOLBOX);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cluster.wait_running("toolbox");

    // "One stable IP and DNS name that load-balances across them."
    let ip = cluster.jsonpath(&["service", "web"], "{.spec.clusterIP}");
    let page = cluster.exec_sh("toolbox", "wget -qO- http://web");
    assert!(page.contains("web-"), "{page}");
    let lookup = cluster.exec_sh("toolbox", "nslookup web.default.svc.cluster.local");
    assert!(lookup.contains(&format!("Address: {ip}")), "{lookup}");
    // The seed notes' step: `nslookup <service>` from the busybox pod.
    let short = cluster.exec_sh("toolbox", "nslookup web");
    assert!(short.contains(&format!("Address: {ip}")), "{short}");
    let outside = cluster.kubectl(&["exec", "toolbox", "--", "nslookup", "example.com"]);
    assert!(!outside.status.success());
    assert!(
        outside.stdout_text().contains("REFUSED"),
        "{}",
        outside.describe()
    );
    let missing = cluster.kubectl(&["exec", "toolbox", "--", "nslookup", "nope"]);
    assert!(
        missing.stdout_text().contains("NXDOMAIN"),
        "{}",
        missing.describe()
    );

    // 100 requests reach all 4 replicas; scaling changes the spread.
    let pods = web_pods(&cluster);
    assert_eq!(pods.len(), 4, "{pods:?}");
    assert_eq!(served_by(&cluster, "http://web", 100), pods);
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=6"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    eventually(Duration::from_secs(20), || {
        let got = served_by(&cluster, "http://web", 60);
        if got.len() == 6 {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=2"]);
    eventually(Duration::from_secs(30), || {
        let pods = web_pods(&cluster);
        let got = served_by(&cluster, "http://web", 20);
        if pods.len() == 2 && got == pods {
            Ok(())
        } else {
            Err(format!("{got:?} of {pods:?}"))
        }
    });

    // sessionAffinity: ClientIP keeps the toolbox on one pod.
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=4"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let sticky = served_by(&cluster, "http://sticky:8080", 20);
    assert_eq!(sticky.len(), 1, "{sticky:?}");

    // The `kubernetes` Service's endpoint is the API server's own 127.0.0.1 address.
    let version = cluster.exec_sh("toolbox", "wget -qO- http://kubernetes.default:443/version");
    assert!(version.contains("gitVersion"), "{version}");

    // A request loop sees no failure while the Deployment rolls and while a pod is deleted.
    let looping = cluster
        .kubectl_command(&["exec", "toolbox", "--", "sh", "-c"])
        .arg(
            "rm -f /stop; n=0; while [ ! -f /stop ]; do \
             if wget -q -T 5 -O /page http://web; then n=$((n+1)); else echo FAIL; fi; done; \
             echo served $n",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec");
    std::thread::sleep(Duration::from_secs(1));
    cluster.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let victim = web_pods(&cluster).into_iter().next().unwrap();
    cluster.kubectl_ok(&["delete", "pod", &victim]);
    cluster.exec_sh("toolbox", "touch /stop");
    let out = looping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let served: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("served "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        !text.contains("FAIL"),
        "requests failed during the rollout:\n{text}"
    );
    assert!(served > 20, "{text}");
}

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: kv
spec:
  replicas: 1
  selector:
    matchLabels: {app: kv}
  template:
    metadata:
      labels: {app: kv}
    spec:
      containers:
      - name: kv
        image: wasmkube/kv
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: kv
spec:
  selector: {app: kv}
  ports:
  - port: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: wasmkube/api
        ports:
        - containerPort: 3000
        env:
        - name: KV_URL
          value: http://kv:8080
        readinessProbe:
          httpGet: {path: /healthz, port: 3000}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector: {app: api}
  ports:
  - {port: 80, targetPort: 3000}
---
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - port: 8080
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: kv
        image: wasmkube/kv
";

/// The Kubernetes docs' init-container example (Pods > Init Containers), image unchanged.
const MYAPP: &str = "apiVersion: v1
kind: Pod
metadata:
  name: myapp-pod
  labels:
    app.kubernetes.io/name: MyApp
spec:
  containers:
  - name: myapp-container
    image: busybox:1.28
    command: ['sh', '-c', 'echo The app is running! && sleep 3600']
  initContainers:
  - name: init-myservice
    image: busybox:1.28
    command: ['sh', '-c', \"until nslookup myservice.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for myservice; sleep 1; done\"]
";

#[test]
fn apps_find_each_other_by_name() {
    let mut flags = vec!["--nodes", "2"];
    flags.extend_from_slice(FAST);
    let Some(cluster) = Cluster::up_with_kubectl("services::names", &flags) else {
        return;
    };
    cluster.apply_yaml(APP);
    cluster.apply_yaml(TOOLBOX);
    cluster.apply_yaml(MYAPP);
    for deploy in ["deployment/kv", "deployment/api", "statefulset/db"] {
        cluster.kubectl_ok(&["rollout", "status", deploy, "--timeout=60s"]);
    }
    cluster.wait_running("toolbox");

    // The api example reaches kv by its Service name.
    let visits = cluster.exec_sh(
        "toolbox",
        "wget -qO- http://api/visits; wget -qO- http://api/visits",
    );
    assert!(visits.contains(r#"{"visits":2}"#), "{visits}");

    // A StatefulSet pod has its own name under the headless Service; the Service names all.
    let db0 = cluster.jsonpath(&["pod", "db-0"], "{.status.podIP}");
    let db1 = cluster.jsonpath(&["pod", "db-1"], "{.status.podIP}");
    let one = cluster.exec_sh("toolbox", "nslookup db-0.db.default.svc.cluster.local");
    assert!(one.contains(&format!("Address: {db0}")), "{one}");
    let all = cluster.exec_sh("toolbox", "nslookup db");
    assert!(
        all.contains(&format!("Address: {db0}")) && all.contains(&format!("Address: {db1}")),
        "{all}"
    );
    let kept = cluster.exec_sh("toolbox", "wget -qO- -T 5 http://db-1.db:8080/healthz");
    assert!(kept.contains("ok"), "{kept}");

    // The init container holds the pod in Init:0/1 until its Service exists.
    std::thread::sleep(Duration::from_secs(3));
    let row = cluster.kubectl_ok(&["get", "pod", "myapp-pod"]);
    assert!(row.contains("Init:0/1"), "{row}");
    cluster.apply_yaml("apiVersion: v1\nkind: Service\nmetadata:\n  name: myservice\nspec:\n  ports:\n  - {protocol: TCP, port: 80, targetPort: 9376}\n",
    );
    cluster.wait_running("myapp-pod");
    let logs = cluster.kubectl_ok(&["logs", "myapp-pod", "-c", "init-myservice"]);
    assert!(logs.contains("waiting for myservice"), "{logs}");
}
