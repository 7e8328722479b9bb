//! Pod lifecycle and resources on a real node agent: hooks and graceful deletion, an agent
//! restart, OOMKilled, CPU shares and limits, the pod network's walls, and a whole cluster
//! run as an ordinary user.

use std::time::{Duration, Instant};

use crate::support::{Cluster, FAST, OutputExt, eventually};

#[test]
fn hooks_run_and_a_server_stops_early_within_its_grace_period() {
    let Some(cluster) = Cluster::up_with_kubectl("lifecycle::hooks", FAST) else {
        return;
    };
    cluster.apply_manifest("hooks.yaml");
    cluster.wait_running("hooked");
    // postStart: the kubelet's GET shows in the server's own access log.
    cluster.logs_contain(&["hooked"], "\"kube-lifecycle/1.37\"");

    // preStop sleeps 2 s, then the listener closes and the server exits by itself: well
    // within the 30 s grace period, and never before the hook finished.
    let started = Instant::now();
    cluster.kubectl_ok(&["delete", "pod", "hooked", "--wait=true"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "deleting took {took:?}, expected the 2 s preStop and then a prompt exit"
    );
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=hooked",
    ]);
    assert!(events.contains("Killing"), "{events}");
    assert!(!events.contains("FailedPostStartHook"), "{events}");
}

#[test]
fn an_agent_restart_restarts_containers_with_the_same_ip_and_empty_dir() {
    let Some(mut cluster) = Cluster::up_with_kubectl("lifecycle::restart", FAST) else {
        return;
    };
    cluster.apply_manifest("survivor.yaml");
    cluster.wait_running("survivor");
    cluster.logs_contain(&["survivor"], "data: fresh");
    let ip = cluster.jsonpath(&["pod", "survivor"], "{.status.podIP}");

    cluster.stop();
    cluster.restart();

    let status = "{.status.containerStatuses[0].restartCount} {.status.phase}";
    cluster.wait_for("survivor", status, "1 Running");
    assert_eq!(
        cluster.jsonpath(&["pod", "survivor"], "{.status.podIP}"),
        ip,
        "the pod keeps its IP"
    );
    let text = cluster.logs_contain(&["survivor"], "data: kept");
    assert!(
        text.contains("tmp: fresh"),
        "the container's own /tmp starts empty: {text}"
    );
    let last = cluster.jsonpath(
        &["pod", "survivor"],
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert!(!last.is_empty(), "lastState says how the last run ended");
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let Some(cluster) = Cluster::up_with_kubectl("lifecycle::oom", FAST) else {
        return;
    };
    cluster.kubectl_ok(&[
        "run",
        "hog",
        "--image=wasmkube/stress",
        "--restart=Never",
        "--overrides",
        r#"{"spec":{"containers":[{"name":"hog","image":"wasmkube/stress",
            "args":["--grow-until-oom","--step","4Mi"],
            "resources":{"limits":{"memory":"32Mi"}}}]}}"#,
    ]);
    let state = "{.status.phase} {.status.containerStatuses[0].state.terminated.reason} \
                 {.status.containerStatuses[0].state.terminated.exitCode}";
    cluster.wait_for("hog", state, "Failed OOMKilled 137");
    let describe = cluster.kubectl_ok(&["describe", "pod", "hog"]);
    assert!(describe.contains("OOMKilled"), "{describe}");
    // The agent lives on: another pod still runs.
    cluster.kubectl_ok(&[
        "run",
        "after",
        "--image=wasmkube/toolbox",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "echo still here; sleep 60",
    ]);
    cluster.logs_contain(&["after"], "still here");

    // A limit above the node's largest container (--default-memory-limit) is refused clearly.
    cluster.kubectl_ok(&[
        "run",
        "big",
        "--image=wasmkube/toolbox",
        "--overrides",
        r#"{"spec":{"containers":[{"name":"big","image":"wasmkube/toolbox",
            "command":["sleep","60"],"resources":{"limits":{"memory":"1Gi"}}}]}}"#,
    ]);
    let waiting = "{.status.containerStatuses[0].state.waiting.reason}";
    cluster.wait_for("big", waiting, "CreateContainerError");
    let describe = cluster.kubectl_ok(&["describe", "pod", "big"]);
    assert!(
        describe.contains("more than this node's largest container"),
        "{describe}"
    );
}

/// The latest `stress: Ns elapsed, N work units` report of a pod.
fn work(cluster: &Cluster, pod: &str) -> (f64, f64) {
    eventually(Duration::from_secs(30), || {
        let out = cluster.kubectl(&["logs", pod, "--tail", "5"]);
        out.stdout_text()
            .lines()
            .rev()
            .find_map(|line| {
                let rest = line.strip_prefix("stress: ")?;
                let (secs, rest) = rest.split_once("s elapsed, ")?;
                let (units, _) = rest.split_once(" work units")?;
                Some((secs.parse().ok()?, units.parse().ok()?))
            })
            .ok_or_else(|| format!("no report from {pod}: {}", out.describe()))
    })
}

/// The CPU seconds of a container from the node's `/metrics/resource`.
fn cpu_seconds(metrics: &str, pod: &str) -> f64 {
    let needle = format!("namespace=\"default\",pod=\"{pod}\"}} ");
    metrics
        .lines()
        .find(|l| l.starts_with("container_cpu_usage_seconds_total") && l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no CPU usage for {pod} in\n{metrics}"))
}

#[test]
fn cpu_requests_share_a_core_and_limits_throttle() {
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--node-cpu", "1"]);
    let Some(cluster) = Cluster::up_with_kubectl("lifecycle::cpu", &flags) else {
        return;
    };
    cluster.apply_manifest("resources.yaml");
    for pod in ["light", "heavy", "capped"] {
        cluster.wait_running(pod);
        work(&cluster, pod);
    }
    let endpoint = format!(
        "{}:{}",
        cluster.jsonpath(&["node", "node-1"], "{.status.addresses[0].address}"),
        cluster.jsonpath(
            &["node", "node-1"],
            "{.status.daemonEndpoints.kubeletEndpoint.Port}"
        )
    );
    let metrics =
        || crate::http::http_request(&endpoint, "GET", "/metrics/resource", None, b"").body;

    let before: Vec<(f64, f64)> = ["light", "heavy"]
        .iter()
        .map(|p| work(&cluster, p))
        .collect();
    let (capped_before, t0) = (cpu_seconds(&metrics(), "capped"), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let after: Vec<(f64, f64)> = ["light", "heavy"]
        .iter()
        .map(|p| work(&cluster, p))
        .collect();
    let (capped_after, t1) = (cpu_seconds(&metrics(), "capped"), Instant::now());

    let rate = |i: usize| (after[i].1 - before[i].1) / (after[i].0 - before[i].0).max(0.1);
    let (light, heavy) = (rate(0), rate(1));
    let ratio = heavy / light.max(1.0);
    assert!(
        (2.0..=4.5).contains(&ratio),
        "requests 100m:300m on one core should share it about 1:3, got {light:.0} vs {heavy:.0} units/s (1:{ratio:.2})"
    );
    let share = (capped_after - capped_before) / (t1 - t0).as_secs_f64();
    assert!(
        share > 0.02 && share <= 0.25,
        "limits.cpu 200m should hold the container to a fifth of a core, it used {share:.2}"
    );
}

#[test]
fn a_pod_cannot_listen_on_another_pods_ip() {
    let mut flags = FAST.to_vec();
    flags.extend_from_slice(&["--max-pods", "2"]);
    let Some(cluster) = Cluster::up_with_kubectl("lifecycle::walls", &flags) else {
        return;
    };
    cluster.kubectl_ok(&["run", "web", "--image=wasmkube/web", "--port=80"]);
    cluster.wait_running("web");
    let ip = cluster.jsonpath(&["pod", "web"], "{.status.podIP}");
    cluster.kubectl_ok(&[
        "run",
        "thief",
        "--image=wasmkube/toolbox",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        &format!("nc -l -s {ip} -p 8080; echo exit=$?"),
    ]);
    let text = cluster.logs_contain(&["thief"], "exit=1");
    assert!(text.contains("can't listen on"), "{text}");
    // The web pod is untouched.
    assert_eq!(
        cluster.jsonpath(&["pod", "web"], "{.status.phase}"),
        "Running"
    );

    // --max-pods 2: the finished thief no longer counts, a second running pod fits; a third
    // stays Pending with the scheduler saying why, and one bound to the node by hand (past
    // the scheduler) is rejected by the node as the kubelet does.
    cluster.wait_for("thief", "{.status.phase}", "Succeeded");
    let sleeper = |name: &str, overrides: &str| {
        cluster.kubectl_ok(&[
            "run",
            name,
            "--image=wasmkube/toolbox",
            &format!("--overrides={overrides}"),
            "--command",
            "--",
            "sleep",
            "600",
        ]);
    };
    sleeper("second", "{}");
    cluster.wait_running("second");
    sleeper("third", "{}");
    let why = r#"{.status.conditions[?(@.type=="PodScheduled")].message}"#;
    cluster.wait_for("third", why, "0/1 nodes are available: 1 Too many pods.");
    sleeper("fourth", r#"{"spec":{"nodeName":"node-1"}}"#);
    let status = "{.status.phase} {.status.reason}";
    cluster.wait_for("fourth", status, "Failed OutOfpods");
}

#[test]
fn a_cluster_runs_as_an_ordinary_user_with_low_ports_mapped() {
    let (root, prefix) = crate::support::as_ordinary_user();
    let Some(cluster) = Cluster::up_with_kubectl_as("lifecycle::nonroot", FAST, prefix) else {
        return;
    };
    let (bindable, start) = runtime_low_ports();
    let mapped_expected = root || !bindable;
    cluster.apply_manifest("pod-pair.yaml");
    cluster.wait_running("pair-a");
    // Containers still meet on localhost:80 and the page names the pod.
    cluster.logs_contain(&["pair-a", "-c", "client"], "pair-a");
    if mapped_expected {
        let events =
            cluster.kubectl_ok(&["get", "events", "--field-selector", "reason=PortsMapped"]);
        assert!(
            events.contains("61000+port"),
            "the node says its ports are mapped (ip_unprivileged_port_start={start:?}): {events}"
        );
        // From the host, the pod's port 80 is at 61080.
        let ip = cluster.jsonpath(&["pod", "pair-a"], "{.status.podIP}");
        let page = crate::http::http_request(&format!("{ip}:61080"), "GET", "/", None, b"");
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.body.contains("pair-a"));
    }
}

/// What the node agent will find about low ports, read the same way.
fn runtime_low_ports() -> (bool, Option<u16>) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok());
    (start.is_some_and(|s| s <= 1), start)
}

#[test]
fn hostile_guests_get_a_clear_state_and_leave_the_node_and_neighbours_alone() {
    let mut flags = FAST.to_vec();
    flags.push("--allow-file-images");
    let Some(cluster) = Cluster::up_with_kubectl("lifecycle::hostile", &flags) else {
        return;
    };
    cluster.kubectl_ok(&[
        "run",
        "calm",
        "--image=wasmkube/toolbox",
        "--command",
        "--",
        "sh",
        "-c",
        "while true; do echo calm; sleep 1; done",
    ]);
    cluster.wait_running("calm");

    // Not WebAssembly at all.
    let text = cluster.data_dir().join("not-wasm.txt");
    std::fs::write(&text, "#!/bin/sh\necho I am a shell script\n").unwrap();
    // (kubectl run checks image names itself; a manifest goes straight to the API.)
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "notwasm"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "script", "image": format!("file://{}", text.display())}]}
    });
    let out = cluster.kubectl_stdin(&["apply", "-f", "-"], Some(pod.to_string().as_bytes()));
    assert!(out.status.success(), "{}", out.describe());
    // A trap, and a guest that never yields on its own.
    cluster.kubectl_ok(&[
        "run",
        "trapper",
        "--image=wasmkube/crash",
        "--restart=Never",
        "--env=CRASH_AFTER=0",
        "--env=CRASH_MODE=trap",
    ]);
    cluster.kubectl_ok(&[
        "run",
        "spinner",
        "--image=wasmkube/stress",
        "--",
        "--cpu",
        "spin",
    ]);

    // As containerd does for a binary it cannot execute: StartError, exit code 128.
    let start_error = "{.status.phase} {.status.containerStatuses[0].state.terminated.reason} \
                       {.status.containerStatuses[0].state.terminated.exitCode}";
    cluster.wait_for("notwasm", start_error, "Failed StartError 128");
    let describe = cluster.kubectl_ok(&["describe", "pod", "notwasm"]);
    assert!(describe.contains("not WebAssembly"), "{describe}");

    let ended = "{.status.containerStatuses[0].state.terminated.exitCode} \
                 {.status.containerStatuses[0].state.terminated.message}";
    let trap = eventually(Duration::from_secs(30), || {
        let s = cluster.jsonpath(&["pod", "trapper"], ended);
        if s.starts_with("134 ") {
            Ok(s)
        } else {
            Err(format!("exit code and message: {s:?}"))
        }
    });
    assert!(trap.contains("unreachable"), "{trap}");

    // The spinner is stopped by the epoch interrupt within its grace period.
    cluster.wait_running("spinner");
    let started = Instant::now();
    cluster.kubectl_ok(&[
        "delete",
        "pod",
        "spinner",
        "--grace-period=1",
        "--wait=true",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a spinning guest took {:?} to stop",
        started.elapsed()
    );

    // The neighbour never noticed.
    assert_eq!(cluster.phase("calm"), "Running");
    let restarts = cluster.jsonpath(
        &["pod", "calm"],
        "{.status.containerStatuses[0].restartCount}",
    );
    assert_eq!(restarts, "0");
    let nodes = cluster.kubectl_ok(&["get", "nodes"]);
    assert!(nodes.contains(" Ready"), "{nodes}");
}
