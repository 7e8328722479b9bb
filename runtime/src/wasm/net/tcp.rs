//! The shadowed `wasi:sockets/tcp` and `tcp-create-socket`: every call delegates to
//! wasmtime-wasi after the address rewriting of [`super::PodNetwork`] (see mod.rs).

use std::future::Future as _;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::{self, HostTcpSocket, ShutdownType, TcpSocket};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, SocketError, SocketResult};

use super::counted::count_streams;
use super::{MAX_SOCKETS_PER_CONTAINER, PodTcpView};

/// A second handle to a resource the guest lent us, for nested calls into wasmtime-wasi.
pub(super) fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

impl PodTcpView<'_> {
    fn is_v6(&self, socket: &Resource<TcpSocket>) -> bool {
        self.pod.v6.contains(&socket.rep())
    }

    /// Binds an unbound socket to `podIP:0` before it connects to a loopback address.
    fn bind_to_pod_ip(
        &mut self,
        this: &Resource<TcpSocket>,
        network: &Resource<Network>,
    ) -> SocketResult<()> {
        if HostTcpSocket::local_address(&mut self.inner, borrow(this)).is_ok() {
            return Ok(()); // bound by the guest already
        }
        let local = SocketAddr::from((self.pod.network.pod_ip, 0)).into();
        {
            let bind =
                HostTcpSocket::start_bind(&mut self.inner, borrow(this), borrow(network), local);
            let mut bind = std::pin::pin!(bind);
            match bind.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(result) => result?,
                // The address check is synchronous and bind(2) does not block: never here.
                Poll::Pending => return Err(ErrorCode::WouldBlock.into()),
            }
        }
        HostTcpSocket::finish_bind(&mut self.inner, borrow(this))
    }
}

impl tcp_create_socket::Host for PodTcpView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        if self.pod.open >= MAX_SOCKETS_PER_CONTAINER {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        let socket =
            tcp_create_socket::Host::create_tcp_socket(&mut self.inner, IpAddressFamily::Ipv4)?;
        self.pod.open += 1;
        if matches!(family, IpAddressFamily::Ipv6) {
            self.pod.v6.insert(socket.rep());
        }
        Ok(socket)
    }
}

impl tcp::Host for PodTcpView<'_> {}

impl network::Host for PodTcpView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.inner, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.inner, err)
    }
}

impl network::HostNetwork for PodTcpView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, this)
    }
}

impl HostTcpSocket for PodTcpView<'_> {
    async fn start_bind(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let v6 = self.is_v6(&this);
        let local =
            self.pod
                .network
                .host_addr(local_address.into(), v6, ErrorCode::AddressNotBindable)?;
        HostTcpSocket::start_bind(&mut self.inner, this, network, local.into()).await
    }

    fn finish_bind(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        HostTcpSocket::finish_bind(&mut self.inner, this)
    }

    fn start_connect(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<Network>,
        remote_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let v6 = self.is_v6(&this);
        let remote = self.pod.connect_addr(remote_address.into(), v6)?;
        if remote.ip().is_loopback() {
            self.bind_to_pod_ip(&this, &network)?;
        }
        HostTcpSocket::start_connect(&mut self.inner, this, network, remote.into())
    }

    fn finish_connect(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let (input, output) = HostTcpSocket::finish_connect(&mut self.inner, this)?;
        count_streams(self.inner.table, &input, &output, &self.pod.usage)?;
        Ok((input, output))
    }

    async fn start_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        HostTcpSocket::start_listen(&mut self.inner, this).await
    }

    fn finish_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        HostTcpSocket::finish_listen(&mut self.inner, borrow(&this))?;
        if let Ok(addr) = HostTcpSocket::local_address(&mut self.inner, this) {
            self.pod
                .listening
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(addr.into());
        }
        Ok(())
    }

    fn accept(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        if self.pod.drain.is_cancelled() {
            // The pod is terminating: its listeners are closed (what accept(2) on a closed
            // socket would say).
            return Err(ErrorCode::InvalidState.into());
        }
        if self.pod.open >= MAX_SOCKETS_PER_CONTAINER {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        let v6 = self.is_v6(&this);
        let accepted = HostTcpSocket::accept(&mut self.inner, this)?;
        count_streams(self.inner.table, &accepted.1, &accepted.2, &self.pod.usage)?;
        self.pod.open += 1;
        if v6 {
            self.pod.v6.insert(accepted.0.rep());
        }
        Ok(accepted)
    }

    fn local_address(&mut self, this: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        let v6 = self.is_v6(&this);
        let addr = HostTcpSocket::local_address(&mut self.inner, this)?;
        Ok(self.pod.network.guest_addr(addr.into(), v6).into())
    }

    fn remote_address(&mut self, this: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        let v6 = self.is_v6(&this);
        let addr = HostTcpSocket::remote_address(&mut self.inner, this)?;
        Ok(self.pod.network.guest_addr(addr.into(), v6).into())
    }

    fn is_listening(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        HostTcpSocket::is_listening(&mut self.inner, this)
    }

    fn address_family(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        if self.is_v6(&this) {
            return Ok(IpAddressFamily::Ipv6);
        }
        HostTcpSocket::address_family(&mut self.inner, this)
    }

    fn set_listen_backlog_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        HostTcpSocket::set_listen_backlog_size(&mut self.inner, this, value)
    }

    fn keep_alive_enabled(&mut self, this: Resource<TcpSocket>) -> SocketResult<bool> {
        HostTcpSocket::keep_alive_enabled(&mut self.inner, this)
    }

    fn set_keep_alive_enabled(
        &mut self,
        this: Resource<TcpSocket>,
        value: bool,
    ) -> SocketResult<()> {
        HostTcpSocket::set_keep_alive_enabled(&mut self.inner, this, value)
    }

    fn keep_alive_idle_time(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        HostTcpSocket::keep_alive_idle_time(&mut self.inner, this)
    }

    fn set_keep_alive_idle_time(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        HostTcpSocket::set_keep_alive_idle_time(&mut self.inner, this, value)
    }

    fn keep_alive_interval(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        HostTcpSocket::keep_alive_interval(&mut self.inner, this)
    }

    fn set_keep_alive_interval(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        HostTcpSocket::set_keep_alive_interval(&mut self.inner, this, value)
    }

    fn keep_alive_count(&mut self, this: Resource<TcpSocket>) -> SocketResult<u32> {
        HostTcpSocket::keep_alive_count(&mut self.inner, this)
    }

    fn set_keep_alive_count(&mut self, this: Resource<TcpSocket>, value: u32) -> SocketResult<()> {
        HostTcpSocket::set_keep_alive_count(&mut self.inner, this, value)
    }

    fn hop_limit(&mut self, this: Resource<TcpSocket>) -> SocketResult<u8> {
        HostTcpSocket::hop_limit(&mut self.inner, this)
    }

    fn set_hop_limit(&mut self, this: Resource<TcpSocket>, value: u8) -> SocketResult<()> {
        HostTcpSocket::set_hop_limit(&mut self.inner, this, value)
    }

    fn receive_buffer_size(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        HostTcpSocket::receive_buffer_size(&mut self.inner, this)
    }

    fn set_receive_buffer_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        HostTcpSocket::set_receive_buffer_size(&mut self.inner, this, value)
    }

    fn send_buffer_size(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        HostTcpSocket::send_buffer_size(&mut self.inner, this)
    }

    fn set_send_buffer_size(&mut self, this: Resource<TcpSocket>, value: u64) -> SocketResult<()> {
        HostTcpSocket::set_send_buffer_size(&mut self.inner, this, value)
    }

    fn subscribe(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        HostTcpSocket::subscribe(&mut self.inner, this)
    }

    fn shutdown(
        &mut self,
        this: Resource<TcpSocket>,
        shutdown_type: ShutdownType,
    ) -> SocketResult<()> {
        HostTcpSocket::shutdown(&mut self.inner, this, shutdown_type)
    }

    fn drop(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.pod.v6.remove(&this.rep());
        self.pod.open = self.pod.open.saturating_sub(1);
        HostTcpSocket::drop(&mut self.inner, this)
    }
}
