//! kubectl 1.37 against the API server: the everyday commands, checked by what they print.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Cluster, OutputExt, eventually, manifest};

/// Asserts that `out` has `line` as one of its lines (surrounding spaces ignored).
#[track_caller]
pub fn assert_line(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l.trim() == line),
        "expected the line {line:?} in:\n{out}"
    );
}

/// The whitespace-separated cells of the first line whose leading cells are `start`.
pub fn row<'a>(out: &'a str, start: &[&str]) -> Option<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.starts_with(start))
}

/// The cells of the table header (the first line).
fn header(out: &str) -> Vec<&str> {
    out.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn deployment_lifecycle_apply_get_describe_edit_scale_label_delete() {
    let Some(c) = Cluster::with_kubectl("kubectl::deployment_lifecycle") else {
        return;
    };
    let web = manifest("web.yaml");

    // One multi-document file: every object is created and reported.
    let out = c.kubectl_ok(&["apply", "-f", path_str(&web)]);
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
        "configmap/web-config created",
    ] {
        assert_line(&out, line);
    }

    // Several kinds in one get.
    let out = c.kubectl_ok(&["get", "deploy,svc,cm"]);
    for name in ["deployment.apps/web", "service/web", "configmap/web-config"] {
        assert!(row(&out, &[name]).is_some(), "no {name} row in:\n{out}");
    }
    assert!(
        c.kubectl_ok(&["get", "ns"])
            .lines()
            .any(|l| l.starts_with("shop "))
    );

    // The server's Table: the columns kube-apiserver prints for deployments and services.
    let out = c.kubectl_ok(&["get", "deployments"]);
    assert_eq!(
        header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    let cells = row(&out, &["web"]).unwrap_or_else(|| panic!("no web row:\n{out}"));
    assert!(cells[1].ends_with("/2"), "READY of 2 replicas: {cells:?}");
    let out = c.kubectl_ok(&["get", "svc", "web"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    let cells = row(&out, &["web", "ClusterIP"]).unwrap_or_else(|| panic!("no web row:\n{out}"));
    assert_eq!(cells[4], "80/TCP", "{out}");

    let out = c.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"]);
    for line in [
        "kind: Deployment",
        "name: web",
        "replicas: 2",
        "image: nginx:1.27",
    ] {
        // `- image: ...` is a list item's first key.
        assert!(
            out.lines()
                .any(|l| l.trim().trim_start_matches("- ") == line),
            "no {line:?} in:\n{out}"
        );
    }

    // -A adds a NAMESPACE column.
    let out = c.kubectl_ok(&["get", "deploy", "-A"]);
    assert_eq!(header(&out).first(), Some(&"NAMESPACE"), "{out}");
    assert!(
        row(&out, &["default", "web"]).is_some(),
        "no default/web row:\n{out}"
    );

    // Label selectors filter on the server.
    assert_eq!(
        c.kubectl_ok(&["get", "deploy", "-l", "app=web", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    let none = c.kubectl(&["get", "deploy", "-l", "app=nope"]);
    assert!(none.status.success(), "{}", none.describe());
    assert_eq!(none.stdout_text(), "", "{}", none.describe());
    assert_line(
        &none.stderr_text(),
        "No resources found in default namespace.",
    );

    let out = c.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(row(&out, &["Name:", "web"]).is_some(), "{out}");
    assert!(row(&out, &["Namespace:", "default"]).is_some(), "{out}");
    let replicas = row(&out, &["Replicas:"]).unwrap_or_else(|| panic!("no Replicas:\n{out}"));
    assert_eq!(replicas[1..3], ["2", "desired"], "{out}");
    assert!(
        out.contains("nginx:1.27"),
        "the pod template's image:\n{out}"
    );

    // Re-apply after editing the image: only the Deployment changes, and its generation moves.
    assert_eq!(
        c.jsonpath(&["deploy", "web"], "{.metadata.generation}"),
        "1"
    );
    let uid = c.jsonpath(&["deploy", "web"], "{.metadata.uid}");
    let edited = std::fs::read_to_string(&web)
        .expect("read web.yaml")
        .replace("image: nginx:1.27", "image: nginx:1.28");
    assert!(edited.contains("nginx:1.28"));
    let edited_path = c.data_dir().join("web-edited.yaml");
    std::fs::write(&edited_path, edited).expect("write edited manifest");
    let out = c.kubectl_ok(&["apply", "-f", path_str(&edited_path)]);
    assert_line(&out, "deployment.apps/web configured");
    for line in [
        "namespace/shop unchanged",
        "service/web unchanged",
        "configmap/web-config unchanged",
    ] {
        assert_line(&out, line);
    }
    let image = "{.spec.template.spec.containers[0].image}";
    assert_eq!(c.jsonpath(&["deploy", "web"], image), "nginx:1.28");
    // Strategic merge keeps the container's other fields (a merge patch would drop ports).
    assert_eq!(
        c.jsonpath(
            &["deploy", "web"],
            "{.spec.template.spec.containers[*].name} {.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "nginx 80"
    );
    assert_eq!(
        c.jsonpath(&["deploy", "web"], "{.metadata.generation}"),
        "2"
    );
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.metadata.uid}"), uid);

    // Scale through the scale subresource.
    let out = c.kubectl_ok(&["scale", "deploy", "web", "--replicas=5"]);
    assert_line(&out, "deployment.apps/web scaled");
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "5");
    let out = c.kubectl_ok(&["get", "deploy", "web", "-o", "wide"]);
    assert!(
        header(&out).ends_with(&["CONTAINERS", "IMAGES", "SELECTOR"]),
        "{out}"
    );
    let cells = row(&out, &["web"]).unwrap_or_else(|| panic!("no web row:\n{out}"));
    assert!(cells[1].ends_with("/5"), "READY after scaling: {cells:?}");
    assert_eq!(
        cells[cells.len() - 3..],
        ["nginx", "nginx:1.28", "app=web"],
        "{out}"
    );

    // Labels added by kubectl are selectable.
    let out = c.kubectl_ok(&["label", "deploy", "web", "tier=frontend"]);
    assert_line(&out, "deployment.apps/web labeled");
    assert_eq!(
        c.kubectl_ok(&["get", "deploy", "-l", "tier=frontend", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        c.kubectl_ok(&[
            "get",
            "deploy,svc",
            "-l",
            "app=web,tier!=frontend",
            "-o",
            "name"
        ])
        .trim(),
        "service/web"
    );

    // Delete: gone at once, and listing says so.
    let out = c.kubectl_ok(&["delete", "deploy", "web"]);
    assert!(
        out.contains(r#"deployment.apps "web" deleted"#),
        "delete output:\n{out}"
    );
    let err = c.kubectl_err(&["get", "deploy", "web"]);
    assert_line(
        &err,
        r#"Error from server (NotFound): deployments.apps "web" not found"#,
    );
    let out = c.kubectl(&["get", "deploy"]);
    assert_line(
        &out.stderr_text(),
        "No resources found in default namespace.",
    );
}

#[test]
fn pod_without_a_node_is_pending_in_wide_output() {
    let Some(c) = Cluster::with_kubectl("kubectl::pod_without_a_node_is_pending") else {
        return;
    };
    let out = c.kubectl_ok(&["apply", "-f", path_str(&manifest("pod.yaml"))]);
    assert_line(&out, "pod/solo created");

    let out = c.kubectl_ok(&["get", "pods"]);
    assert_eq!(
        header(&out),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    let out = c.kubectl_ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ],
        "{out}"
    );
    let cells = row(&out, &["solo"]).unwrap_or_else(|| panic!("no solo row:\n{out}"));
    assert_eq!(cells[1..4], ["0/1", "Pending", "0"], "{out}");
    // Not scheduled: no IP and no node yet.
    assert_eq!(cells[5..7], ["<none>", "<none>"], "{out}");
    assert_eq!(c.jsonpath(&["pod", "solo"], "{.status.phase}"), "Pending");

    // A pod that never ran is deleted at once, so kubectl's wait returns immediately.
    let started = Instant::now();
    let out = c.kubectl_ok(&["delete", "pod", "solo", "--timeout=30s"]);
    assert!(out.contains(r#"pod "solo" deleted"#), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "delete took {:?}",
        started.elapsed()
    );
    c.kubectl_err(&["get", "pod", "solo"]);
}

#[test]
fn create_generators_and_namespace_deletion() {
    let Some(c) = Cluster::with_kubectl("kubectl::create_generators_and_namespace_deletion") else {
        return;
    };
    // These kubectl commands send protobuf bodies.
    assert_line(
        &c.kubectl_ok(&["create", "namespace", "x"]),
        "namespace/x created",
    );
    assert_eq!(c.jsonpath(&["ns", "x"], "{.status.phase}"), "Active");
    let out = c.kubectl_ok(&["create", "deployment", "web2", "--image=nginx", "-n", "x"]);
    assert_line(&out, "deployment.apps/web2 created");
    assert_eq!(
        c.jsonpath(
            &["deploy", "web2", "-n", "x"],
            "{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.selector.matchLabels.app}"
        ),
        "1 nginx web2"
    );
    let out = c.kubectl_ok(&["create", "configmap", "c", "--from-literal=a=b"]);
    assert_line(&out, "configmap/c created");
    assert_eq!(c.jsonpath(&["cm", "c"], "{.data.a}"), "b");

    // `get all` lists the kinds in the "all" category, here across namespaces.
    let out = c.kubectl_ok(&["get", "all", "-A"]);
    assert!(out.lines().any(|l| l.starts_with("NAMESPACE ")), "{out}");
    assert!(row(&out, &["x", "deployment.apps/web2"]).is_some(), "{out}");

    // Deleting a namespace removes what it holds, then the namespace.
    let out = c.kubectl_ok(&["delete", "namespace", "x", "--timeout=60s"]);
    assert!(out.contains(r#"namespace "x" deleted"#), "{out}");
    eventually(Duration::from_secs(10), || {
        let out = c.kubectl(&["get", "ns", "x"]);
        let err = out.stderr_text();
        if out.status_code() == 1
            && err.contains(r#"Error from server (NotFound): namespaces "x" not found"#)
        {
            Ok(())
        } else {
            Err(out.describe())
        }
    });
    let out = c.kubectl_ok(&["get", "deploy", "-A", "-o", "name"]);
    assert!(!out.contains("web2"), "web2 outlived its namespace:\n{out}");
    // The configmap in `default` is untouched.
    assert_eq!(c.jsonpath(&["cm", "c"], "{.data.a}"), "b");
}

/// Reads a child's stdout lines on a thread.
fn spawn_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to `timeout` for the `--output-watch-events` line of `event` on `name`, collecting
/// every line read into `seen`.
fn wait_for_event(
    lines: &mpsc::Receiver<String>,
    event: &str,
    name: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.split_whitespace().take(2).eq([event, name]);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// Runs `kubectl get ARGS -w --output-watch-events`, waits for its ADDED line, applies `patch` to
/// the ConfigMap `watched`, and returns the lines printed up to the MODIFIED one.
fn watch_through_a_patch(c: &Cluster, args: &[&str], patch: &str) -> Vec<String> {
    let mut argv = vec!["get"];
    argv.extend_from_slice(args);
    argv.extend(["-w", "--output-watch-events"]);
    let mut child = c
        .kubectl_command(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl get -w");
    let lines = spawn_lines(&mut child);
    let mut seen = Vec::new();
    let added = wait_for_event(
        &lines,
        "ADDED",
        "watched",
        Duration::from_secs(20),
        &mut seen,
    );
    let patched =
        added.then(|| c.kubectl(&["patch", "configmap", "watched", "--type=merge", "-p", patch]));
    let modified = added
        && wait_for_event(
            &lines,
            "MODIFIED",
            "watched",
            Duration::from_secs(20),
            &mut seen,
        );
    let _ = child.kill();
    let status = child.wait();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    if let Some(patched) = &patched {
        assert!(
            patched.status.success(),
            "patch failed: {}",
            patched.describe()
        );
    }
    assert!(
        added && modified,
        "kubectl {argv:?} should print ADDED, then MODIFIED after the patch; printed:\n{}\n--- stderr ({status:?})\n{stderr}",
        seen.join("\n")
    );
    assert_eq!(
        header(&seen[0]),
        ["EVENT", "NAME", "DATA", "AGE"],
        "watch output:\n{}",
        seen.join("\n")
    );
    seen
}

#[test]
fn get_watch_prints_a_modification() {
    let Some(c) = Cluster::with_kubectl("kubectl::get_watch_prints_a_modification") else {
        return;
    };
    c.kubectl_ok(&["create", "configmap", "watched", "--from-literal=k=v1"]);

    // A list watch resumes from the Table's resourceVersion.
    let seen = watch_through_a_patch(&c, &["configmaps"], r#"{"data":{"k2":"x"}}"#);
    let cells: Vec<&str> = seen.last().expect("a line").split_whitespace().collect();
    assert_eq!(cells[..3], ["MODIFIED", "watched", "2"], "{seen:?}");

    // A named watch starts at resourceVersion 0: kubectl drops the server's first (synthetic
    // ADDED) event, so without that event it would swallow the MODIFIED one.
    let seen = watch_through_a_patch(&c, &["configmap", "watched"], r#"{"data":{"k3":"y"}}"#);
    let cells: Vec<&str> = seen.last().expect("a line").split_whitespace().collect();
    assert_eq!(cells[..3], ["MODIFIED", "watched", "3"], "{seen:?}");
}

#[test]
fn patch_strategic_merge_and_json() {
    let Some(c) = Cluster::with_kubectl("kubectl::patch_strategic_merge_and_json") else {
        return;
    };
    c.kubectl_ok(&["apply", "-f", path_str(&manifest("web.yaml"))]);
    let containers = "{.spec.template.spec.containers[*].name}";
    let patch = |kind: &str, body: &str| {
        let out = c.kubectl_ok(&[
            "patch",
            "deployment",
            "web",
            &format!("--type={kind}"),
            "-p",
            body,
        ]);
        assert_line(&out, "deployment.apps/web patched");
    };

    // Strategic merge: containers merge by name, so ports survive an image change...
    patch(
        "strategic",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.29"}]}}}}"#,
    );
    assert_eq!(
        c.jsonpath(
            &["deploy", "web"],
            "{.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "nginx:1.29 80"
    );
    // ...a new name is appended...
    patch(
        "strategic",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
    );
    assert_eq!(c.jsonpath(&["deploy", "web"], containers), "nginx sidecar");
    // ...and `$patch: delete` removes one by its merge key.
    patch(
        "strategic",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    );
    assert_eq!(c.jsonpath(&["deploy", "web"], containers), "nginx");

    // JSON merge patch (RFC 7396): maps merge, null deletes.
    patch(
        "merge",
        r#"{"metadata":{"labels":{"patched":"merge","app":null}}}"#,
    );
    assert_eq!(
        c.jsonpath(&["deploy", "web"], "{.metadata.labels}"),
        r#"{"patched":"merge"}"#
    );

    // JSON patch (RFC 6902).
    patch(
        "json",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    );
    assert_eq!(c.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "3");
    let err = c.kubectl_err(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":7}]"#,
    ]);
    assert!(!err.trim().is_empty(), "a failed test op is reported");
    assert_eq!(
        c.jsonpath(&["deploy", "web"], "{.spec.replicas}"),
        "3",
        "nothing half-applied"
    );
}

#[test]
fn server_side_apply_is_refused_clearly() {
    let Some(c) = Cluster::with_kubectl("kubectl::server_side_apply_is_refused_clearly") else {
        return;
    };
    let out = c.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        path_str(&manifest("web.yaml")),
    ]);
    assert_eq!(out.status_code(), 1, "{}", out.describe());
    let err = out.stderr_text().to_lowercase();
    assert!(
        err.contains("server-side apply") && err.contains("support"),
        "the error should say server-side apply is not supported: {}",
        out.describe()
    );
    // Nothing was created on the way.
    c.kubectl_err(&["get", "deploy", "web"]);
}
