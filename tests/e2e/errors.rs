//! Bad input: the messages kubectl prints for the server's `Status` errors, and the status codes a
//! raw HTTP client gets for what no well-behaved client sends.

use crate::kubectl::assert_line;
use crate::support::{Cluster, OutputExt, manifest};

#[test]
fn kubectl_prints_the_usual_error_messages() {
    let Some(c) = Cluster::with_kubectl("errors::kubectl_prints_the_usual_error_messages") else {
        return;
    };
    let path = |name: &str| manifest(name).to_str().expect("UTF-8 path").to_string();

    // NotFound, with the group in the resource name.
    let err = c.kubectl_err(&["get", "deploy", "nope"]);
    assert_line(
        &err,
        r#"Error from server (NotFound): deployments.apps "nope" not found"#,
    );
    let err = c.kubectl_err(&["get", "configmap", "nope"]);
    assert_line(
        &err,
        r#"Error from server (NotFound): configmaps "nope" not found"#,
    );

    // 422 Invalid with causes, and nothing stored.
    let err = c.kubectl_err(&["apply", "-f", &path("invalid-replicas.yaml")]);
    assert!(
        err.lines().any(|l| l.trim() == r#"The Deployment "bad" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#),
        "kubectl stderr:\n{err}"
    );
    c.kubectl_err(&["get", "deploy", "bad"]);

    // Malformed YAML is caught by kubectl before any request.
    let err = c.kubectl_err(&["apply", "-f", &path("malformed.yaml")]);
    assert!(
        err.contains("error parsing") && err.contains("yaml"),
        "kubectl stderr:\n{err}"
    );

    // A kind no API group serves: kubectl's discovery finds no mapping.
    let err = c.kubectl_err(&["apply", "-f", &path("unknown-kind.yaml")]);
    assert!(
        err.contains(r#"no matches for kind "Frobnicator" in version "example.com/v1""#),
        "kubectl stderr:\n{err}"
    );

    // A replace carrying a stale resourceVersion is a 409 Conflict.
    c.kubectl_ok(&["create", "configmap", "stale", "--from-literal=v=1"]);
    let old = c.kubectl_ok(&["get", "configmap", "stale", "-o", "json"]);
    let old_path = c.data_dir().join("stale.json");
    std::fs::write(&old_path, &old).expect("write stale.json");
    c.kubectl_ok(&[
        "patch",
        "configmap",
        "stale",
        "--type=merge",
        "-p",
        r#"{"data":{"v":"2"}}"#,
    ]);
    let err = c.kubectl_err(&["replace", "-f", old_path.to_str().expect("UTF-8 path")]);
    assert!(
        err.contains(r#"Error from server (Conflict)"#)
            && err.contains(r#"Operation cannot be fulfilled on configmaps "stale": the object has been modified"#),
        "kubectl stderr:\n{err}"
    );
    assert_eq!(c.jsonpath(&["configmap", "stale"], "{.data.v}"), "2");

    // Creating what exists is AlreadyExists (create <generator> wraps the server's message).
    c.kubectl_ok(&["create", "configmap", "dup", "--from-literal=a=b"]);
    let err = c.kubectl_err(&["create", "configmap", "dup", "--from-literal=a=c"]);
    assert!(
        err.contains(r#"configmaps "dup" already exists"#),
        "kubectl stderr:\n{err}"
    );
    assert_eq!(c.jsonpath(&["configmap", "dup"], "{.data.a}"), "b");
    let pod = path("pod.yaml");
    c.kubectl_ok(&["create", "-f", &pod]);
    let err = c.kubectl_err(&["create", "-f", &pod]);
    assert!(
        err.contains(r#"Error from server (AlreadyExists)"#)
            && err.contains(r#"pods "solo" already exists"#),
        "kubectl stderr:\n{err}"
    );
}

/// A JSON ConfigMap whose body is about `size` bytes.
fn configmap_json(name: &str, size: usize) -> Vec<u8> {
    let filler = "x".repeat(size);
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"big":"{filler}"}}}}"#)
        .into_bytes()
}

/// Asserts a Kubernetes `Status` failure with `code`.
#[track_caller]
fn assert_status(resp: &crate::http::HttpResponse, code: u16) {
    assert_eq!(resp.status, code, "{resp:?}");
    let status = resp.json();
    assert_eq!(status["kind"], "Status", "{resp:?}");
    assert_eq!(status["apiVersion"], "v1", "{resp:?}");
    assert_eq!(status["status"], "Failure", "{resp:?}");
    assert_eq!(status["code"], code, "{resp:?}");
    assert!(
        status["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a Status needs a message: {resp:?}"
    );
    assert!(
        resp.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{resp:?}"
    );
}

#[test]
fn raw_http_bad_requests_get_status_errors() {
    let c = Cluster::start();
    let configmaps = "/api/v1/namespaces/default/configmaps";

    // The happy path, to show the client works: 201 with the stored object.
    let created = c.http(
        "POST",
        configmaps,
        Some("application/json"),
        &configmap_json("small", 10),
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json()["metadata"]["name"], "small");
    // A missing Content-Type means JSON, as the Python client relies on.
    let created = c.http(
        "POST",
        configmaps,
        None,
        &configmap_json("no-content-type", 10),
    );
    assert_eq!(created.status, 201, "{created:?}");

    // Over 3 MiB: 413, and nothing stored.
    let big = c.http(
        "POST",
        configmaps,
        Some("application/json"),
        &configmap_json("big", 4 << 20),
    );
    assert_status(&big, 413);
    assert_eq!(big.json()["reason"], "RequestEntityTooLarge", "{big:?}");
    let get = c.http("GET", &format!("{configmaps}/big"), None, b"");
    assert_status(&get, 404);

    // A media type the server does not read: 415.
    let plain = c.http("POST", configmaps, Some("text/plain"), b"name: plain");
    assert_status(&plain, 415);
    assert_eq!(plain.json()["reason"], "UnsupportedMediaType", "{plain:?}");

    // Malformed JSON: 400 BadRequest.
    let garbage = c.http(
        "POST",
        configmaps,
        Some("application/json"),
        b"{\"apiVersion\": \"v1\", kind",
    );
    assert_status(&garbage, 400);
    assert_eq!(garbage.json()["reason"], "BadRequest", "{garbage:?}");

    // Unknown resources and groups: 404 NotFound.
    for path in [
        "/api/v1/namespaces/default/frobnicators",
        "/apis/example.com/v1/frobnicators",
        "/apis/apps/v9/namespaces/default/deployments",
    ] {
        let resp = c.http("GET", path, None, b"");
        assert_status(&resp, 404);
        assert_eq!(resp.json()["reason"], "NotFound", "{path}: {resp:?}");
    }

    // A missing object: 404 with details naming it, the shape kubectl turns into its message.
    let missing = c.http(
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/nope",
        None,
        b"",
    );
    assert_status(&missing, 404);
    let status = missing.json();
    assert_eq!(
        status["message"], r#"deployments.apps "nope" not found"#,
        "{missing:?}"
    );
    assert_eq!(status["details"]["name"], "nope", "{missing:?}");
    assert_eq!(status["details"]["group"], "apps", "{missing:?}");
    assert_eq!(status["details"]["kind"], "deployments", "{missing:?}");

    // The server is still healthy after all that.
    let ready = c.http("GET", "/readyz", None, b"");
    assert_eq!(ready.status, 200, "{ready:?}");
}

#[test]
fn wasmkube_cli_reports_errors_with_a_non_zero_exit() {
    let c = Cluster::start();
    let out = c.wasmkube(&["get", "deployment", "nope"]);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr_text().contains("not found"),
        "{}",
        out.describe()
    );

    let invalid = manifest("invalid-replicas.yaml");
    let out = c.wasmkube(&["apply", "-f", invalid.to_str().expect("UTF-8 path")]);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr_text().contains("spec.replicas"),
        "the error should name the invalid field: {}",
        out.describe()
    );

    let malformed = manifest("malformed.yaml");
    let out = c.wasmkube(&["apply", "-f", malformed.to_str().expect("UTF-8 path")]);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(!out.stderr_text().trim().is_empty(), "{}", out.describe());
}
