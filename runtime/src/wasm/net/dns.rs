//! Cluster DNS: `wasi:sockets/ip-name-lookup` answered from the node's [`ServiceTable`]
//! instead of the host's resolver (ARCHITECTURE D7).
//!
//! Names resolve as in a pod with Kubernetes' `resolv.conf` (`search <ns>.svc.<domain>
//! svc.<domain> <domain>`, `ndots:5`): `web`, `web.default`, `web.default.svc` and
//! `web.default.svc.cluster.local` all reach the Service; a headless Service answers with its
//! ready pods, and `db-0.db.default.svc.cluster.local` with one StatefulSet pod. A pod also
//! knows its own hostname (its `/etc/hosts`), `localhost`, and `a-b-c-d.<ns>.pod.<domain>`.
//!
//! Anything else is an outside name. Those go to the host's resolver only when the node allows
//! it (`wasmkube node --allow-external-dns`); otherwise they fail with
//! `permanent-resolver-failure`, which the toolbox's `nslookup` explains. wasmtime-wasi's own
//! stream type cannot be built outside it, so this interface has its own bindings (`wit/`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::FutureExt as _;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, Pollable, SocketError, subscribe};

use super::services::ServiceTable;
use super::{PodTcp, PodTcpView};

#[allow(missing_docs, reason = "generated bindings")]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasmkube:net/cluster-dns",
        imports: { default: trappable },
        require_store_data_send: true,
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
            "wasi:io/error": wasmtime_wasi::p2::bindings::io::error,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::ResolveAddressStream,
        },
    });
}

use bindings::wasi::sockets::ip_name_lookup::{self, HostResolveAddressStream};

/// The cluster as the containers of one pod see it: the node's Services and the pod's own
/// names.
#[derive(Debug, Clone, Default)]
pub struct PodCluster {
    /// The node's Services.
    pub services: Arc<ServiceTable>,
    /// The pod's namespace, the first search domain.
    pub namespace: String,
    /// The pod's hostname (`spec.hostname`, else its name).
    pub hostname: String,
    /// `spec.subdomain`: the pod is also `hostname.subdomain.<ns>.svc.<domain>`.
    pub subdomain: Option<String>,
    /// Whether outside names go to the host's resolver.
    pub allow_external_dns: bool,
}

/// The answer to one lookup.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Addresses in connection order.
    Addresses(Vec<IpAddr>),
    /// A name outside the cluster, for the host's resolver if the node allows it.
    Outside(String),
    /// No such name (or an invalid one).
    Failed(ErrorCode),
}

/// How many ExternalName aliases one lookup follows (a loop of them fails).
const MAX_ALIASES: usize = 8;

/// The most characters of a DNS name.
const MAX_NAME: usize = 253;

impl PodCluster {
    /// Resolves `name` for a container of the pod whose IP is `pod_ip`.
    fn answer(&self, name: &str, pod_ip: Ipv4Addr) -> Answer {
        self.answer_within(name, pod_ip, MAX_ALIASES)
    }

    /// [`PodCluster::answer`], following at most `aliases` ExternalName aliases.
    fn answer_within(&self, name: &str, pod_ip: Ipv4Addr, aliases: usize) -> Answer {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Answer::Addresses(vec![ip]);
        }
        let absolute = name.ends_with('.');
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !valid_name(&name) {
            return Answer::Failed(ErrorCode::InvalidArgument);
        }
        if name == "localhost" || name == "localhost.localdomain" {
            return Answer::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        }
        let domain = self.services.domain();
        let mut candidates = Vec::new();
        // ndots:5 — every name short of five dots is tried with the search domains first.
        if !absolute && name.matches('.').count() < 5 {
            for search in [
                format!("{}.svc.{domain}", self.namespace),
                format!("svc.{domain}"),
                domain.to_string(),
            ] {
                candidates.push(format!("{name}.{search}"));
            }
        }
        candidates.push(name.clone());
        for fqdn in &candidates {
            // An ExternalName Service answers as its target (a CNAME), absolute.
            if let Some(target) = self.services.alias(fqdn) {
                if aliases == 0 {
                    return Answer::Failed(ErrorCode::PermanentResolverFailure);
                }
                return self.answer_within(&format!("{target}."), pod_ip, aliases - 1);
            }
            if let Some(ips) = self.cluster_name(fqdn, pod_ip) {
                return Answer::Addresses(ips.into_iter().map(IpAddr::V4).collect());
            }
        }
        if self.own_names().contains(&name) {
            return Answer::Addresses(vec![IpAddr::V4(pod_ip)]);
        }
        // A single label is never a name of the outside world (it would be looked up under
        // the search domains alone), so it does not exist rather than being refused.
        if !name.contains('.') || name == domain || name.ends_with(&format!(".{domain}")) {
            Answer::Failed(ErrorCode::NameUnresolvable)
        } else {
            Answer::Outside(name)
        }
    }

    /// A fully qualified cluster name's addresses.
    fn cluster_name(&self, fqdn: &str, pod_ip: Ipv4Addr) -> Option<Vec<Ipv4Addr>> {
        if let Some(ips) = self.services.lookup(fqdn) {
            return (!ips.is_empty()).then_some(ips);
        }
        if self.own_names().iter().any(|n| n == fqdn) {
            return Some(vec![pod_ip]);
        }
        // `a-b-c-d.<ns>.pod.<domain>`: any dashed IPv4 address.
        let rest = fqdn.strip_suffix(&format!(".pod.{}", self.services.domain()))?;
        let (dashed, _namespace) = rest.split_once('.')?;
        dashed.replace('-', ".").parse().ok().map(|ip| vec![ip])
    }

    /// The names of the pod itself: its hostname and, with a subdomain, its FQDN.
    fn own_names(&self) -> Vec<String> {
        let mut names = vec![self.hostname.to_ascii_lowercase()];
        if let Some(sub) = &self.subdomain {
            names.push(format!(
                "{}.{sub}.{}.svc.{}",
                self.hostname,
                self.namespace,
                self.services.domain()
            ));
        }
        names
    }
}

/// RFC 1123 names (plus `_`, which SRV-style labels use): labels of 1-63 characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The `resolve-address-stream` resource: an answer, or an outside lookup in flight.
pub enum ResolveAddressStream {
    /// The addresses not yet taken.
    Ready(std::vec::IntoIter<IpAddr>),
    /// The lookup failed.
    Failed(ErrorCode),
    /// An outside lookup in flight.
    Pending(tokio::task::JoinHandle<Result<Vec<IpAddr>, ErrorCode>>),
}

impl ResolveAddressStream {
    /// Takes the outside lookup's result once it is there.
    fn settle(&mut self) {
        if let ResolveAddressStream::Pending(handle) = self
            && let Some(result) = handle.now_or_never()
        {
            *self = match result {
                Ok(Ok(addrs)) => ResolveAddressStream::Ready(addrs.into_iter()),
                Ok(Err(code)) => ResolveAddressStream::Failed(code),
                Err(_) => ResolveAddressStream::Failed(ErrorCode::PermanentResolverFailure),
            };
        }
    }
}

impl Drop for ResolveAddressStream {
    fn drop(&mut self) {
        if let ResolveAddressStream::Pending(handle) = self {
            handle.abort();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {
        if let ResolveAddressStream::Pending(handle) = self {
            let result = handle.await;
            *self = match result {
                Ok(Ok(addrs)) => ResolveAddressStream::Ready(addrs.into_iter()),
                Ok(Err(code)) => ResolveAddressStream::Failed(code),
                Err(_) => ResolveAddressStream::Failed(ErrorCode::PermanentResolverFailure),
            };
        }
    }
}

/// The host's resolver, for outside names the node allows.
async fn outside(name: String) -> Result<Vec<IpAddr>, ErrorCode> {
    let addrs = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map_err(|e| {
            tracing::debug!(%name, error = %e, "outside name lookup failed");
            ErrorCode::NameUnresolvable
        })?;
    let addrs: Vec<IpAddr> = addrs.map(|a| a.ip().to_canonical()).collect();
    if addrs.is_empty() {
        return Err(ErrorCode::NameUnresolvable);
    }
    Ok(addrs)
}

impl ip_name_lookup::Host for PodTcpView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        // The network resource is the capability to look names up.
        self.inner.table.get(&network)?;
        let stream = match self.pod.cluster.answer(&name, self.pod.network.pod_ip) {
            Answer::Addresses(addrs) => ResolveAddressStream::Ready(addrs.into_iter()),
            Answer::Failed(code) => return Err(code.into()),
            Answer::Outside(name) if self.pod.cluster.allow_external_dns => {
                ResolveAddressStream::Pending(tokio::spawn(outside(name)))
            }
            Answer::Outside(name) => {
                tracing::debug!(
                    %name,
                    "outside name refused: the node resolves cluster names only \
                     (wasmkube node --allow-external-dns lets pods resolve others)"
                );
                return Err(ErrorCode::PermanentResolverFailure.into());
            }
        };
        Ok(self.inner.table.push(stream)?)
    }
}

impl HostResolveAddressStream for PodTcpView<'_> {
    fn resolve_next_address(
        &mut self,
        this: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let stream = self.inner.table.get_mut(&this)?;
        stream.settle();
        match stream {
            ResolveAddressStream::Ready(addrs) => Ok(addrs.next().map(IpAddress::from)),
            ResolveAddressStream::Failed(code) => Err((*code).into()),
            ResolveAddressStream::Pending(_) => Err(ErrorCode::WouldBlock.into()),
        }
    }

    fn subscribe(
        &mut self,
        this: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.inner.table, this)
    }

    fn drop(&mut self, this: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.inner.table.delete(this)?;
        Ok(())
    }
}

/// Shadows `wasi:sockets/ip-name-lookup` with cluster DNS.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    getter: fn(&mut T) -> PodTcpView<'_>,
) -> wasmtime::Result<()> {
    ip_name_lookup::add_to_linker::<T, PodTcp>(linker, getter)
}

#[cfg(test)]
mod tests {
    use super::super::services::{ServiceEntry, VirtualPort};
    use super::*;

    const POD: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 5);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

    fn cluster() -> PodCluster {
        let services = ServiceTable::default();
        services.set(
            "default/web",
            Some(ServiceEntry {
                ports: vec![VirtualPort::default()],
                affinity: None,
                names: vec![("web.default.svc.cluster.local".into(), vec![VIP])],
                alias: None,
            }),
        );
        services.set(
            "default/db",
            Some(ServiceEntry {
                names: vec![
                    (
                        "db.default.svc.cluster.local".into(),
                        vec![Ipv4Addr::new(127, 64, 0, 7), Ipv4Addr::new(127, 64, 1, 7)],
                    ),
                    (
                        "db-0.db.default.svc.cluster.local".into(),
                        vec![Ipv4Addr::new(127, 64, 0, 7)],
                    ),
                ],
                ..ServiceEntry::default()
            }),
        );
        PodCluster {
            services: Arc::new(services),
            namespace: "default".into(),
            hostname: "toolbox".into(),
            subdomain: None,
            allow_external_dns: false,
        }
    }

    fn addrs(ips: &[Ipv4Addr]) -> Answer {
        Answer::Addresses(ips.iter().copied().map(IpAddr::V4).collect())
    }

    #[test]
    fn service_names_resolve_with_the_search_path() {
        let c = cluster();
        for name in [
            "web",
            "web.default",
            "web.default.svc",
            "web.default.svc.cluster.local",
            "web.default.svc.cluster.local.",
            "WEB.Default",
        ] {
            assert_eq!(c.answer(name, POD), addrs(&[VIP]), "{name}");
        }
        let other = PodCluster {
            namespace: "shop".into(),
            ..cluster()
        };
        assert_eq!(
            other.answer("web", POD),
            Answer::Failed(ErrorCode::NameUnresolvable),
            "another namespace's service needs its namespace"
        );
        assert_eq!(other.answer("web.default", POD), addrs(&[VIP]));
    }

    #[test]
    fn headless_services_and_statefulset_pods_answer_with_pod_ips() {
        let c = cluster();
        assert_eq!(
            c.answer("db", POD),
            addrs(&[Ipv4Addr::new(127, 64, 0, 7), Ipv4Addr::new(127, 64, 1, 7)])
        );
        assert_eq!(
            c.answer("db-0.db.default.svc.cluster.local", POD),
            addrs(&[Ipv4Addr::new(127, 64, 0, 7)])
        );
        assert_eq!(
            c.answer("db-0.db", POD),
            addrs(&[Ipv4Addr::new(127, 64, 0, 7)])
        );
    }

    #[test]
    fn the_pod_knows_itself_localhost_and_dashed_pod_names() {
        let mut c = cluster();
        assert_eq!(c.answer("toolbox", POD), addrs(&[POD]));
        assert_eq!(c.answer("localhost", POD), addrs(&[Ipv4Addr::LOCALHOST]));
        assert_eq!(
            c.answer("127-64-3-4.default.pod.cluster.local", POD),
            addrs(&[Ipv4Addr::new(127, 64, 3, 4)])
        );
        c.subdomain = Some("db".into());
        assert_eq!(
            c.answer("toolbox.db.default.svc.cluster.local", POD),
            addrs(&[POD])
        );
        assert_eq!(
            c.answer("10.1.2.3", POD),
            addrs(&[Ipv4Addr::new(10, 1, 2, 3)])
        );
    }

    #[test]
    fn external_names_are_aliases_followed_inside_and_out() {
        let c = cluster();
        c.services.set(
            "default/front",
            Some(ServiceEntry {
                alias: Some((
                    "front.default.svc.cluster.local".into(),
                    "web.default.svc.cluster.local".into(),
                )),
                ..ServiceEntry::default()
            }),
        );
        c.services.set(
            "default/search",
            Some(ServiceEntry {
                alias: Some((
                    "search.default.svc.cluster.local".into(),
                    "example.com".into(),
                )),
                ..ServiceEntry::default()
            }),
        );
        c.services.set(
            "default/loop",
            Some(ServiceEntry {
                alias: Some((
                    "loop.default.svc.cluster.local".into(),
                    "loop.default.svc.cluster.local".into(),
                )),
                ..ServiceEntry::default()
            }),
        );
        assert_eq!(c.answer("front", POD), addrs(&[VIP]));
        assert_eq!(
            c.answer("search", POD),
            Answer::Outside("example.com".into())
        );
        assert_eq!(
            c.answer("loop", POD),
            Answer::Failed(ErrorCode::PermanentResolverFailure)
        );
    }

    #[test]
    fn unknown_cluster_names_fail_and_outside_names_are_told_apart() {
        let c = cluster();
        assert_eq!(
            c.answer("nope.default.svc.cluster.local", POD),
            Answer::Failed(ErrorCode::NameUnresolvable)
        );
        assert_eq!(
            c.answer("example.com", POD),
            Answer::Outside("example.com".into())
        );
        assert_eq!(
            c.answer("bad name", POD),
            Answer::Failed(ErrorCode::InvalidArgument)
        );
        assert_eq!(
            c.answer(&"a.".repeat(200), POD),
            Answer::Failed(ErrorCode::InvalidArgument)
        );
    }
}
