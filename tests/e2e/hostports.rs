//! The way in from the host (issue 8): a LoadBalancer Service answers `curl` at 127.0.0.1, a
//! NodePort answers on every node's address, and as an ordinary user a load-balancer port
//! below 1024 is refused with its reason in `status.loadBalancer` and an Event while its
//! NodePort still serves. Also the ClusterIP allocator's 422s and that a restart in between
//! never hands out an address twice.

use std::time::Duration;

use crate::http::http_request;
use crate::support::{Cluster, FAST, OutputExt, as_ordinary_user, eventually};

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet: {path: /, port: 80}
          periodSeconds: 1
";

/// A port nobody on this host listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GETs `/` at `addr` until the page names a web pod.
fn page_at(addr: &str) {
    eventually(Duration::from_secs(20), || {
        let ok = std::panic::catch_unwind(|| http_request(addr, "GET", "/", None, b""))
            .map_err(|_| format!("{addr} refused"))?;
        if ok.status == 200 && ok.body.contains("web-") {
            Ok(())
        } else {
            Err(format!("{ok:?}"))
        }
    });
}

#[test]
fn load_balancers_and_node_ports_answer_from_the_host() {
    let (_, prefix) = as_ordinary_user();
    let mut flags = vec!["--nodes", "2"];
    flags.extend_from_slice(FAST);
    let Some(cluster) = Cluster::up_with_kubectl_as("hostports::lb", &flags, prefix) else {
        return;
    };
    cluster.apply_yaml(WEB);
    let port = free_port();
    cluster.apply_yaml(&format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports:\n  - {{name: http, port: {port}, targetPort: 80}}\n  - {{name: low, port: 80, targetPort: 80}}\n"
        ),
    );
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);

    // Its ingress is 127.0.0.1, and `curl http://127.0.0.1:PORT` reaches the Deployment.
    eventually(Duration::from_secs(20), || {
        let ip = cluster.jsonpath(&["service", "web"], "{.status.loadBalancer.ingress[0].ip}");
        if ip == "127.0.0.1" { Ok(()) } else { Err(ip) }
    });
    page_at(&format!("127.0.0.1:{port}"));

    // Each port's NodePort answers on every node's address (node i is 127.1.i.1).
    let node_ports = cluster.jsonpath(&["service", "web"], "{.spec.ports[*].nodePort}");
    for node_port in node_ports.split_whitespace() {
        for node in ["127.1.1.1", "127.1.2.1"] {
            page_at(&format!("{node}:{node_port}"));
        }
    }

    // Port 80: only root may bind it. An ordinary user's cluster says why and where instead.
    let errors = cluster.jsonpath(
        &["service", "web"],
        "{.status.loadBalancer.ingress[0].ports[*].error}",
    );
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if start > 80 {
        let events = cluster.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web,reason=PortNotBindable",
        ]);
        assert!(
            events.contains("below 1024") && events.contains("NodePort"),
            "{events}"
        );
        assert_eq!(errors, "wasmkube.io/PortNotBindable", "one port failed");
    }

    // A Service that selects nothing: the connection is refused at once, the agent lives on.
    cluster.apply_yaml("apiVersion: v1\nkind: Service\nmetadata:\n  name: nobody\nspec:\n  type: NodePort\n  selector: {app: none}\n  ports:\n  - {port: 80}\n",
    );
    let np = cluster.jsonpath(&["service", "nobody"], "{.spec.ports[0].nodePort}");
    eventually(Duration::from_secs(20), || {
        use std::io::Read as _;
        let mut s = std::net::TcpStream::connect(format!("127.1.1.1:{np}"))
            .map_err(|e| format!("not listening yet: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => Ok(()),
            Ok(_) => Err("answered".to_string()),
        }
    });
    page_at(&format!("127.0.0.1:{port}"));

    // A NodePort someone else holds is a 422 naming the field.
    let clash = cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: clash\nspec:\n  type: NodePort\n  selector: {{app: web}}\n  ports:\n  - {{port: 80, nodePort: {np}}}\n"
            )
            .as_bytes(),
        ),
    );
    assert!(!clash.status.success());
    assert!(
        clash
            .stderr_text()
            .contains("spec.ports[0].nodePort: Invalid value"),
        "{}",
        clash.describe()
    );
}

#[test]
fn cluster_ips_are_checked_and_never_handed_out_twice() {
    let Some(mut cluster) = Cluster::server_with_kubectl("hostports::ips", &[]) else {
        return;
    };
    let svc = |name: &str, ip: Option<&str>| {
        let ip = ip
            .map(|ip| format!("  clusterIP: {ip}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{ip}  ports:\n  - port: 80\n"
        )
    };
    cluster.apply_yaml(&svc("a", None));
    let a = cluster.jsonpath(&["service", "a"], "{.spec.clusterIP}");
    let taken = cluster.kubectl_stdin(&["apply", "-f", "-"], Some(svc("b", Some(&a)).as_bytes()));
    assert!(
        taken
            .stderr_text()
            .contains("provided IP is already allocated"),
        "{}",
        taken.describe()
    );
    let outside = cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(svc("b", Some("192.168.7.7")).as_bytes()),
    );
    assert!(
        outside
            .stderr_text()
            .contains("The range of valid IPs is 10.96.0.0/12"),
        "{}",
        outside.describe()
    );
    // Nothing leaked by the failures, nothing forgotten by a restart.
    cluster.stop();
    cluster.restart();
    cluster.apply_yaml(&svc("c", None));
    let c = cluster.jsonpath(&["service", "c"], "{.spec.clusterIP}");
    assert_ne!(a, c);
    cluster.kubectl_ok(&["delete", "service", "a"]);
    cluster.apply_yaml(&svc("d", Some(&a)));
    assert_eq!(cluster.jsonpath(&["service", "d"], "{.spec.clusterIP}"), a);
}
