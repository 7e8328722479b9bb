//! The shadowed `wasi:sockets/udp`: the same address rewriting as TCP (mod.rs), so a UDP
//! server bound to `0.0.0.0` listens on the pod IP, `localhost` datagrams stay inside the
//! pod, datagrams to other pods leave from the pod IP, and the guest sees addresses (and
//! mapped low ports) as it used them. IPv6 UDP sockets are not rewritten (they stay real
//! IPv6 sockets, which cannot reach pod IPs).

use std::net::SocketAddr;

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpSocketAddress, Network};
use wasmtime_wasi::p2::bindings::sockets::udp::{
    self, HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, IncomingDatagram,
    IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream, UdpSocket,
};
use wasmtime_wasi::p2::{DynPollable, SocketResult};

use super::PodTcpView;

impl udp::Host for PodTcpView<'_> {}

impl HostUdpSocket for PodTcpView<'_> {
    async fn start_bind(
        &mut self,
        this: Resource<UdpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let local = self.pod.network.host_addr(
            local_address.into(),
            false,
            ErrorCode::AddressNotBindable,
        )?;
        // An implicit bind before a send or connect (wildcard, port 0) takes the pod IP, so
        // peers see the pod as the source; with external egress allowed it stays the
        // wildcard (a loopback source cannot reach the outside).
        let local = match local {
            SocketAddr::V4(a)
                if a.port() == 0 && a.ip().is_unspecified() && !self.pod.network.allow_external =>
            {
                SocketAddr::from((self.pod.network.pod_ip, 0))
            }
            other => other,
        };
        HostUdpSocket::start_bind(&mut self.inner, this, network, local.into()).await
    }

    fn finish_bind(&mut self, this: Resource<UdpSocket>) -> SocketResult<()> {
        HostUdpSocket::finish_bind(&mut self.inner, this)
    }

    async fn stream(
        &mut self,
        this: Resource<UdpSocket>,
        remote_address: Option<IpSocketAddress>,
    ) -> SocketResult<(
        Resource<IncomingDatagramStream>,
        Resource<OutgoingDatagramStream>,
    )> {
        let remote = match remote_address {
            Some(addr) => Some(
                self.pod
                    .network
                    .host_addr(addr.into(), false, ErrorCode::RemoteUnreachable)?
                    .into(),
            ),
            None => None,
        };
        HostUdpSocket::stream(&mut self.inner, this, remote).await
    }

    fn local_address(&mut self, this: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        let addr = HostUdpSocket::local_address(&mut self.inner, this)?;
        Ok(self.pod.network.guest_addr(addr.into(), false).into())
    }

    fn remote_address(&mut self, this: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        let addr = HostUdpSocket::remote_address(&mut self.inner, this)?;
        Ok(self.pod.network.guest_addr(addr.into(), false).into())
    }

    fn address_family(
        &mut self,
        this: Resource<UdpSocket>,
    ) -> wasmtime::Result<wasmtime_wasi::p2::bindings::sockets::network::IpAddressFamily> {
        HostUdpSocket::address_family(&mut self.inner, this)
    }

    fn unicast_hop_limit(&mut self, this: Resource<UdpSocket>) -> SocketResult<u8> {
        HostUdpSocket::unicast_hop_limit(&mut self.inner, this)
    }

    fn set_unicast_hop_limit(&mut self, this: Resource<UdpSocket>, value: u8) -> SocketResult<()> {
        HostUdpSocket::set_unicast_hop_limit(&mut self.inner, this, value)
    }

    fn receive_buffer_size(&mut self, this: Resource<UdpSocket>) -> SocketResult<u64> {
        HostUdpSocket::receive_buffer_size(&mut self.inner, this)
    }

    fn set_receive_buffer_size(
        &mut self,
        this: Resource<UdpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        HostUdpSocket::set_receive_buffer_size(&mut self.inner, this, value)
    }

    fn send_buffer_size(&mut self, this: Resource<UdpSocket>) -> SocketResult<u64> {
        HostUdpSocket::send_buffer_size(&mut self.inner, this)
    }

    fn set_send_buffer_size(&mut self, this: Resource<UdpSocket>, value: u64) -> SocketResult<()> {
        HostUdpSocket::set_send_buffer_size(&mut self.inner, this, value)
    }

    fn subscribe(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        HostUdpSocket::subscribe(&mut self.inner, this)
    }

    fn drop(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<()> {
        HostUdpSocket::drop(&mut self.inner, this)
    }
}

impl HostIncomingDatagramStream for PodTcpView<'_> {
    fn receive(
        &mut self,
        this: Resource<IncomingDatagramStream>,
        max_results: u64,
    ) -> SocketResult<Vec<IncomingDatagram>> {
        let mut datagrams =
            HostIncomingDatagramStream::receive(&mut self.inner, this, max_results)?;
        for d in &mut datagrams {
            self.pod.usage.add_rx(d.data.len());
            let addr: SocketAddr = d.remote_address.into();
            d.remote_address = self.pod.network.guest_addr(addr, false).into();
        }
        Ok(datagrams)
    }

    fn subscribe(
        &mut self,
        this: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostIncomingDatagramStream::subscribe(&mut self.inner, this)
    }

    fn drop(&mut self, this: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        HostIncomingDatagramStream::drop(&mut self.inner, this)
    }
}

impl HostOutgoingDatagramStream for PodTcpView<'_> {
    fn check_send(&mut self, this: Resource<OutgoingDatagramStream>) -> SocketResult<u64> {
        HostOutgoingDatagramStream::check_send(&mut self.inner, this)
    }

    fn send(
        &mut self,
        this: Resource<OutgoingDatagramStream>,
        datagrams: Vec<OutgoingDatagram>,
    ) -> SocketResult<u64> {
        let mut rewritten = Vec::with_capacity(datagrams.len());
        for mut d in datagrams {
            if let Some(addr) = d.remote_address {
                let host =
                    self.pod
                        .network
                        .host_addr(addr.into(), false, ErrorCode::RemoteUnreachable)?;
                d.remote_address = Some(host.into());
            }
            rewritten.push(d);
        }
        let sizes: Vec<usize> = rewritten.iter().map(|d| d.data.len()).collect();
        let sent = HostOutgoingDatagramStream::send(&mut self.inner, this, rewritten)?;
        // `send` reports how many datagrams (from the front) went out.
        let bytes: usize = sizes.iter().take(sent as usize).sum();
        self.pod.usage.add_tx(bytes);
        Ok(sent)
    }

    fn subscribe(
        &mut self,
        this: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostOutgoingDatagramStream::subscribe(&mut self.inner, this)
    }

    async fn drop(&mut self, this: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        HostOutgoingDatagramStream::drop(&mut self.inner, this).await
    }
}
