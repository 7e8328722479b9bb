//! The `wasmkube` binary's own kubectl-style verbs (apply, get, describe, scale, delete) against a
//! running server. These need no kubectl, so they always run.

use crate::kubectl::row;
use crate::support::{Cluster, OutputExt, manifest};

/// Runs `wasmkube ARGS`, which must succeed; returns its stdout.
#[track_caller]
fn ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.wasmkube(args);
    assert!(
        out.status.success(),
        "wasmkube {args:?} failed: {}\n--- server stderr (tail)\n{}",
        out.describe(),
        c.server_log_tail()
    );
    out.stdout_text()
}

/// `wasmkube get KIND NAME -o json`, parsed.
fn get_json(c: &Cluster, kind: &str, name: &str) -> serde_json::Value {
    let out = ok(c, &["get", kind, name, "-o", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`get -o json` is not JSON ({e}):\n{out}"))
}

#[test]
fn wasmkube_apply_get_scale_describe_delete() {
    let c = Cluster::start();

    // Paths relative to the repository root, as a user would type them there.
    let out = ok(&c, &["apply", "-f", "tests/manifests/web.yaml"]);
    for name in ["namespace/shop", "/web", "configmap/web-config"] {
        assert!(
            out.lines()
                .any(|l| l.contains(name) && l.trim_end().ends_with(" created")),
            "no `{name} created` line in:\n{out}"
        );
    }
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_end().ends_with(" created"))
            .count(),
        4,
        "{out}"
    );

    // The server's Table, printed like kubectl does.
    let out = ok(&c, &["get", "deploy"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header.first(), Some(&"NAME"), "{out}");
    assert!(header.contains(&"READY"), "{out}");
    let cells = row(&out, &["web"]).unwrap_or_else(|| panic!("no web row:\n{out}"));
    assert!(cells[1].ends_with("/2"), "READY of 2 replicas: {cells:?}");

    let out = ok(&c, &["get", "deploy", "-A"]);
    assert!(out.starts_with("NAMESPACE"), "{out}");
    assert!(row(&out, &["default", "web"]).is_some(), "{out}");
    let out = ok(&c, &["get", "deploy", "-l", "app=web", "-o", "name"]);
    assert!(out.lines().any(|l| l.ends_with("/web")), "{out}");
    let out = ok(&c, &["get", "deploy", "-l", "app=nope", "-o", "name"]);
    assert!(!out.contains("web"), "a selector matching nothing: {out}");

    let out = ok(&c, &["get", "deploy", "web", "-o", "yaml"]);
    for line in ["kind: Deployment", "name: web", "replicas: 2"] {
        assert!(
            out.lines().any(|l| l.trim() == line),
            "no {line:?} in:\n{out}"
        );
    }
    let deploy = get_json(&c, "deployment", "web");
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );

    // Re-apply is idempotent: nothing created twice, same object.
    let uid = deploy["metadata"]["uid"].clone();
    let out = ok(&c, &["apply", "-f", "tests/manifests/web.yaml"]);
    assert!(!out.contains(" created"), "re-apply created again:\n{out}");
    assert_eq!(get_json(&c, "deployment", "web")["metadata"]["uid"], uid);

    let out = ok(&c, &["scale", "deployment/web", "--replicas", "3"]);
    assert!(out.contains("web") && out.contains("scaled"), "{out}");
    assert_eq!(get_json(&c, "deployment", "web")["spec"]["replicas"], 3);

    let out = ok(&c, &["describe", "deployment", "web"]);
    assert!(row(&out, &["Name:", "web"]).is_some(), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("Replicas:")),
        "{out}"
    );
    assert!(out.contains("nginx:1.27"), "{out}");

    let out = ok(&c, &["delete", "deployment", "web"]);
    assert!(out.contains("web") && out.contains("deleted"), "{out}");
    let gone = c.wasmkube(&["get", "deployment", "web"]);
    assert!(!gone.status.success(), "{}", gone.describe());
    assert!(
        gone.stderr_text().contains("not found"),
        "{}",
        gone.describe()
    );
}

#[test]
fn wasmkube_apply_reads_stdin_and_directories() {
    let c = Cluster::start();

    let cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-stdin\ndata:\n  a: b\n";
    let out = c.wasmkube_stdin(&["apply", "-f", "-"], Some(cm));
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stdout_text().contains("from-stdin created"),
        "{}",
        out.describe()
    );
    assert_eq!(get_json(&c, "configmap", "from-stdin")["data"]["a"], "b");

    let dir = c.data_dir().join("manifests");
    std::fs::create_dir(&dir).expect("create manifest dir");
    std::fs::copy(manifest("pod.yaml"), dir.join("pod.yaml")).expect("copy pod.yaml");
    std::fs::write(
        dir.join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-dir\ndata:\n  k: v\n",
    )
    .expect("write config.yaml");
    let out = ok(&c, &["apply", "-f", dir.to_str().expect("UTF-8 path")]);
    assert!(out.contains("solo created"), "{out}");
    assert!(out.contains("from-dir created"), "{out}");

    let out = ok(&c, &["get", "pods", "-o", "wide"]);
    let cells = row(&out, &["solo"]).unwrap_or_else(|| panic!("no solo row:\n{out}"));
    assert_eq!(cells[2], "Pending", "{out}");
    let out = ok(&c, &["get", "configmaps", "-o", "name"]);
    for name in ["/from-stdin", "/from-dir"] {
        assert!(
            out.lines().any(|l| l.ends_with(name)),
            "no {name} in:\n{out}"
        );
    }
}
