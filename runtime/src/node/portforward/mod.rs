//! `kubectl port-forward` at the node: the kubelet's `/portForward/{namespace}/{pod}`
//! endpoint, which the API server's `pods/portforward` relays unchanged.
//!
//! Three wire forms reach it, told apart by the handshake:
//!
//! - **SPDY/3.1 tunnelled in WebSocket** (`Sec-WebSocket-Protocol:
//!   SPDY/3.1+portforward.k8s.io`, kubectl 1.31+'s default): every binary message is a piece
//!   of one SPDY byte stream (`tunnel.rs`), spoken as below.
//! - **SPDY/3.1 upgrade** (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version:
//!   portforward.k8s.io`, kubectl's fallback and older clients): SPDY frames on the raw socket
//!   (`spdy.rs`). Per forwarded connection the client opens an error stream and a data stream
//!   with the same `requestID` and the remote `port`; the node connects to that port of the
//!   pod and copies both ways, and a failure is written as text on the error stream.
//! - **WebSocket channels** (`v4.channel.k8s.io`, `portforward.k8s.io` or none, with
//!   `?ports=80,9090`): the Python client's and kube-rs's form (`channel.rs`). Port `i` gets
//!   data channel `2i` and error channel `2i+1`, each opened by its port number.
//!
//! The frames are `frame.rs`, their compressed header blocks `headers.rs`. A pod's ports are
//! reached from the host at its IP, below 1024 at [`crate::wasm::MAPPED_PORT_BASE`]` + port`
//! when the agent maps low ports ([`PodNetwork::host_port`]), as a host-side client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts as _, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::exec::Exec;
use super::stream::{bad_request, status_error};
use crate::wasm::PodNetwork;

mod channel;
mod flow;
mod forward;
pub mod frame;
pub mod headers;
pub mod spdy;
mod tunnel;

#[cfg(test)]
mod tests;

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket.
pub const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol of a SPDY upgrade (`X-Stream-Protocol-Version`).
pub const STREAM_PROTOCOL: &str = "portforward.k8s.io";
/// The header a SPDY upgrade negotiates the stream protocol in.
const STREAM_PROTOCOL_HEADER: header::HeaderName =
    header::HeaderName::from_static("x-stream-protocol-version");
/// The WebSocket channel subprotocols, preferred first (kube-rs and the Python client also
/// offer `v5.channel.k8s.io`, which is exec's; the kubelet answers port-forward with v4).
pub const CHANNEL_PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", STREAM_PROTOCOL];
/// How long connecting to the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a port-forward's connections go: a pod's ports as the host reaches them.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// Its network: its IP, and whether low ports are mapped.
    pub network: PodNetwork,
}

impl Target {
    /// The host address of the pod's `port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        let ip = self.network.pod_ip;
        SocketAddr::from((ip, self.network.host_port(ip, port)))
    }

    /// Connects to the pod's `port`, or says why not in the kubelet's words (what kubectl
    /// prints after `an error occurred forwarding L -> R:`).
    pub async fn connect(&self, port: u16) -> Result<TcpStream, String> {
        let addr = self.addr(port);
        let failed = |e: &dyn std::fmt::Display| {
            let mapped = if addr.port() != port {
                format!(" (host port {})", addr.port())
            } else {
                String::new()
            };
            format!(
                "error forwarding port {port} to pod {}/{}, uid : failed to connect to \
                 localhost:{port} inside the pod at {}:{port}{mapped}: {e}",
                self.namespace,
                self.pod,
                addr.ip()
            )
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) => Err(failed(&e)),
            Err(_) => Err(failed(&"connection timed out")),
        }
    }
}

/// The header's comma-separated tokens, trimmed.
fn tokens(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The ports of a channel session: `port=80&port=9090` (the kubelet's form) or
/// `ports=80,9090` (the API's), in order.
pub fn query_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "port" && key != "ports" {
            continue;
        }
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        if value.is_empty() {
            return Err(format!("query parameter {key:?} cannot be empty"));
        }
        for p in value.split(',') {
            match p.trim().parse::<u16>() {
                Ok(0) => return Err(format!("port {p:?} must be > 0")),
                Ok(port) => ports.push(port),
                Err(e) => return Err(format!("unable to parse {p:?} as a port: {e}")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

/// `GET` or `POST /portForward/{namespace}/{pod}`.
pub async fn serve(
    State(exec): State<Arc<Exec>>,
    Path((namespace, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let Some(network) = exec.pod_network(&namespace, &pod) else {
        // The kubelet's words, which kubectl shows after "unable to upgrade connection:".
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "pod does not exist".into(),
        );
    };
    let target = Target {
        namespace,
        pod,
        network,
    };
    let (mut parts, _body) = request.into_parts();
    let connection = tokens(&parts.headers, header::CONNECTION);
    if !connection.iter().any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return bad_request("Upgrade request required".into());
    }
    let upgrade = tokens(&parts.headers, header::UPGRADE);
    if upgrade.iter().any(|t| t.eq_ignore_ascii_case("websocket")) {
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return bad_request(format!("unable to upgrade: {rejection}")),
        };
        return websocket(upgrade, query.as_deref().unwrap_or(""), target);
    }
    if upgrade
        .iter()
        .any(|t| t.to_ascii_lowercase().starts_with("spdy/3"))
    {
        return spdy_upgrade(&mut parts, target);
    }
    bad_request(format!(
        "unable to upgrade: unsupported protocol {upgrade:?}: port-forward speaks \
         SPDY/3.1 and WebSocket"
    ))
}

/// The WebSocket forms: SPDY in the tunnel, or the channel protocol.
fn websocket(upgrade: WebSocketUpgrade, query: &str, target: Target) -> Response {
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    if offered.iter().any(|p| p == SPDY_TUNNEL) {
        let upgrade = upgrade.protocols([SPDY_TUNNEL]);
        return upgrade.on_upgrade(move |socket| tunnel::serve(socket, target));
    }
    let upgrade = upgrade.protocols(CHANNEL_PROTOCOLS);
    if upgrade.selected_protocol().is_none() && !offered.is_empty() {
        return bad_request(format!(
            "unable to upgrade: requested protocol(s) are not supported: {offered:?}; \
             supports [{SPDY_TUNNEL:?} {:?} {:?}]",
            CHANNEL_PROTOCOLS[0], CHANNEL_PROTOCOLS[1]
        ));
    }
    let ports = match query_ports(query) {
        Ok(ports) => ports,
        Err(message) => return bad_request(message),
    };
    // Ports go on channels 2i and 2i+1, numbered by one byte.
    if ports.len() > 128 {
        return bad_request(format!("too many ports: {} (at most 128)", ports.len()));
    }
    upgrade.on_upgrade(move |socket| channel::serve(socket, ports, target))
}

/// The SPDY/3.1 upgrade: 101, then SPDY frames on the socket.
fn spdy_upgrade(parts: &mut axum::http::request::Parts, target: Target) -> Response {
    let versions = tokens(
        &parts.headers,
        "x-stream-protocol-version".parse().expect("name"),
    );
    if versions.is_empty() {
        return bad_request("unable to upgrade: X-Stream-Protocol-Version is required".into());
    }
    if !versions.iter().any(|v| v == STREAM_PROTOCOL) {
        return status_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, \
                 server supports [{STREAM_PROTOCOL:?}]"
            ),
        );
    }
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return bad_request("unable to upgrade: this connection cannot be upgraded".into());
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => spdy::serve(TokioIo::new(upgraded), target).await,
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    headers.insert(
        STREAM_PROTOCOL_HEADER,
        HeaderValue::from_static(STREAM_PROTOCOL),
    );
    response
}
