//! `pods/exec`, `pods/attach` and `pods/portforward`: checked here as kube-apiserver checks
//! them, then relayed to the pod's node agent, which speaks the WebSocket channel protocols
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`) and, for port-forward, SPDY/3.1 (tunnelled in
//! WebSocket or by a plain upgrade) itself.
//!
//! The API server never looks inside the stream. It sends the client's handshake on to
//! `GET /exec/{namespace}/{pod}/{container}?{query}` (or `/attach/...`, or
//! `/portForward/{namespace}/{pod}?{query}`) at the node's daemon endpoint; if the node
//! switches protocols, so does the client's connection, and the two upgraded sockets are
//! copied into each other until either side closes. Anything else the node answers (a
//! `Status` saying the container is not running, say) goes back unchanged.
//!
//! kubectl tries WebSocket first and retries with SPDY/3.1 after *any* failed WebSocket
//! handshake. wasmkube's exec does not speak SPDY, so that retry always fails, and kubectl reports the
//! retry's error, not the first one. To keep the real reason visible, the node's refusal of
//! the WebSocket attempt is remembered for a moment ([`RecentRefusals`]) and given again as
//! the answer to the SPDY retry for the same container.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::ApiState;
use super::error::ApiError;
use super::proxy::{choose_container, connect, get_pod, node_endpoint, unreachable};
use super::request::{Query, Target};

/// How long a node's refusal is kept for kubectl's SPDY retry (which follows at once).
const REFUSAL_TTL: Duration = Duration::from_secs(30);
/// The most of a refusal's body that is relayed or kept.
const MAX_REFUSAL: usize = 64 * 1024;

/// Which streaming subresource a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// `pods/exec`: a new command in a running container.
    Exec,
    /// `pods/attach`: the container's own stdin and output.
    Attach,
}

impl Session {
    /// The subresource, which is also the node agent's path prefix.
    fn name(self) -> &'static str {
        match self {
            Session::Exec => "exec",
            Session::Attach => "attach",
        }
    }
}

/// How the client asked to switch protocols.
#[derive(Debug, PartialEq, Eq)]
enum Upgrade {
    WebSocket,
    Spdy,
    None,
}

/// Reads the `Connection` and `Upgrade` headers.
fn upgrade_of(headers: &HeaderMap) -> Upgrade {
    let tokens = |name: header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    if !tokens(header::CONNECTION).iter().any(|t| t == "upgrade") {
        return Upgrade::None;
    }
    let upgrade = tokens(header::UPGRADE);
    if upgrade.iter().any(|t| t == "websocket") {
        Upgrade::WebSocket
    } else if upgrade.iter().any(|t| t.starts_with("spdy/")) {
        Upgrade::Spdy
    } else {
        Upgrade::None
    }
}

/// The refusals of WebSocket handshakes the nodes gave lately, by container, for the SPDY
/// retry that follows each (see the module docs). Entries are taken when used and expire
/// after [`REFUSAL_TTL`]; the lock is never held across an await.
#[derive(Default)]
pub struct RecentRefusals(Mutex<HashMap<String, Refusal>>);

/// A node's answer that was not 101.
#[derive(Clone)]
struct Refusal {
    at: Instant,
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: bytes::Bytes,
}

impl Refusal {
    fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        if let Some(ct) = &self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, ct.clone());
        }
        response
    }
}

impl RecentRefusals {
    fn remember(&self, key: String, refusal: Refusal) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, r| r.at.elapsed() < REFUSAL_TTL);
        map.insert(key, refusal);
    }

    fn take(&self, key: &str) -> Option<Refusal> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key).filter(|r| r.at.elapsed() < REFUSAL_TTL)
    }
}

/// `GET` or `POST .../pods/{name}/exec` or `.../attach`.
pub async fn serve(
    state: &ApiState,
    t: &Target<'_>,
    session: Session,
    parts: &mut Parts,
    query: &Query,
) -> Result<Response, ApiError> {
    let (ns, name, pod) = get_pod(state, t).await?;
    let container = choose_container(&pod, &name, query.get("container"))?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("pod {name} does not have a host assigned")))?;
    if let Some(phase @ ("Succeeded" | "Failed")) =
        pod.pointer("/status/phase").and_then(Value::as_str)
    {
        let what = match session {
            Session::Exec => "exec into",
            Session::Attach => "attach to",
        };
        return Err(ApiError::BadRequest(format!(
            "cannot {what} a container in a completed pod; current phase is {phase}"
        )));
    }
    if session == Session::Exec && query.all("command").is_empty() {
        return Err(ApiError::BadRequest(
            "you must specify at least 1 command".into(),
        ));
    }
    let upgrade = upgrade_of(&parts.headers);
    if upgrade == Upgrade::None {
        return Err(ApiError::BadRequest("Upgrade request required".into()));
    }
    let addr = node_endpoint(state, node).await?;
    let key = format!("{}/{ns}/{name}/{container}", session.name());
    // Refused only now: a SPDY retry that fails one of the checks above gets the same message
    // as the WebSocket attempt did, which is the one kubectl shows.
    if upgrade == Upgrade::Spdy {
        if let Some(refusal) = state.stream_refusals.take(&key) {
            tracing::debug!(%key, "answering the SPDY retry with the node's refusal");
            return Ok(refusal.response());
        }
        return Err(ApiError::BadRequest(format!(
            "wasmkube serves pods/{} over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io); \
             SPDY/3.1 is not supported",
            session.name()
        )));
    }
    let client = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        ApiError::BadRequest(
            "this connection cannot be upgraded (exec and attach need HTTP/1.1 over a socket)"
                .into(),
        )
    })?;
    let path = match parts.uri.query() {
        Some(q) => format!("/{}/{ns}/{name}/{container}?{q}", session.name()),
        None => format!("/{}/{ns}/{name}/{container}", session.name()),
    };
    let node = Node { addr, name: node };
    let refusal = match relay(
        &node,
        &path,
        Upgrade::WebSocket,
        &parts.headers,
        client,
        state.shutdown.child_token(),
    )
    .await
    {
        Ok(Answer::Switched(response)) => return Ok(response),
        Ok(Answer::Refused(refusal)) => refusal,
        Err(e) => Refusal {
            at: Instant::now(),
            status: e.code(),
            content_type: Some(HeaderValue::from_static("application/json")),
            body: serde_json::to_vec(&e.status()).unwrap_or_default().into(),
        },
    };
    tracing::debug!(%key, status = %refusal.status, "the node refused the stream");
    let response = refusal.response();
    state.stream_refusals.remember(key, refusal);
    Ok(response)
}

/// `GET` or `POST .../pods/{name}/portforward`: the pod must be running on a node; the
/// handshake (SPDY/3.1 in WebSocket, a SPDY/3.1 upgrade, or WebSocket channels with
/// `?ports=`) goes to the node's `/portForward/{namespace}/{pod}` as it came.
///
/// There is no `services/portforward`: kubectl resolves `svc/NAME` to one of its pods and
/// the service port to that pod's port itself.
pub async fn portforward(
    state: &ApiState,
    t: &Target<'_>,
    parts: &mut Parts,
    query: &Query,
) -> Result<Response, ApiError> {
    let (ns, name, pod) = get_pod(state, t).await?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("pod {name} does not have a host assigned")))?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    if phase != "Running" {
        return Err(ApiError::BadRequest(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    for ports in query.all("ports") {
        for port in ports.split(',') {
            if !matches!(port.trim().parse::<u16>(), Ok(1..)) {
                return Err(ApiError::BadRequest(format!(
                    "invalid port {port:?} in ports={ports:?}: ports are numbers from 1 to 65535"
                )));
            }
        }
    }
    let upgrade = upgrade_of(&parts.headers);
    if upgrade == Upgrade::None {
        return Err(ApiError::BadRequest("Upgrade request required".into()));
    }
    let addr = node_endpoint(state, node).await?;
    let client = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        ApiError::BadRequest(
            "this connection cannot be upgraded (port-forward needs HTTP/1.1 over a socket)".into(),
        )
    })?;
    let path = match parts.uri.query() {
        Some(q) => format!("/portForward/{ns}/{name}?{q}"),
        None => format!("/portForward/{ns}/{name}"),
    };
    let node = Node { addr, name: node };
    match relay(
        &node,
        &path,
        upgrade,
        &parts.headers,
        client,
        state.shutdown.child_token(),
    )
    .await?
    {
        Answer::Switched(response) => Ok(response),
        Answer::Refused(refusal) => {
            tracing::debug!(pod = %name, status = %refusal.status, "the node refused the port-forward");
            Ok(refusal.response())
        }
    }
}

/// The node agent a stream goes to.
struct Node<'a> {
    addr: SocketAddr,
    name: &'a str,
}

/// What the node made of a relayed handshake.
enum Answer {
    /// 101: the response for the client; the relay runs in a task of its own.
    Switched(Response),
    /// Anything else, to be passed back unchanged.
    Refused(Refusal),
}

/// Whether a handshake header goes on to the node (and a node's answer back): the upgrade
/// itself, WebSocket's keys and subprotocols, and SPDY's stream protocol versions.
fn relayed(name: &header::HeaderName) -> bool {
    name == header::UPGRADE
        || name.as_str().starts_with("sec-websocket-")
        || name.as_str().starts_with("x-stream-protocol-version")
}

/// Sends the client's handshake on to the node (a WebSocket one as `GET`, a SPDY one as
/// `POST`, as kubectl sends them); on 101 answers 101 and copies between the two upgraded
/// sockets until either closes or the server shuts down.
async fn relay(
    node: &Node<'_>,
    path: &str,
    upgrade: Upgrade,
    headers: &HeaderMap,
    client: OnUpgrade,
    shutdown: CancellationToken,
) -> Result<Answer, ApiError> {
    let mut sender = connect(node.addr, node.name).await?;
    let method = match upgrade {
        Upgrade::Spdy => axum::http::Method::POST,
        Upgrade::WebSocket | Upgrade::None => axum::http::Method::GET,
    };
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, node.addr.to_string())
        .header(header::CONNECTION, "Upgrade");
    for (name, value) in headers {
        if relayed(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::debug!(node = %node.name, %path, "relaying a stream to the node");
    let mut answer = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(node.name, node.addr, &e))?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = answer.status();
        let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let body = axum::body::to_bytes(Body::new(answer.into_body()), MAX_REFUSAL)
            .await
            .unwrap_or_default();
        return Ok(Answer::Refused(Refusal {
            at: Instant::now(),
            status,
            content_type,
            body,
        }));
    }
    let node_side = hyper::upgrade::on(&mut answer);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in answer.headers() {
        if relayed(name) || name == header::CONNECTION {
            response.headers_mut().append(name, value.clone());
        }
    }
    let (name, path) = (node.name.to_string(), path.to_string());
    tokio::spawn(async move {
        let copy = async {
            let (client, node_side) = tokio::try_join!(client, node_side)?;
            let (mut client, mut node_side) = (TokioIo::new(client), TokioIo::new(node_side));
            tokio::io::copy_bidirectional(&mut client, &mut node_side)
                .await
                .map_err(UpgradeFailed::Copy)
        };
        tokio::select! {
            result = copy => match result {
                Ok((up, down)) => tracing::debug!(node = %name, %path, up, down, "stream ended"),
                Err(e) => tracing::debug!(node = %name, %path, error = %e, "stream failed"),
            },
            () = shutdown.cancelled() => tracing::debug!(node = %name, %path, "stream cut at shutdown"),
        }
    });
    Ok(Answer::Switched(response))
}

/// Why a relayed stream stopped early.
#[derive(Debug, thiserror::Error)]
enum UpgradeFailed {
    /// One side's upgrade never completed.
    #[error("upgrade failed")]
    Upgrade(#[from] hyper::Error),
    /// Copying between the sockets failed.
    #[error("copy failed")]
    Copy(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn recognises_websocket_spdy_and_plain_requests() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_of(&ws), Upgrade::WebSocket);
        let spdy = headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]);
        assert_eq!(upgrade_of(&spdy), Upgrade::Spdy);
        assert_eq!(upgrade_of(&headers(&[])), Upgrade::None);
        // An Upgrade header without `Connection: upgrade` is no upgrade request (RFC 9110).
        let half = headers(&[("upgrade", "websocket")]);
        assert_eq!(upgrade_of(&half), Upgrade::None);
    }

    #[test]
    fn a_refusal_is_given_once() {
        let recent = RecentRefusals::default();
        recent.remember(
            "exec/ns/p/c".into(),
            Refusal {
                at: Instant::now(),
                status: StatusCode::NOT_FOUND,
                content_type: None,
                body: bytes::Bytes::from_static(b"{}"),
            },
        );
        assert!(recent.take("exec/ns/p/other").is_none());
        assert_eq!(
            recent.take("exec/ns/p/c").map(|r| r.status),
            Some(StatusCode::NOT_FOUND)
        );
        assert!(recent.take("exec/ns/p/c").is_none());
    }
}
