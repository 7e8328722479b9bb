//! Subresources the node agent serves, reached through the API server as kube-apiserver reaches
//! kubelets: `pods/log` is forwarded to the pod's node at its `daemonEndpoints` port.
//!
//! The node agent answers `GET /containerLogs/{namespace}/{pod}/{container}` (the kubelet's
//! path) with the same query parameters `kubectl logs` sends; the body streams through, so
//! `follow=true` keeps flowing until the container stops or the client goes away.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::ApiState;
use super::error::{ApiError, Subject};
use super::request::{Query, Target};

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
    let name = t.name.clone().unwrap_or_default();
    let ns = t.namespace.clone().unwrap_or_default();
    let pod = state
        .store
        .get(&t.rt.key(Some(&ns), &name))
        .await?
        .ok_or_else(|| ApiError::NotFound(Subject::of(t.rt, &name)))?;
    let container = choose_container(&pod.value, &name, query.get("container"))?;
    let node_name = pod
        .value
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

/// The container a log request names: the `container` parameter, or the only container.
fn choose_container(pod: &Value, name: &str, requested: Option<&str>) -> Result<String, ApiError> {
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
    let mut all = names("initContainers");
    all.extend(containers.iter().cloned());
    all.extend(names("ephemeralContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The node agent's address: its InternalIP and `daemonEndpoints.kubeletEndpoint.Port`.
async fn node_endpoint(state: &ApiState, node: &str) -> Result<SocketAddr, ApiError> {
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

/// Sends `GET path` to the node agent and streams its answer back.
async fn forward(addr: SocketAddr, path: &str, node: &str) -> Result<Response, ApiError> {
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::Unavailable(format!(
            "cannot reach the node agent of {node} at {addr}: {e}"
        ))
    };
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "node connection ended");
        }
    });
    let request = Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
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
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(choose_container(&two, "p", Some("i")).unwrap(), "i");
        assert!(choose_container(&two, "p", Some("zz")).is_err());
    }
}
