//! Subresources the node agent serves, reached through the API server as kube-apiserver reaches
//! kubelets: `pods/log` is forwarded to the pod's node at its `daemonEndpoints` port. The
//! helpers here (finding the pod, its container and its node agent) also serve `pods/exec`
//! and `pods/attach` ([`super::stream`]).
//!
//! The node agent answers `GET /containerLogs/{namespace}/{pod}/{container}` (the kubelet's
//! path) with the same query parameters `kubectl logs` sends; the body streams through, so
//! `follow=true` keeps flowing until the container stops or the client goes away.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::ApiState;
use super::error::{ApiError, Subject};
use super::request::{Query, Target};

/// The annotation naming the container kubectl picks when a pod has several.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// The log query parameters passed through to the node.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "tailLines",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// `GET .../pods/{name}/log`.
pub async fn pod_log(
    state: &ApiState,
    t: &Target<'_>,
    query: &Query,
) -> Result<Response, ApiError> {
    let (ns, name, pod) = get_pod(state, t).await?;
    let container = choose_container(&pod, &name, query.get("container"))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(format!("container \"{container}\" in pod \"{name}\" is waiting to start: pod does not have a host assigned"))
        })?;
    let endpoint = node_endpoint(state, node_name).await?;
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    let params: Vec<String> = LOG_PARAMS
        .iter()
        .filter_map(|k| {
            query.get(k).map(|v| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
        })
        .collect();
    if !params.is_empty() {
        path = format!("{path}?{}", params.join("&"));
    }
    forward(endpoint, &path, node_name).await
}

/// The pod a pod subresource path names, with its namespace and name; 404 when missing.
pub(super) async fn get_pod(
    state: &ApiState,
    t: &Target<'_>,
) -> Result<(String, String, Arc<Value>), ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let pod = state
        .store
        .get(&t.rt.key(Some(&ns), &name))
        .await?
        .ok_or_else(|| ApiError::NotFound(Subject::of(t.rt, &name)))?;
    Ok((ns, name, pod.value))
}

/// The container a log, exec or attach request names: the `container` parameter (any
/// container, init container or ephemeral container), else the only container, else the one
/// the `kubectl.kubernetes.io/default-container` annotation names.
pub(super) fn choose_container(
    pod: &Value,
    name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    let known = |c: &str| {
        [&containers, &init, &ephemeral]
            .iter()
            .any(|l| l.iter().any(|n| n == c))
    };
    if let Some(c) = requested.filter(|c| !c.is_empty()) {
        return if known(c) {
            Ok(c.to_string())
        } else {
            Err(ApiError::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )))
        };
    }
    if let [only] = containers.as_slice() {
        return Ok(only.clone());
    }
    if let Some(default) = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DEFAULT_CONTAINER))
        .and_then(Value::as_str)
        .filter(|c| containers.iter().any(|n| n == c))
    {
        return Ok(default.to_string());
    }
    // kube-apiserver's wording, init and ephemeral containers named after the others.
    let mut message = format!(
        "a container name must be specified for pod {name}, choose one of: [{}]",
        containers.join(" ")
    );
    if !init.is_empty() {
        message.push_str(&format!(
            " or one of the init containers: [{}]",
            init.join(" ")
        ));
    }
    if !ephemeral.is_empty() {
        message.push_str(&format!(
            " or one of the ephemeral containers: [{}]",
            ephemeral.join(" ")
        ));
    }
    Err(ApiError::BadRequest(message))
}

/// The node agent's address: its InternalIP and `daemonEndpoints.kubeletEndpoint.Port`.
pub(super) async fn node_endpoint(state: &ApiState, node: &str) -> Result<SocketAddr, ApiError> {
    let rt = state
        .registry
        .by_kind("", "Node")
        .ok_or(ApiError::NoSuchResource)?;
    let found = state
        .store
        .get(&rt.key(None, node))
        .await?
        .ok_or_else(|| ApiError::NotFound(Subject::of(rt, node)))?;
    let status = found.value.get("status").cloned().unwrap_or(Value::Null);
    let ip = status
        .get("addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse().ok());
    let port = status
        .pointer("/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64);
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port as u16)),
        _ => Err(ApiError::Unavailable(format!(
            "node {node} has not reported an address and daemon endpoint yet"
        ))),
    }
}

/// The error for a node agent that cannot be reached.
pub(super) fn unreachable(node: &str, addr: SocketAddr, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!(
        "cannot reach the node agent of {node} at {addr}: {e}"
    ))
}

/// Opens an HTTP/1 connection to a node agent. The connection is driven by a task of its own,
/// which ends when the request is answered (or hands the socket over, on an upgrade).
pub(super) async fn connect(addr: SocketAddr, node: &str) -> Result<SendRequest<Body>, ApiError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(node, addr, &e))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(node, addr, &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "node connection ended");
        }
    });
    Ok(sender)
}

/// Sends `GET path` to the node agent and streams its answer back.
async fn forward(addr: SocketAddr, path: &str, node: &str) -> Result<Response, ApiError> {
    let mut sender = connect(addr, node).await?;
    let request = Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(node, addr, &e))?;
    let (parts, body) = answer.into_parts();
    if parts.status != StatusCode::OK {
        let bytes = axum::body::to_bytes(Body::new(body), 64 * 1024)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(match parts.status {
            StatusCode::NOT_FOUND => ApiError::BadRequest(text),
            _ => ApiError::BadRequest(format!("the node agent answered {}: {text}", parts.status)),
        });
    }
    let mut response = Response::new(Body::new(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_single_container_is_chosen_and_several_need_a_name() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(choose_container(&one, "p", None).unwrap(), "web");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        let e = choose_container(&two, "p", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(choose_container(&two, "p", Some("i")).unwrap(), "i");
        let e = choose_container(&two, "p", Some("zz")).unwrap_err();
        assert_eq!(e.to_string(), "container zz is not valid for pod p");
    }

    #[test]
    fn ephemeral_containers_can_be_named() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "ephemeralContainers": [{"name": "debugger"}]}});
        assert_eq!(
            choose_container(&pod, "p", Some("debugger")).unwrap(),
            "debugger"
        );
        let e = choose_container(&pod, "p", None).unwrap_err();
        assert!(
            e.to_string()
                .ends_with(" or one of the ephemeral containers: [debugger]"),
            "{e}"
        );
    }

    #[test]
    fn default_container_annotation_picks_among_several() {
        let pod = json!({"metadata": {"annotations": {DEFAULT_CONTAINER: "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(choose_container(&pod, "p", None).unwrap(), "b");
        // An annotation naming no container is ignored, as kubectl ignores it.
        let stale = json!({"metadata": {"annotations": {DEFAULT_CONTAINER: "gone"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert!(choose_container(&stale, "p", None).is_err());
    }
}
