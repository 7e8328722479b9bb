//! The node's view of the cluster's Services, which the socket layer balances over and cluster
//! DNS answers from (ARCHITECTURE D7). No proxy: a guest `connect()` to `ClusterIP:port` is
//! sent straight to one ready endpoint, chosen at connect time ([`ServiceTable::route`]).
//!
//! The table knows nothing of the Kubernetes API. The node agent (`node/services.rs`) watches
//! Services and EndpointSlices and hands over one [`ServiceEntry`] per Service whenever either
//! changes; lookups are a read lock and a hash probe, so a connect stays in microseconds with
//! thousands of Services.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Where a connect goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not a Service address: the connect goes where the guest said.
    Direct,
    /// A Service port with a ready endpoint: the connect goes there instead.
    Endpoint(SocketAddrV4),
    /// A Service address without a ready endpoint for this port: refused at once, as
    /// kube-proxy's REJECT rule does.
    Refused,
}

/// One virtual `ClusterIP:port` of a Service and the endpoints behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualPort {
    /// The ClusterIP and Service port.
    pub vip: Option<SocketAddrV4>,
    /// Ready endpoints (address and target port), in the order the slices list them.
    pub endpoints: Vec<SocketAddrV4>,
}

/// What the node knows of one Service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The TCP ports on its ClusterIP (none for a headless Service).
    pub ports: Vec<VirtualPort>,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
    /// DNS names (fully qualified, lowercase, no trailing dot) and their addresses.
    pub names: Vec<(String, Vec<Ipv4Addr>)>,
    /// `type: ExternalName`: the Service's name is an alias (a CNAME) for this one.
    pub alias: Option<(String, String)>,
}

/// Endpoints of one virtual port, with the balancer's state.
#[derive(Debug)]
struct Backend {
    endpoints: Vec<SocketAddrV4>,
    affinity: Option<Duration>,
    next: AtomicUsize,
    /// Client pod IP -> the endpoint it was sent to and when (`ClientIP` affinity).
    sticky: Mutex<HashMap<Ipv4Addr, (SocketAddrV4, Instant)>>,
}

impl Backend {
    fn pick(&self, client: Ipv4Addr) -> Option<SocketAddrV4> {
        if self.endpoints.is_empty() {
            return None;
        }
        let Some(timeout) = self.affinity else {
            return Some(self.round_robin());
        };
        let now = Instant::now();
        let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((ep, at)) = sticky.get_mut(&client)
            && now.duration_since(*at) < timeout
            && self.endpoints.contains(ep)
        {
            *at = now;
            return Some(*ep);
        }
        let ep = self.round_robin();
        sticky.insert(client, (ep, now));
        // Forget clients whose affinity ran out, so the map stays as large as the live clients.
        if sticky.len() > 1024 {
            sticky.retain(|_, (_, at)| now.duration_since(*at) < timeout);
        }
        Some(ep)
    }

    fn round_robin(&self) -> SocketAddrV4 {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.endpoints[i % self.endpoints.len()]
    }
}

/// Affinity state per virtual port.
type StickyMaps = HashMap<SocketAddrV4, HashMap<Ipv4Addr, (SocketAddrV4, Instant)>>;

#[derive(Debug, Default)]
struct Tables {
    entries: HashMap<String, ServiceEntry>,
    /// `ClusterIP:port` -> its backend.
    vips: HashMap<SocketAddrV4, Arc<Backend>>,
    /// ClusterIPs, each with how many ports it has: a connect to an unknown port of one is
    /// refused rather than sent out.
    cluster_ips: HashMap<Ipv4Addr, usize>,
    /// Endpoint addresses, each with how many virtual ports use it: these may be connected to
    /// even outside the pod range (the `kubernetes` Service's endpoint is the API server's).
    endpoints: HashMap<SocketAddrV4, usize>,
    /// DNS name -> addresses.
    names: HashMap<String, Vec<Ipv4Addr>>,
    /// DNS name -> the name it is an alias for.
    aliases: HashMap<String, String>,
}

impl Tables {
    fn remove(&mut self, key: &str) {
        let Some(old) = self.entries.remove(key) else {
            return;
        };
        for port in &old.ports {
            let Some(vip) = port.vip else { continue };
            self.vips.remove(&vip);
            decrement(&mut self.cluster_ips, *vip.ip());
            for ep in &port.endpoints {
                decrement(&mut self.endpoints, *ep);
            }
        }
        for (name, _) in &old.names {
            self.names.remove(name);
        }
        if let Some((name, _)) = &old.alias {
            self.aliases.remove(name);
        }
    }

    /// Adds `entry`; `sticky` carries the affinity of the backends it replaces.
    fn insert(&mut self, key: String, entry: ServiceEntry, mut sticky: StickyMaps) {
        for port in &entry.ports {
            let Some(vip) = port.vip else { continue };
            self.vips.insert(
                vip,
                Arc::new(Backend {
                    endpoints: port.endpoints.clone(),
                    affinity: entry.affinity,
                    next: AtomicUsize::new(0),
                    sticky: Mutex::new(sticky.remove(&vip).unwrap_or_default()),
                }),
            );
            *self.cluster_ips.entry(*vip.ip()).or_default() += 1;
            for ep in &port.endpoints {
                *self.endpoints.entry(*ep).or_default() += 1;
            }
        }
        for (name, ips) in &entry.names {
            self.names.insert(name.clone(), ips.clone());
        }
        if let Some((name, target)) = &entry.alias {
            self.aliases.insert(name.clone(), target.clone());
        }
        self.entries.insert(key, entry);
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// The Services one node agent knows, shared by all its containers.
#[derive(Debug)]
pub struct ServiceTable {
    domain: String,
    tables: RwLock<Tables>,
}

impl Default for ServiceTable {
    fn default() -> ServiceTable {
        ServiceTable::new("cluster.local")
    }
}

impl ServiceTable {
    /// An empty table for the cluster domain `domain` (`cluster.local`).
    pub fn new(domain: &str) -> ServiceTable {
        ServiceTable {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            tables: RwLock::default(),
        }
    }

    /// The cluster domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Sets (or with `None` removes) what the table knows of the Service `key`
    /// (`namespace/name`).
    pub fn set(&self, key: &str, entry: Option<ServiceEntry>) {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        if entry.as_ref() == tables.entries.get(key) {
            return;
        }
        // Clients keep their endpoint across an update that still lists it.
        let sticky: StickyMaps = tables
            .entries
            .get(key)
            .into_iter()
            .flat_map(|e| e.ports.iter().filter_map(|p| p.vip))
            .filter_map(|vip| {
                let backend = tables.vips.get(&vip)?;
                let map = backend.sticky.lock().unwrap_or_else(|e| e.into_inner());
                Some((vip, map.clone()))
            })
            .collect();
        tables.remove(key);
        if let Some(entry) = entry {
            tables.insert(key.to_string(), entry, sticky);
        }
    }

    /// Keeps only the Services `keep` says yes to (after a relist).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = tables
            .entries
            .keys()
            .filter(|k| !keep(k))
            .cloned()
            .collect();
        for key in gone {
            tables.remove(&key);
        }
    }

    /// Where a connect from `client` (a pod IP) to `addr` goes.
    pub fn route(&self, addr: SocketAddrV4, client: Ipv4Addr) -> Route {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        match tables.vips.get(&addr) {
            Some(backend) => backend.pick(client).map_or(Route::Refused, Route::Endpoint),
            None if tables.cluster_ips.contains_key(addr.ip()) => Route::Refused,
            None => Route::Direct,
        }
    }

    /// Whether `addr` is an endpoint of some Service (so a balanced connect may reach it).
    pub fn is_endpoint(&self, addr: SocketAddrV4) -> bool {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.endpoints.contains_key(&addr)
    }

    /// Whether some Service balances connects to `ip` (a terminating pod waits for this to
    /// turn false before closing its listeners).
    pub fn balances_to(&self, ip: Ipv4Addr) -> bool {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.endpoints.keys().any(|ep| *ep.ip() == ip)
    }

    /// The addresses of a fully qualified cluster name, `None` if there is no such name.
    pub fn lookup(&self, fqdn: &str) -> Option<Vec<Ipv4Addr>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.names.get(fqdn).cloned()
    }

    /// The name a fully qualified ExternalName Service name is an alias for.
    pub fn alias(&self, fqdn: &str) -> Option<String> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.aliases.get(fqdn).cloned()
    }

    /// How many Services the table holds.
    pub fn len(&self) -> usize {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.entries.len()
    }

    /// Whether the table holds no Service.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 9);

    fn ep(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(127, 64, 0, last), port)
    }

    fn vip(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 10), port)
    }

    fn web(endpoints: Vec<SocketAddrV4>, affinity: Option<Duration>) -> ServiceEntry {
        ServiceEntry {
            ports: vec![VirtualPort {
                vip: Some(vip(80)),
                endpoints,
            }],
            affinity,
            names: vec![("web.default.svc.cluster.local".into(), vec![*vip(80).ip()])],
            alias: None,
        }
    }

    #[test]
    fn connects_are_spread_round_robin_over_ready_endpoints() {
        let table = ServiceTable::default();
        table.set(
            "default/web",
            Some(web(vec![ep(2, 8080), ep(3, 8080)], None)),
        );
        let picks: Vec<Route> = (0..4).map(|_| table.route(vip(80), CLIENT)).collect();
        assert_eq!(
            picks,
            [ep(2, 8080), ep(3, 8080), ep(2, 8080), ep(3, 8080)].map(Route::Endpoint)
        );
        assert!(table.is_endpoint(ep(2, 8080)));
        assert!(!table.is_endpoint(ep(2, 80)));
    }

    #[test]
    fn a_service_without_endpoints_or_an_unknown_port_refuses_and_others_go_direct() {
        let table = ServiceTable::default();
        table.set("default/web", Some(web(Vec::new(), None)));
        assert_eq!(table.route(vip(80), CLIENT), Route::Refused);
        assert_eq!(table.route(vip(81), CLIENT), Route::Refused, "unknown port");
        assert_eq!(table.route(ep(2, 80), CLIENT), Route::Direct, "a pod IP");
        table.set("default/web", None);
        assert_eq!(table.route(vip(80), CLIENT), Route::Direct, "deleted");
        assert!(table.lookup("web.default.svc.cluster.local").is_none());
    }

    #[test]
    fn client_ip_affinity_keeps_a_client_on_its_endpoint_until_it_leaves() {
        let table = ServiceTable::default();
        let hour = Some(Duration::from_secs(3600));
        table.set(
            "default/web",
            Some(web(vec![ep(2, 80), ep(3, 80), ep(4, 80)], hour)),
        );
        let first = table.route(vip(80), CLIENT);
        for _ in 0..5 {
            assert_eq!(table.route(vip(80), CLIENT), first);
        }
        let other = table.route(vip(80), Ipv4Addr::new(127, 64, 1, 7));
        assert_ne!(other, first, "another client takes the next endpoint");
        // An update that keeps the endpoint keeps the client on it.
        table.set(
            "default/web",
            Some(web(vec![ep(2, 80), ep(3, 80), ep(4, 80), ep(5, 80)], hour)),
        );
        assert_eq!(table.route(vip(80), CLIENT), first);
        // Once it is gone, the client moves.
        let Route::Endpoint(gone) = first else {
            panic!("{first:?}")
        };
        let rest: Vec<_> = [ep(2, 80), ep(3, 80), ep(4, 80), ep(5, 80)]
            .into_iter()
            .filter(|e| *e != gone)
            .collect();
        table.set("default/web", Some(web(rest.clone(), hour)));
        let Route::Endpoint(moved) = table.route(vip(80), CLIENT) else {
            panic!()
        };
        assert!(rest.contains(&moved));
    }

    #[test]
    fn names_follow_the_entries() {
        let table = ServiceTable::default();
        table.set("default/web", Some(web(vec![ep(2, 80)], None)));
        assert_eq!(
            table.lookup("web.default.svc.cluster.local"),
            Some(vec![Ipv4Addr::new(10, 96, 0, 10)])
        );
        table.retain(|k| k != "default/web");
        assert!(table.is_empty());
        assert_eq!(table.route(vip(80), CLIENT), Route::Direct);
        assert!(!table.is_endpoint(ep(2, 80)));
    }
}
