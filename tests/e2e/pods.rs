//! Pods become WebAssembly instances: `wasmkube up` runs the control plane and a node agent,
//! and the real kubectl sees pods start, log, share localhost and volumes, crash and restart.

use std::time::Duration;

use crate::support::{Cluster, FAST, OutputExt, eventually};

#[test]
fn a_node_registers_and_a_pod_runs_with_its_own_ip_and_logs() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::runs", FAST) else {
        return;
    };
    eventually(Duration::from_secs(30), || {
        let nodes = cluster.kubectl_ok(&["get", "nodes"]);
        if nodes.contains("node-1") && nodes.contains(" Ready") {
            Ok(())
        } else {
            Err(nodes)
        }
    });
    cluster.kubectl_ok(&[
        "run",
        "hello",
        "--image=wasmkube/toolbox",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "echo hello from $HOSTNAME; sleep 60",
    ]);
    cluster.wait_running("hello");
    cluster.logs_contain(&["hello"], "hello from hello");
    let describe = cluster.kubectl_ok(&["describe", "pod", "hello"]);
    for event in [
        "Successfully assigned default/hello to node-1",
        "Pulled",
        "Created",
        "Started",
    ] {
        assert!(describe.contains(event), "no {event:?} in\n{describe}");
    }
    let ours = cluster.wasmkube(&["logs", "hello", "--tail", "5"]);
    assert!(
        ours.stdout_text().contains("hello from hello"),
        "wasmkube logs: {}",
        ours.describe()
    );
    let ip = cluster.jsonpath(&["pod", "hello"], "{.status.podIP}");
    let cidr = cluster.jsonpath(&["node", "node-1"], "{.spec.podCIDR}");
    let network = cidr.trim_end_matches("0.0/16");
    assert!(
        !network.is_empty() && ip.starts_with(network),
        "pod IP {ip} is in node-1's pod network {cidr}"
    );
    let wide = cluster.kubectl_ok(&["get", "pod", "hello", "-o", "wide"]);
    assert!(
        wide.contains("node-1") && wide.contains("Running"),
        "{wide}"
    );
    let started = std::time::Instant::now();
    cluster.kubectl_ok(&["delete", "pod", "hello", "--grace-period=1"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "deletion took {:?}",
        started.elapsed()
    );
}

#[test]
fn containers_of_a_pod_meet_on_localhost_and_two_pods_both_listen_on_80() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::localhost", FAST) else {
        return;
    };
    cluster.apply_manifest("pod-pair.yaml");
    cluster.apply_manifest("udp.yaml");
    cluster.wait_running("pair-a");
    cluster.wait_running("pair-b");
    // The web guest's default page names the pod that served it.
    cluster.logs_contain(&["pair-a", "-c", "client"], "pair-a");
    cluster.logs_contain(&["pair-b", "-c", "client"], "pair-b");
    // UDP too: a datagram to localhost reaches the other container's 0.0.0.0 socket.
    let udp = cluster.logs_contain(&["udp-pair", "-c", "listener"], "udp-done");
    assert!(udp.contains("ping-over-udp"), "{udp}");
    let a = cluster.jsonpath(&["pod", "pair-a"], "{.status.podIP}");
    let b = cluster.jsonpath(&["pod", "pair-b"], "{.status.podIP}");
    assert_ne!(a, b);
}

#[test]
fn an_empty_dir_is_shared_and_a_config_map_is_files_and_env() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::volumes", FAST) else {
        return;
    };
    cluster.apply_manifest("volumes.yaml");
    cluster.wait_running("shared");
    let text = cluster.logs_contain(&["shared", "-c", "reader"], "written-by-writer");
    assert!(text.contains("hello-from-configmap"), "{text}");
    assert!(text.contains("env=hello-from-configmap"), "{text}");
}

#[test]
fn a_crashing_container_restarts_with_backoff_and_keeps_its_previous_logs() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::crash", FAST) else {
        return;
    };
    cluster.kubectl_ok(&[
        "run",
        "crasher",
        "--image=wasmkube/crash",
        "--env=CRASH_AFTER=0",
        "--env=EXIT_CODE=3",
    ]);
    eventually(Duration::from_secs(60), || {
        let restarts: u32 = cluster
            .jsonpath(
                &["pod", "crasher"],
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse()
            .unwrap_or(0);
        let code = cluster.jsonpath(
            &["pod", "crasher"],
            "{.status.containerStatuses[0].lastState.terminated.exitCode}",
        );
        if restarts >= 2 && code == "3" {
            Ok(())
        } else {
            Err(format!("restarts {restarts}, last exit {code:?}"))
        }
    });
    let status = cluster.kubectl_ok(&["get", "pod", "crasher"]);
    assert!(
        status.contains("CrashLoopBackOff") || status.contains("Error"),
        "{status}"
    );
    let previous = cluster.kubectl(&["logs", "crasher", "--previous"]);
    assert!(previous.status.success(), "{}", previous.describe());
}

#[test]
fn a_pod_that_exits_is_succeeded_or_failed_with_its_exit_code() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::exit", FAST) else {
        return;
    };
    cluster.kubectl_ok(&[
        "run",
        "fails",
        "--image=wasmkube/crash",
        "--restart=Never",
        "--env=CRASH_AFTER=0",
        "--env=EXIT_CODE=7",
    ]);
    cluster.wait_for("fails", "{.status.phase}", "Failed");
    let code = cluster.jsonpath(
        &["pod", "fails"],
        "{.status.containerStatuses[0].state.terminated.exitCode}",
    );
    assert_eq!(code, "7");
    let reason = cluster.jsonpath(
        &["pod", "fails"],
        "{.status.containerStatuses[0].state.terminated.reason}",
    );
    assert_eq!(reason, "Error");
}

#[test]
fn a_wasi_http_component_is_served_on_its_container_port() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::wasi_http", FAST) else {
        return;
    };
    cluster.kubectl_ok(&["run", "hello", "--image=wasmkube/http-hello", "--port=8080"]);
    cluster.wait_running("hello");
    let ip = cluster.jsonpath(&["pod", "hello"], "{.status.podIP}");
    let addr = format!("{ip}:8080");
    let page = eventually(Duration::from_secs(30), || {
        // Running comes a moment before the node listens (the image compiles first).
        std::net::TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        let r = crate::http::http_request(&addr, "GET", "/greet?x=1", None, b"");
        if r.status == 200 {
            Ok(r)
        } else {
            Err(format!("{r:?}"))
        }
    });
    assert_eq!(
        page.body,
        "Hello from wasi:http on pod hello: GET /greet?x=1\n"
    );
    let teapot = crate::http::http_request(&addr, "GET", "/status/418", None, b"");
    assert_eq!(teapot.status, 418, "{teapot:?}");
    // Another pod reaches it over the pod network too.
    cluster.kubectl_ok(&[
        "run",
        "caller",
        "--image=wasmkube/toolbox",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        &format!("wget -qO- http://{addr}/from-a-pod; sleep 60"),
    ]);
    cluster.logs_contain(&["caller"], "GET /from-a-pod");
    cluster.logs_contain(&["hello"], "http-hello: GET /greet?x=1 200");
}

#[test]
fn a_sidecar_starts_first_runs_beside_and_stops_after_the_container() {
    let Some(cluster) = Cluster::up_with_kubectl("pods::sidecar", FAST) else {
        return;
    };
    cluster.apply_manifest("sidecar.yaml");
    eventually(Duration::from_secs(60), || {
        match cluster.phase("with-sidecar").as_str() {
            "Succeeded" => Ok(()),
            other => Err(format!(
                "phase {other:?}\n{}",
                cluster
                    .kubectl(&["describe", "pod", "with-sidecar"])
                    .describe()
            )),
        }
    });
    // The container saw what the sidecar wrote: it ran beside it.
    let main = cluster.logs_contain(&["with-sidecar", "-c", "main"], "main-done");
    assert!(main.contains("sidecar-alive"), "{main}");
    cluster.logs_contain(&["with-sidecar", "-c", "logger"], "sidecar-alive");
    let initialized = cluster.jsonpath(
        &["pod", "with-sidecar"],
        "{.status.conditions[?(@.type==\"Initialized\")].status}",
    );
    assert_eq!(initialized, "True");
}
