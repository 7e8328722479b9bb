//! The `metrics.k8s.io/v1beta1` REST paths: `pods` (namespaced and across namespaces) and
//! `nodes`, `get` and `list` only (with `labelSelector` and `fieldSelector`), as
//! metrics-server serves them, and their discovery entries. Objects carry the labels of the
//! pod or node they describe; CPU is in nanocores (`"1500000n"`), memory in `Ki`.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::super::ApiState;
use super::super::error::{ApiError, Subject};
use super::super::request::Query;
use super::super::response::json_response;
use super::super::selectors::{FieldSelector, LabelSelector};
use super::{Usage, Window};

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// Its one version.
pub const VERSION: &str = "v1beta1";

const VERBS: &[&str] = &["get", "list"];

/// The group's entry in `/apis` (legacy) and `/apis/metrics.k8s.io`.
pub fn discovery_entry() -> Value {
    let v = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [v.clone()], "preferredVersion": v})
}

/// `GET /apis/metrics.k8s.io/v1beta1` (legacy `APIResourceList`).
pub fn api_resource_list() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
    "resources": [
        {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": VERBS},
        {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": VERBS},
    ]})
}

/// The group's item in the aggregated discovery document of `/apis`.
pub fn aggregated_entry() -> Value {
    let resource = |plural: &str, kind: &str, scope: &str| {
        json!({"resource": plural, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "scope": scope, "singularResource": "", "verbs": VERBS, "subresources": []})
    };
    json!({"metadata": {"name": GROUP, "creationTimestamp": null},
    "versions": [{"version": VERSION, "freshness": "Current", "resources": [
        resource("nodes", "NodeMetrics", "Cluster"),
        resource("pods", "PodMetrics", "Namespaced"),
    ]}]})
}

fn nano_cores(n: u64) -> String {
    format!("{n}n")
}

fn bytes(n: u64) -> String {
    if n.is_multiple_of(1024) {
        format!("{}Ki", n / 1024)
    } else {
        n.to_string()
    }
}

/// A duration as Go's `time.Duration` prints it in seconds (`15.012s`).
fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!(
            "{}s",
            format!("{:.3}", d.as_secs_f64()).trim_end_matches('0')
        )
    }
}

fn meta(obj: &Value, now: &str) -> Value {
    let m = &obj["metadata"];
    let mut out = json!({"name": m["name"], "creationTimestamp": now});
    if let Some(ns) = m.get("namespace") {
        out["namespace"] = ns.clone();
    }
    if let Some(labels) = m.get("labels") {
        out["labels"] = labels.clone();
    }
    out
}

fn pod_metrics(pod: &Value, w: &Window<Vec<(String, Usage)>>, now: &str) -> Value {
    let containers: Vec<Value> = w
        .value
        .iter()
        .map(|(name, u)| {
            json!({"name": name, "usage": {"cpu": nano_cores(u.nano_cores), "memory": bytes(u.memory)}})
        })
        .collect();
    json!({"kind": "PodMetrics", "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": meta(pod, now), "timestamp": w.at.to_string(),
        "window": go_duration(w.window), "containers": containers})
}

fn node_metrics(node: &Value, w: &Window<Usage>, now: &str) -> Value {
    json!({"kind": "NodeMetrics", "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": meta(node, now), "timestamp": w.at.to_string(),
        "window": go_duration(w.window),
        "usage": {"cpu": nano_cores(w.value.nano_cores), "memory": bytes(w.value.memory)}})
}

fn subject(plural: &str, name: &str) -> Subject {
    Subject {
        name: name.to_string(),
        group: GROUP.into(),
        plural: plural.into(),
        kind: String::new(),
    }
}

/// Serves `rest`, the path after `/apis/metrics.k8s.io/v1beta1/`.
pub async fn serve(
    state: &ApiState,
    method: &Method,
    rest: &[&str],
    query: &Query,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    if rest.is_empty() {
        return Ok(json_response(StatusCode::OK, &api_resource_list(), &[]));
    }
    if query.flag("watch") {
        return Err(ApiError::MethodNotAllowed);
    }
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::BadRequest)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::BadRequest)?;
    let now = jiff::Timestamp::now().to_string();
    let (kind, namespace, name) = match rest {
        ["pods"] => ("pods", None, None),
        ["pods", name] => ("pods", None, Some(*name)),
        ["namespaces", ns, "pods"] => ("pods", Some(*ns), None),
        ["namespaces", ns, "pods", name] => ("pods", Some(*ns), Some(*name)),
        ["nodes"] => ("nodes", None, None),
        ["nodes", name] => ("nodes", None, Some(*name)),
        _ => return Err(ApiError::NoSuchResource),
    };
    let core = if kind == "pods" { "Pod" } else { "Node" };
    let rt = state
        .registry
        .by_kind("", core)
        .ok_or(ApiError::NoSuchResource)?;
    let item = |obj: &Value| -> Option<Value> {
        let n = obj.pointer("/metadata/name").and_then(Value::as_str)?;
        if kind == "pods" {
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str)?;
            let w = state.resource_metrics.pod(ns, n)?;
            Some(pod_metrics(obj, &w, &now))
        } else {
            let w = state.resource_metrics.node(n)?;
            Some(node_metrics(obj, &w, &now))
        }
    };
    if let Some(name) = name {
        // `pods/NAME` across namespaces is not a path metrics-server serves either.
        if kind == "pods" && namespace.is_none() {
            return Err(ApiError::NoSuchResource);
        }
        let found = state.store.get(&rt.key(namespace, name)).await?;
        let metrics = found.and_then(|o| item(&o.value));
        return match metrics {
            Some(m) => Ok(json_response(StatusCode::OK, &m, &[])),
            None => Err(ApiError::NotFound(subject(kind, name))),
        };
    }
    let (objects, _) = state.store.list(&rt.key_prefix(namespace)).await?;
    let items: Vec<Value> = objects
        .iter()
        .map(|o| &o.value)
        .filter(|o| labels.matches(o.pointer("/metadata/labels")))
        .filter(|o| {
            fields.matches(|f| match f {
                "metadata.name" => o["metadata"]["name"].as_str().unwrap_or_default().into(),
                "metadata.namespace" => o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                _ => String::new(),
            })
        })
        .filter_map(|o| item(o))
        .collect();
    let list_kind = if kind == "pods" {
        "PodMetricsList"
    } else {
        "NodeMetricsList"
    };
    let list = json!({"kind": list_kind, "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {}, "items": items});
    Ok(json_response(StatusCode::OK, &list, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_windows_print_like_metrics_server() {
        assert_eq!(nano_cores(1_500_000), "1500000n");
        assert_eq!(bytes(2 << 20), "2048Ki");
        assert_eq!(bytes(1000), "1000");
        assert_eq!(
            go_duration(std::time::Duration::from_millis(15_012)),
            "15.012s"
        );
        assert_eq!(
            go_duration(std::time::Duration::from_millis(15_500)),
            "15.5s"
        );
        assert_eq!(go_duration(std::time::Duration::from_secs(15)), "15s");
        assert_eq!(
            aggregated_entry()["versions"][0]["resources"][1]["resource"],
            "pods"
        );
    }
}
