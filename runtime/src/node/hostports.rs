//! The way in from the host: `type: NodePort` and `type: LoadBalancer` Services, served by
//! host-side proxies in the node agent (ARCHITECTURE D7).
//!
//! Every node listens on `NODE_ADDRESS:nodePort` for each port of its NodePort and
//! LoadBalancer Services. A node started with a load-balancer address (`wasmkube up` gives
//! its first node `127.0.0.1`, like k3s's servicelb) also listens on `ADDRESS:port` for each
//! LoadBalancer Service and writes that address into `status.loadBalancer.ingress`. Each
//! accepted connection is sent to one ready endpoint, chosen by the same table and balancer as
//! a guest's connect (so `sessionAffinity: ClientIP` holds for host clients too), and the two
//! sockets are copied into each other.
//!
//! A port the agent may not bind (below 1024 as an ordinary user) or that something else holds
//! is not served at the load-balancer address: the Service stays reachable at its NodePort,
//! and `status.loadBalancer.ingress[].ports[].error` and a Warning Event say so.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::{EventType, Recorder};
use super::services::ServiceCache;
use crate::wasm::{PodNetwork, Route, ServiceTable};

/// The `error` of a load-balancer port that could not be bound.
pub const PORT_ERROR: &str = "wasmkube.io/PortNotBindable";

/// One host listener: where it listens and the virtual port it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Forward {
    listen: SocketAddrV4,
    vip: SocketAddrV4,
}

/// What serves the host ports of one node.
pub struct HostPorts {
    /// The node's address (NodePorts listen here).
    pub node_address: Ipv4Addr,
    /// Where LoadBalancer Services listen, if this node is a load balancer.
    pub load_balancer: Option<Ipv4Addr>,
    /// Whether pod ports below 1024 live at `61000 + port` on the host.
    pub map_low_ports: bool,
    /// The API client (load-balancer status).
    pub client: kube::Client,
    /// Events.
    pub events: Recorder,
}

/// A running listener.
struct Listening {
    stop: CancellationToken,
}

impl HostPorts {
    /// Keeps the listeners in line with the cache's Services until `shutdown`.
    pub async fn run(self, cache: Arc<ServiceCache>, shutdown: CancellationToken) {
        let mut changes = cache.changes();
        let mut listening: HashMap<Forward, Listening> = HashMap::new();
        // Load-balancer ports that could not be bound: (listen address) -> error text.
        let mut failed: HashMap<SocketAddrV4, String> = HashMap::new();
        let mut tasks = JoinSet::new();
        loop {
            let services = cache.load_balanced();
            let mut wanted: Vec<(Forward, bool)> = Vec::new();
            for svc in &services {
                wanted.extend(self.forwards(svc));
            }
            listening.retain(|forward, l| {
                let keep = wanted.iter().any(|(w, _)| w == forward);
                if !keep {
                    l.stop.cancel();
                }
                keep
            });
            // Ports that failed are tried again on every change.
            failed.clear();
            for (forward, _) in &wanted {
                if listening.contains_key(forward) {
                    continue;
                }
                match std::net::TcpListener::bind(forward.listen).and_then(|l| {
                    l.set_nonblocking(true)?;
                    TcpListener::from_std(l)
                }) {
                    Ok(listener) => {
                        let stop = shutdown.child_token();
                        tracing::info!(listen = %forward.listen, vip = %forward.vip, "serving service port on the host");
                        tasks.spawn(serve(
                            listener,
                            forward.vip,
                            cache.table(),
                            self.map_low_ports,
                            stop.clone(),
                        ));
                        listening.insert(*forward, Listening { stop });
                    }
                    Err(e) => {
                        tracing::warn!(listen = %forward.listen, error = %e, "cannot serve service port");
                        failed.insert(forward.listen, e.to_string());
                    }
                }
            }
            if let Some(lb) = self.load_balancer {
                for svc in services.iter().filter(|s| is_type(s, "LoadBalancer")) {
                    self.write_status(svc, lb, &failed).await;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = changes.changed() => if changed.is_err() { break },
                Some(_) = tasks.join_next() => {}
            }
        }
        for l in listening.values() {
            l.stop.cancel();
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The listeners a Service wants on this node (and whether each is a load-balancer one).
    fn forwards(&self, svc: &Service) -> Vec<(Forward, bool)> {
        let spec = svc.spec.clone().unwrap_or_default();
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let vip = SocketAddrV4::new(cluster_ip, number);
            if let Some(node_port) = port.node_port.and_then(|n| u16::try_from(n).ok()) {
                let listen = SocketAddrV4::new(self.node_address, node_port);
                out.push((Forward { listen, vip }, false));
            }
            if let Some(lb) = self.load_balancer.filter(|_| is_type(svc, "LoadBalancer")) {
                let listen = SocketAddrV4::new(lb, number);
                out.push((Forward { listen, vip }, true));
            }
        }
        out
    }

    /// Writes `status.loadBalancer` of `svc` (and an Event per port that is not served),
    /// unless it already says so.
    async fn write_status(
        &self,
        svc: &Service,
        lb: Ipv4Addr,
        failed: &HashMap<SocketAddrV4, String>,
    ) {
        let spec = svc.spec.clone().unwrap_or_default();
        let mut ports = Vec::new();
        let mut problems = Vec::new();
        for port in spec.ports.iter().flatten() {
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            let mut entry = json!({"port": port.port, "protocol": protocol});
            let listen = u16::try_from(port.port)
                .ok()
                .map(|p| SocketAddrV4::new(lb, p));
            if let Some(why) = listen.and_then(|l| failed.get(&l)) {
                entry["error"] = json!(PORT_ERROR);
                let fallback = port
                    .node_port
                    .map(|n| {
                        format!(
                            "; it is served at its NodePort {}:{n} instead",
                            self.node_address
                        )
                    })
                    .unwrap_or_default();
                let hint = if port.port < 1024 {
                    " (ports below 1024 need privileges this agent lacks)"
                } else {
                    ""
                };
                problems.push(format!(
                    "cannot listen on {lb}:{}: {why}{hint}{fallback}",
                    port.port
                ));
            } else if protocol != "TCP" {
                entry["error"] = json!(PORT_ERROR);
                problems.push(format!(
                    "port {} is {protocol}: only TCP is load-balanced",
                    port.port
                ));
            }
            ports.push(entry);
        }
        let desired = json!({"ingress": [{"ip": lb.to_string(), "ipMode": "VIP", "ports": ports}]});
        let current = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .map(|l| serde_json::to_value(l).unwrap_or(Value::Null));
        if current.as_ref() == Some(&desired) {
            return;
        }
        let api: Api<Service> =
            Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
        let patch = json!({"status": {"loadBalancer": desired}});
        match api
            .patch_status(
                &svc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                let object = reference(svc);
                self.events.emit(
                    object.clone(),
                    EventType::Normal,
                    "EnsuredLoadBalancer",
                    format!("Ensured load balancer at {lb}"),
                );
                for problem in problems {
                    self.events.emit(
                        object.clone(),
                        EventType::Warning,
                        "PortNotBindable",
                        problem,
                    );
                }
            }
            Err(e) => {
                tracing::warn!(service = %svc.name_any(), error = %e, "writing load-balancer status")
            }
        }
    }
}

fn is_type(svc: &Service, ty: &str) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some(ty)
}

fn reference(svc: &Service) -> ObjectReference {
    let mut r = svc.object_ref(&());
    r.field_path = None;
    r
}

/// Accepts connections on `listener` and relays each to an endpoint of `vip` until `stop`.
async fn serve(
    listener: TcpListener,
    vip: SocketAddrV4,
    table: Arc<ServiceTable>,
    map_low_ports: bool,
    stop: CancellationToken,
) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = relays.join_next() => {}
            accepted = listener.accept() => {
                let Ok((client, peer)) = accepted else { continue };
                let client_ip = match peer {
                    SocketAddr::V4(a) => *a.ip(),
                    SocketAddr::V6(a) => a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
                };
                let Route::Endpoint(ep) = table.route(vip, client_ip) else {
                    // No ready endpoint: the connection is closed at once.
                    continue;
                };
                relays.spawn(relay(client, ep, map_low_ports));
            }
        }
    }
    relays.abort_all();
}

/// Copies one host connection to and from an endpoint.
async fn relay(mut client: TcpStream, ep: SocketAddrV4, map_low_ports: bool) {
    let network = PodNetwork {
        pod_ip: Ipv4Addr::UNSPECIFIED,
        allow_external: false,
        map_low_ports,
    };
    let target = SocketAddrV4::new(*ep.ip(), network.host_port(*ep.ip(), ep.port()));
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
