//! The pod network (ARCHITECTURE D7): a user-space network namespace made of one loopback
//! address per pod and a rewriting `wasi:sockets/tcp`.
//!
//! Every pod owns an IP in `127.64.0.0/10` (all of `127/8` routes to `lo` on Linux). The
//! linker shadows wasmtime-wasi's `wasi:sockets/tcp` and `tcp-create-socket` with
//! [`PodTcpView`], which delegates every call after rewriting addresses:
//!
//! - bind and connect to `0.0.0.0`, `127.0.0.1` (any loopback address outside the pod range),
//!   `::` or `::1` become the pod IP, so two pods both listen on `:80` and the containers of
//!   one pod meet on `localhost`;
//! - a socket connecting to a loopback address is first bound to `podIP:0`, so peers see the
//!   pod IP as the source (the kernel would pick 127.0.0.1);
//! - guest IPv6 sockets are backed by IPv4 host sockets: wasmtime-wasi forces `V6ONLY` and
//!   refuses v4-mapped addresses, so a guest listening on `[::]:80` would otherwise be
//!   unreachable at the pod IP. Addresses are translated both ways (`::ffff:a.b.c.d` for the
//!   guest).
//!
//! [`PodNetwork::allows`] is the `socket_addr_check` policy, applied to the rewritten address:
//! a container binds and listens only on its pod IP and connects only to the pod range
//! (plus outside addresses when allowed), never to other host ports.
//!
//! `wasi:sockets/udp` gets the same rewriting (udp.rs). Bytes in and out of every TCP stream
//! and UDP datagram are counted per container (counted.rs). Pod ports below 1024 are mapped to
//! `61000 + port` on the host when the agent may not bind them ([`PodNetwork::map_low_ports`]).
//!
//! Services: a TCP connect to `ClusterIP:port` goes to one ready endpoint of the node's
//! [`ServiceTable`] (services.rs), and `wasi:sockets/ip-name-lookup` is cluster DNS (dns.rs).
//! Both see the pod through its [`PodCluster`].

mod counted;
mod dns;
mod services;
mod tcp;
mod udp;

pub use dns::PodCluster;
pub use services::{Route, ServiceEntry, ServiceTable, VirtualPort};

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
use wasmtime_wasi::p2::bindings::sockets::tcp as tcp_bindings;
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp as udp_bindings};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0-32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix.min(32)))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

/// Where pod IPs live: `127.64.0.0/10`, split into one /16 per node.
pub const POD_RANGE: Ipv4Cidr = Ipv4Cidr {
    addr: Ipv4Addr::new(127, 64, 0, 0),
    prefix: 10,
};

/// The network identity and egress policy of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodNetwork {
    /// The pod's IP; `localhost` inside the pod.
    pub pod_ip: Ipv4Addr,
    /// Whether containers may connect to addresses outside the host (non-loopback). Off by
    /// default: the host's own non-loopback addresses would expose host ports.
    pub allow_external: bool,
    /// Whether pod ports below 1024 live at [`MAPPED_PORT_BASE`]` + port` on the host: the
    /// agent may not bind them (`ip_unprivileged_port_start`, not root). Guests never see
    /// the difference; only host-side clients (`curl` on the node) use the mapped port.
    pub map_low_ports: bool,
}

/// Where pod ports below 1024 are mapped when the agent may not bind them: port `p` of a
/// pod IP is `61000 + p` on the host, above Linux's ephemeral range (32768-60999), so the
/// kernel never hands one out as a source port.
pub const MAPPED_PORT_BASE: u16 = 61000;

/// Whether this process may bind ports below 1024: reads `ip_unprivileged_port_start` and,
/// when it is above 1, tries to bind port 1 on 127.0.0.1 (a permission error means no; a
/// port in use means yes). Returns the answer and the value read.
pub fn low_ports_bindable() -> (bool, Option<u16>) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok());
    if start.is_some_and(|s| s <= 1) {
        return (true, start);
    }
    let bindable = match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 1)) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::PermissionDenied,
    };
    (bindable, start)
}

impl PodNetwork {
    /// Whether a (rewritten) socket address may be used this way: the `socket_addr_check`.
    pub fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        let ip = match addr.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        };
        match usage {
            // Port 0 on the wildcard is the implicit bind of a connect to the outside world:
            // an ephemeral port, which cannot take a port another pod listens on.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                ip == Some(self.pod_ip) || (addr.ip().is_unspecified() && addr.port() == 0)
            }
            SocketAddrUse::TcpListen => ip == Some(self.pod_ip),
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => match ip {
                Some(ip) => {
                    ip == self.pod_ip
                        || POD_RANGE.contains(ip)
                        || (self.allow_external && is_external_v4(ip))
                }
                None => self.allow_external && is_external_v6(addr.ip()),
            },
            SocketAddrUse::TcpAccept | SocketAddrUse::UdpReceive => true,
        }
    }

    /// The host address for a guest IPv4 address: the pod's view of loopback and the
    /// wildcard is its own IP.
    fn host_v4(&self, ip: Ipv4Addr) -> Ipv4Addr {
        if ip.is_unspecified() || (ip.is_loopback() && !POD_RANGE.contains(ip)) {
            self.pod_ip
        } else {
            ip
        }
    }

    /// The host port of `port` at pod address `ip`.
    pub fn host_port(&self, ip: Ipv4Addr, port: u16) -> u16 {
        if self.map_low_ports && (1..1024).contains(&port) && POD_RANGE.contains(ip) {
            MAPPED_PORT_BASE + port
        } else {
            port
        }
    }

    /// An address as the guest should see it: mapped ports back to theirs, and IPv4 as
    /// `::ffff:a.b.c.d` on a socket it created as IPv6.
    fn guest_addr(&self, addr: SocketAddr, v6: bool) -> SocketAddr {
        let addr = match addr {
            SocketAddr::V4(a)
                if self.map_low_ports
                    && POD_RANGE.contains(*a.ip())
                    && (MAPPED_PORT_BASE + 1..MAPPED_PORT_BASE + 1024).contains(&a.port()) =>
            {
                SocketAddr::V4(SocketAddrV4::new(*a.ip(), a.port() - MAPPED_PORT_BASE))
            }
            other => other,
        };
        to_guest(addr, v6)
    }

    /// Rewrites an address a guest passed to bind or connect. `v6` says the guest created
    /// the socket as IPv6 (backed by an IPv4 host socket); `unsupported` is the error for
    /// real IPv6 addresses, which such a socket cannot reach.
    fn host_addr(
        &self,
        addr: SocketAddr,
        v6: bool,
        unsupported: ErrorCode,
    ) -> Result<SocketAddr, ErrorCode> {
        match (addr, v6) {
            (SocketAddr::V4(a), false) => {
                let ip = self.host_v4(*a.ip());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    self.host_port(ip, a.port()),
                )))
            }
            // Wrong family for the socket: let wasmtime-wasi refuse it as it always does.
            (SocketAddr::V6(_), false) => Ok(addr),
            (SocketAddr::V4(_), true) => Err(ErrorCode::InvalidArgument),
            (SocketAddr::V6(a), true) => {
                let ip = if a.ip().is_unspecified() || a.ip().is_loopback() {
                    self.pod_ip
                } else if let Some(v4) = a.ip().to_ipv4_mapped() {
                    self.host_v4(v4)
                } else {
                    return Err(unsupported);
                };
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    self.host_port(ip, a.port()),
                )))
            }
        }
    }
}

fn is_external_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_link_local())
}

fn is_external_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()))
}

/// An address as the guest should see it on a socket it created as IPv6.
fn to_guest(addr: SocketAddr, v6: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if v6 => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        _ => addr,
    }
}

/// Per-container socket state kept next to the WASI context in the store.
#[derive(Debug)]
pub(crate) struct PodSockets {
    pub(crate) network: PodNetwork,
    /// The node's Services and the pod's names.
    pub(crate) cluster: PodCluster,
    /// Table handles of sockets the guest created as IPv6 (backed by IPv4 host sockets).
    v6: HashSet<u32>,
    /// Cancelled when the pod terminates: listening sockets stop accepting.
    drain: CancellationToken,
    /// Host addresses the container listens on.
    listening: Listening,
    /// TCP sockets the container holds (created or accepted, not yet dropped).
    open: usize,
    /// Where the container's network bytes are counted.
    pub(crate) usage: Arc<crate::wasm::Usage>,
}

/// The most TCP sockets one container may hold at once: a socket flood fails in the guest
/// (`new-socket-limit`) before it exhausts the agent's file descriptors, which every pod on
/// the node shares.
pub const MAX_SOCKETS_PER_CONTAINER: usize = 4096;

/// The host addresses a container listens on, shared with [`wake_on_drain`].
pub(crate) type Listening = Arc<Mutex<Vec<SocketAddr>>>;

impl PodSockets {
    pub(crate) fn new(
        network: PodNetwork,
        cluster: PodCluster,
        drain: CancellationToken,
        usage: Arc<crate::wasm::Usage>,
    ) -> PodSockets {
        PodSockets {
            network,
            cluster,
            v6: HashSet::new(),
            drain,
            listening: Listening::default(),
            open: 0,
            usage,
        }
    }

    pub(crate) fn listening(&self) -> Listening {
        self.listening.clone()
    }

    /// The host address a guest connect to `addr` goes to: a Service port is balanced to one
    /// of its ready endpoints (which skip the localhost rewrite), anything else is rewritten
    /// as for bind.
    fn connect_addr(&self, addr: SocketAddr, v6: bool) -> Result<SocketAddr, ErrorCode> {
        let guest_v4 = match addr {
            SocketAddr::V4(a) if !v6 => Some(a),
            SocketAddr::V6(a) if v6 => a
                .ip()
                .to_ipv4_mapped()
                .map(|ip| SocketAddrV4::new(ip, a.port())),
            _ => None,
        };
        if let Some(target) = guest_v4 {
            match self.cluster.services.route(target, self.network.pod_ip) {
                Route::Direct => {}
                Route::Endpoint(ep) => {
                    let port = self.network.host_port(*ep.ip(), ep.port());
                    return Ok(SocketAddr::V4(SocketAddrV4::new(*ep.ip(), port)));
                }
                Route::Refused => return Err(ErrorCode::ConnectionRefused),
            }
        }
        self.network
            .host_addr(addr, v6, ErrorCode::RemoteUnreachable)
    }
}

/// Once `drain` is cancelled, wakes every listener of the container with a connection of
/// our own, so a guest waiting in `poll` calls `accept` and learns the socket is closed
/// (WASI has no signals; this is its SIGTERM). Never completes.
pub(crate) async fn wake_on_drain(
    drain: CancellationToken,
    listening: Listening,
) -> std::convert::Infallible {
    drain.cancelled().await;
    let addrs = listening.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for addr in addrs {
        // Dropped at once; the guest never accepts it.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
    }
    std::future::pending().await
}

/// The [`HasData`] marker of the shadowed `wasi:sockets/tcp`.
pub(crate) struct PodTcp;

impl HasData for PodTcp {
    type Data<'a> = PodTcpView<'a>;
}

/// What the shadowed TCP interfaces see of the store: wasmtime-wasi's sockets view, which
/// does the real work, and the pod's state.
pub(crate) struct PodTcpView<'a> {
    pub(crate) inner: WasiSocketsCtxView<'a>,
    pub(crate) pod: &'a mut PodSockets,
}

/// Shadows `wasi:sockets/tcp`, `tcp-create-socket`, `udp` and `ip-name-lookup` in a linker that already has
/// wasmtime-wasi's p2 interfaces.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> PodTcpView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    tcp_bindings::add_to_linker::<T, PodTcp>(linker, getter)?;
    tcp_create_socket::add_to_linker::<T, PodTcp>(linker, getter)?;
    udp_bindings::add_to_linker::<T, PodTcp>(linker, getter)?;
    dns::add_to_linker(linker, getter)?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const A: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(127, 64, 0, 3);

    fn pod() -> PodNetwork {
        PodNetwork {
            pod_ip: A,
            allow_external: false,
            map_low_ports: false,
        }
    }

    #[test]
    fn low_ports_are_mapped_both_ways_when_asked() {
        let p = PodNetwork {
            map_low_ports: true,
            ..pod()
        };
        let e = ErrorCode::AddressNotBindable;
        let any = v4(Ipv4Addr::UNSPECIFIED, 80);
        assert_eq!(p.host_addr(any, false, e), Ok(v4(A, 61080)));
        assert_eq!(p.host_addr(v4(B, 443), false, e), Ok(v4(B, 61443)));
        assert_eq!(p.host_addr(v4(B, 8080), false, e), Ok(v4(B, 8080)));
        let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 80));
        assert_eq!(p.host_addr(any6, true, e), Ok(v4(A, 61080)));
        assert_eq!(p.guest_addr(v4(A, 61080), false), v4(A, 80));
        assert_eq!(p.guest_addr(v4(A, 8080), false), v4(A, 8080));
        assert_eq!(
            p.guest_addr(v4(B, 61080), true),
            SocketAddr::from((B.to_ipv6_mapped(), 80))
        );
        assert_eq!(
            pod().host_addr(any, false, e),
            Ok(v4(A, 80)),
            "off by default"
        );
        assert_eq!(pod().guest_addr(v4(A, 61080), false), v4(A, 61080));
        let outside = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(
            p.host_port(outside, 80),
            80,
            "only pod addresses are mapped"
        );
    }

    fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn cidr_contains() {
        assert!(POD_RANGE.contains(Ipv4Addr::new(127, 64, 0, 1)));
        assert!(POD_RANGE.contains(Ipv4Addr::new(127, 127, 255, 255)));
        assert!(!POD_RANGE.contains(Ipv4Addr::new(127, 128, 0, 0)));
        assert!(!POD_RANGE.contains(Ipv4Addr::LOCALHOST));
        assert!(
            Ipv4Cidr {
                addr: Ipv4Addr::UNSPECIFIED,
                prefix: 0
            }
            .contains(Ipv4Addr::new(8, 8, 8, 8))
        );
    }

    #[test]
    fn wildcard_and_localhost_become_the_pod_ip() {
        let p = pod();
        let e = ErrorCode::AddressNotBindable;
        assert_eq!(
            p.host_addr(v4(Ipv4Addr::UNSPECIFIED, 80), false, e),
            Ok(v4(A, 80))
        );
        assert_eq!(
            p.host_addr(v4(Ipv4Addr::LOCALHOST, 80), false, e),
            Ok(v4(A, 80))
        );
        assert_eq!(
            p.host_addr(v4(Ipv4Addr::new(127, 0, 0, 53), 53), false, e),
            Ok(v4(A, 53))
        );
        assert_eq!(
            p.host_addr(v4(B, 80), false, e),
            Ok(v4(B, 80)),
            "other pods stay themselves"
        );
    }

    #[test]
    fn ipv6_sockets_are_backed_by_ipv4() {
        let p = pod();
        let e = ErrorCode::RemoteUnreachable;
        let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 80));
        let lo6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 8080));
        let mapped = SocketAddr::from((B.to_ipv6_mapped(), 80));
        assert_eq!(p.host_addr(any6, true, e), Ok(v4(A, 80)));
        assert_eq!(p.host_addr(lo6, true, e), Ok(v4(A, 8080)));
        assert_eq!(p.host_addr(mapped, true, e), Ok(v4(B, 80)));
        let real6 = SocketAddr::from(("2001:db8::1".parse::<Ipv6Addr>().unwrap(), 80));
        assert_eq!(
            p.host_addr(real6, true, e),
            Err(ErrorCode::RemoteUnreachable)
        );
        assert_eq!(
            p.host_addr(v4(A, 80), true, e),
            Err(ErrorCode::InvalidArgument)
        );
        assert_eq!(
            to_guest(v4(A, 80), true),
            SocketAddr::from((A.to_ipv6_mapped(), 80))
        );
        assert_eq!(to_guest(v4(A, 80), false), v4(A, 80));
    }

    #[test]
    fn binds_only_the_own_pod_ip() {
        let p = pod();
        assert!(p.allows(v4(A, 80), SocketAddrUse::TcpBind));
        assert!(p.allows(v4(A, 80), SocketAddrUse::TcpListen));
        assert!(
            !p.allows(v4(B, 80), SocketAddrUse::TcpBind),
            "another pod's IP"
        );
        assert!(!p.allows(v4(Ipv4Addr::UNSPECIFIED, 80), SocketAddrUse::TcpBind));
        assert!(
            p.allows(v4(Ipv4Addr::UNSPECIFIED, 0), SocketAddrUse::TcpBind),
            "implicit bind"
        );
        assert!(!p.allows(v4(Ipv4Addr::UNSPECIFIED, 0), SocketAddrUse::TcpListen));
    }

    #[test]
    fn connects_only_inside_the_cluster_unless_external_is_allowed() {
        let p = pod();
        assert!(p.allows(v4(A, 80), SocketAddrUse::TcpConnect));
        assert!(p.allows(v4(B, 80), SocketAddrUse::TcpConnect));
        assert!(
            !p.allows(v4(Ipv4Addr::LOCALHOST, 22), SocketAddrUse::TcpConnect),
            "host port"
        );
        assert!(
            !p.allows(
                v4(Ipv4Addr::new(127, 1, 0, 1), 10250),
                SocketAddrUse::TcpConnect
            ),
            "node address"
        );
        assert!(!p.allows(
            v4(Ipv4Addr::new(192, 168, 1, 10), 80),
            SocketAddrUse::TcpConnect
        ));
        let open = PodNetwork {
            allow_external: true,
            ..p
        };
        assert!(open.allows(
            v4(Ipv4Addr::new(192, 168, 1, 10), 80),
            SocketAddrUse::TcpConnect
        ));
        assert!(!open.allows(v4(Ipv4Addr::LOCALHOST, 22), SocketAddrUse::TcpConnect));
    }
}
