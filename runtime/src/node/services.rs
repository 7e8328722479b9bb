//! The cluster's Services as this node sees them: kube-proxy's watch, without the proxy.
//!
//! Two kube-rs watchers (Services, EndpointSlices, all namespaces) keep a copy of both; every
//! change recomputes the one Service it concerns into the socket layer's [`ServiceTable`]
//! (`wasm/net/services.rs`), which balances connects and answers cluster DNS. The same copy
//! gives containers their service-link env vars, so starting a container lists nothing.
//!
//! Endpoints used: those whose `ready` condition is not false; when a port has none, the
//! `serving` ones that are terminating (kube-proxy does the same), so the last replica of a
//! Service keeps answering while it drains.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::wasm::{ServiceEntry, ServiceTable, VirtualPort};

/// How often a terminating pod checks whether it left the endpoints.
const ENDPOINT_POLL: Duration = Duration::from_millis(20);

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The node's copy of Services and EndpointSlices.
#[derive(Debug)]
pub struct ServiceCache {
    table: Arc<ServiceTable>,
    services: RwLock<HashMap<String, Arc<Service>>>,
    synced: watch::Sender<bool>,
    /// Bumped on every Service change (the host ports follow it).
    changes: watch::Sender<u64>,
}

impl ServiceCache {
    /// An empty cache for the cluster domain `domain`.
    pub fn new(domain: &str) -> Arc<ServiceCache> {
        Arc::new(ServiceCache {
            table: Arc::new(ServiceTable::new(domain)),
            services: RwLock::default(),
            synced: watch::channel(false).0,
            changes: watch::channel(0).0,
        })
    }

    /// The table the socket layer reads.
    pub fn table(&self) -> Arc<ServiceTable> {
        self.table.clone()
    }

    /// The Services of `namespace` and `default/kubernetes` (for service links), once the
    /// first list is in or `wait` has passed.
    pub async fn for_links(&self, namespace: &str, wait: Duration) -> Vec<Service> {
        let mut synced = self.synced.subscribe();
        let _ = tokio::time::timeout(wait, synced.wait_for(|s| *s)).await;
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services
            .values()
            .filter(|s| {
                let ns = s.namespace();
                ns.as_deref() == Some(namespace)
                    || (ns.as_deref() == Some("default") && s.name_any() == "kubernetes")
            })
            .map(|s| (**s).clone())
            .collect()
    }

    /// Tells of every change to the Services.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The NodePort and LoadBalancer Services.
    pub fn load_balanced(&self) -> Vec<Arc<Service>> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services
            .values()
            .filter(|s| {
                let ty = s.spec.as_ref().and_then(|s| s.type_.as_deref());
                matches!(ty, Some("NodePort" | "LoadBalancer"))
            })
            .cloned()
            .collect()
    }

    /// Resolves once `pod_ip` is no endpoint any Service balances to (at once for a pod in
    /// none), or after `timeout`, then waits `propagation` more for other nodes.
    pub async fn left_endpoints(
        self: Arc<Self>,
        pod_ip: Option<Ipv4Addr>,
        timeout: Duration,
        propagation: Duration,
    ) {
        let Some(ip) = pod_ip else { return };
        if !self.table.balances_to(ip) {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while self.table.balances_to(ip) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(ENDPOINT_POLL).await;
        }
        tokio::time::sleep(propagation).await;
    }

    /// Watches Services and EndpointSlices until `shutdown`.
    pub async fn run(self: Arc<Self>, client: kube::Client, shutdown: CancellationToken) {
        let services = watcher::watcher(Api::<Service>::all(client.clone()), Default::default())
            .default_backoff()
            .boxed();
        let slices = watcher::watcher(Api::<EndpointSlice>::all(client), Default::default())
            .default_backoff()
            .boxed();
        let mut state = State {
            cache: self,
            slices: HashMap::new(),
            by_service: HashMap::new(),
            listing_services: None,
            listing_slices: None,
            synced: [false; 2],
        };
        let (mut services, mut slices) = (services, slices);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = services.next() => match event {
                    Some(Ok(event)) => state.service_event(event),
                    Some(Err(e)) => tracing::warn!(error = %e, "service watch failed; retrying"),
                    None => break,
                },
                event = slices.next() => match event {
                    Some(Ok(event)) => state.slice_event(event),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "endpointslice watch failed; retrying");
                    }
                    None => break,
                },
            }
        }
    }
}

/// The watch loop's state.
struct State {
    cache: Arc<ServiceCache>,
    /// EndpointSlices by `namespace/name`.
    slices: HashMap<String, Arc<EndpointSlice>>,
    /// Service `namespace/name` -> its slices' keys.
    by_service: HashMap<String, BTreeSet<String>>,
    listing_services: Option<HashMap<String, Arc<Service>>>,
    listing_slices: Option<HashMap<String, Arc<EndpointSlice>>>,
    /// Whether each watch (services, slices) has listed once.
    synced: [bool; 2],
}

fn key(namespace: Option<String>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

/// The Service an EndpointSlice belongs to.
fn owner(slice: &EndpointSlice) -> Option<String> {
    let name = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some(key(slice.namespace(), name))
}

impl State {
    fn service_event(&mut self, event: Event<Service>) {
        let listing = matches!(event, Event::Init | Event::InitApply(_));
        self.apply_service_event(event);
        if !listing {
            self.cache.changes.send_modify(|n| *n += 1);
        }
    }

    fn apply_service_event(&mut self, event: Event<Service>) {
        match event {
            Event::Init => self.listing_services = Some(HashMap::new()),
            Event::InitApply(svc) => {
                if let Some(listing) = &mut self.listing_services {
                    listing.insert(key(svc.namespace(), &svc.name_any()), Arc::new(svc));
                }
            }
            Event::InitDone => {
                let listed = self.listing_services.take().unwrap_or_default();
                *self.services_mut() = listed;
                self.synced[0] = true;
                self.recompute_all();
            }
            Event::Apply(svc) => {
                let k = key(svc.namespace(), &svc.name_any());
                self.services_mut().insert(k.clone(), Arc::new(svc));
                self.recompute(&k);
            }
            Event::Delete(svc) => {
                let k = key(svc.namespace(), &svc.name_any());
                self.services_mut().remove(&k);
                self.recompute(&k);
            }
        }
    }

    fn slice_event(&mut self, event: Event<EndpointSlice>) {
        match event {
            Event::Init => self.listing_slices = Some(HashMap::new()),
            Event::InitApply(slice) => {
                if let Some(listing) = &mut self.listing_slices {
                    listing.insert(key(slice.namespace(), &slice.name_any()), Arc::new(slice));
                }
            }
            Event::InitDone => {
                self.slices = self.listing_slices.take().unwrap_or_default();
                self.by_service.clear();
                for (k, slice) in &self.slices {
                    if let Some(svc) = owner(slice) {
                        self.by_service.entry(svc).or_default().insert(k.clone());
                    }
                }
                self.synced[1] = true;
                self.recompute_all();
            }
            Event::Apply(slice) => {
                let k = key(slice.namespace(), &slice.name_any());
                let new_owner = owner(&slice);
                let old_owner = self
                    .slices
                    .insert(k.clone(), Arc::new(slice))
                    .as_deref()
                    .and_then(owner);
                if let Some(old) = old_owner.filter(|o| Some(o) != new_owner.as_ref()) {
                    if let Some(set) = self.by_service.get_mut(&old) {
                        set.remove(&k);
                    }
                    self.recompute(&old);
                }
                if let Some(svc) = new_owner {
                    self.by_service.entry(svc.clone()).or_default().insert(k);
                    self.recompute(&svc);
                }
            }
            Event::Delete(slice) => {
                let k = key(slice.namespace(), &slice.name_any());
                self.slices.remove(&k);
                if let Some(svc) = owner(&slice) {
                    if let Some(set) = self.by_service.get_mut(&svc) {
                        set.remove(&k);
                    }
                    self.recompute(&svc);
                }
            }
        }
    }

    fn services_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Service>>> {
        self.cache
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds every Service's entry after a (re)list, once both watches have listed.
    fn recompute_all(&mut self) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        let keys: Vec<String> = {
            let services = self
                .cache
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            services.keys().cloned().collect()
        };
        let live: BTreeSet<&String> = keys.iter().collect();
        self.cache.table.retain(|k| live.contains(&k.to_string()));
        for k in &keys {
            self.recompute(k);
        }
        self.cache.synced.send_replace(true);
    }

    fn recompute(&self, svc_key: &str) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        let svc = {
            let services = self
                .cache
                .services
                .read()
                .unwrap_or_else(|e| e.into_inner());
            services.get(svc_key).cloned()
        };
        let entry = svc.map(|svc| {
            let slices = self
                .by_service
                .get(svc_key)
                .into_iter()
                .flatten()
                .filter_map(|k| self.slices.get(k).map(|s| &**s));
            entry(&svc, slices, self.cache.table.domain())
        });
        self.cache.table.set(svc_key, entry);
    }
}

/// One endpoint address as the balancer and DNS use it.
struct Ready {
    ip: Ipv4Addr,
    hostname: Option<String>,
    /// Ready (true), or only serving while terminating (false).
    ready: bool,
}

/// What the socket layer needs of a Service and its slices.
pub fn entry<'a>(
    svc: &Service,
    slices: impl Iterator<Item = &'a EndpointSlice>,
    domain: &str,
) -> ServiceEntry {
    let spec = svc.spec.clone().unwrap_or_default();
    let fqdn = format!(
        "{}.{}.svc.{domain}",
        svc.name_any(),
        svc.namespace().unwrap_or_default()
    );
    if spec.type_.as_deref() == Some("ExternalName") {
        let alias = spec
            .external_name
            .map(|target| (fqdn, target.trim_end_matches('.').to_ascii_lowercase()));
        return ServiceEntry {
            alias,
            ..ServiceEntry::default()
        };
    }
    let cluster_ip: Option<Ipv4Addr> = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| *ip != "None")
        .and_then(|ip| ip.parse().ok());
    // (endpoint, its port numbers by slice port name)
    let mut endpoints: Vec<(Ready, HashMap<String, u16>)> = Vec::new();
    for slice in slices.filter(|s| s.address_type == "IPv4") {
        let ports: HashMap<String, u16> = slice
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| {
                Some((
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.port?).ok()?,
                ))
            })
            .collect();
        for ep in slice.endpoints.iter().flatten() {
            let conditions = ep.conditions.clone().unwrap_or_default();
            let ready = conditions.ready != Some(false);
            let serving = conditions.serving.unwrap_or(ready);
            let draining = serving && conditions.terminating == Some(true);
            if !(ready || draining) {
                continue;
            }
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            endpoints.push((
                Ready {
                    ip,
                    hostname: ep.hostname.clone(),
                    ready,
                },
                ports.clone(),
            ));
        }
    }

    let mut ports = Vec::new();
    if let Some(cluster_ip) = cluster_ip {
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let name = port.name.clone().unwrap_or_default();
            let pick = |want_ready: bool| -> Vec<SocketAddrV4> {
                endpoints
                    .iter()
                    .filter(|(ep, _)| ep.ready == want_ready)
                    .filter_map(|(ep, ports)| Some(SocketAddrV4::new(ep.ip, *ports.get(&name)?)))
                    .collect()
            };
            let mut chosen = pick(true);
            if chosen.is_empty() {
                chosen = pick(false);
            }
            ports.push(VirtualPort {
                vip: Some(SocketAddrV4::new(cluster_ip, number)),
                endpoints: chosen,
            });
        }
    }

    let mut names = Vec::new();
    match cluster_ip {
        Some(ip) => names.push((fqdn.clone(), vec![ip])),
        None => {
            let mut ips: Vec<Ipv4Addr> = endpoints
                .iter()
                .filter(|(ep, _)| ep.ready)
                .map(|(ep, _)| ep.ip)
                .collect();
            ips.dedup();
            names.push((fqdn.clone(), ips));
        }
    }
    for (ep, _) in endpoints.iter().filter(|(ep, _)| ep.ready) {
        if let Some(host) = &ep.hostname {
            names.push((format!("{host}.{fqdn}"), vec![ep.ip]));
        }
    }
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let seconds = spec
            .session_affinity_config
            .and_then(|c| c.client_ip)
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10_800);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(10_800))
    });
    ServiceEntry {
        ports,
        affinity,
        names,
        alias: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-http", "namespace": "default",
                "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    fn ep(ip: &str, ready: bool, terminating: bool) -> serde_json::Value {
        json!({"addresses": [ip], "conditions":
            {"ready": ready, "serving": true, "terminating": terminating}})
    }

    #[test]
    fn a_cluster_ip_port_lists_ready_endpoints_at_their_target_port() {
        let svc = service(
            json!({"clusterIP": "10.96.0.9", "sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 8080, "targetPort": 80}]}),
        );
        let s = slice(json!([
            ep("127.64.0.2", true, false),
            ep("127.64.0.3", false, false),
            ep("127.64.0.4", false, true),
        ]));
        let e = entry(&svc, [&s].into_iter(), "cluster.local");
        assert_eq!(
            e.ports,
            [VirtualPort {
                vip: Some("10.96.0.9:8080".parse().unwrap()),
                endpoints: vec!["127.64.0.2:80".parse().unwrap()],
            }]
        );
        assert_eq!(e.affinity, Some(Duration::from_secs(10_800)));
        assert_eq!(
            e.names,
            [(
                "web.default.svc.cluster.local".to_string(),
                vec![Ipv4Addr::new(10, 96, 0, 9)]
            )]
        );
    }

    #[test]
    fn terminating_but_serving_endpoints_are_used_only_when_none_is_ready() {
        let svc = service(json!({"clusterIP": "10.96.0.9",
            "ports": [{"name": "http", "port": 80}]}));
        let s = slice(json!([ep("127.64.0.4", false, true)]));
        let e = entry(&svc, [&s].into_iter(), "cluster.local");
        assert_eq!(e.ports[0].endpoints, ["127.64.0.4:80".parse().unwrap()]);
    }

    #[test]
    fn headless_services_name_their_ready_pods_and_hostnames() {
        let svc = service(json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}));
        let mut s = slice(json!([
            ep("127.64.0.2", true, false),
            ep("127.64.1.2", true, false),
            ep("127.64.2.2", false, false),
        ]));
        s.endpoints.as_mut().unwrap()[0].hostname = Some("web-0".into());
        let e = entry(&svc, [&s].into_iter(), "cluster.local");
        assert!(e.ports.is_empty(), "no virtual IP");
        assert_eq!(
            e.names,
            [
                (
                    "web.default.svc.cluster.local".to_string(),
                    vec![Ipv4Addr::new(127, 64, 0, 2), Ipv4Addr::new(127, 64, 1, 2)]
                ),
                (
                    "web-0.web.default.svc.cluster.local".to_string(),
                    vec![Ipv4Addr::new(127, 64, 0, 2)]
                ),
            ]
        );
    }
}
