//! `wasi:http` handler containers: components that export `wasi:http/incoming-handler`
//! instead of `wasi:cli/run` (ARCHITECTURE D6).
//!
//! The node serves them: it listens on the pod IP at the container's HTTP port (the first
//! `containerPort`, else `PORT`, else 8080; low ports mapped like any pod socket), speaks
//! HTTP/1.1 with hyper, and runs one fresh instance per request with the container's env,
//! filesystem, memory limit and CPU share. A request whose instance traps gets a 500 and a
//! line on the container's stderr; the container lives on. Drain (pod termination) stops
//! accepting and lets requests in flight finish: the container then exits 0, like a server
//! on SIGTERM. Outgoing `wasi:http` requests are refused (`HTTP-request-denied`): egress
//! comes with the services issue.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::task::JoinSet;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpHooks};

use super::cpu::{CpuMeter, Metered};
use super::exit::Exit;
use super::instance::{ComponentState, ContainerSpec, new_store, wasi_builder};
use super::limits::ContainerLimiter;
use super::net::PodSockets;
use super::output::OutputSink;

/// How long requests in flight may take after the listener closed, before the container
/// exits anyway (the stop token, at the end of the grace period, still wins).
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// `wasi:http` hooks that refuse outgoing requests.
#[derive(Debug, Default)]
pub(crate) struct NoOutgoing;

impl WasiHttpHooks for NoOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// What every request of one container shares.
struct Handler {
    pre: ProxyPre<ComponentState>,
    spec: ContainerSpec,
    limit: u64,
}

/// Serves a handler component until stopped or drained; returns how the container ended.
pub(crate) async fn serve(pre: ProxyPre<ComponentState>, spec: ContainerSpec, limit: u64) -> Exit {
    let network = spec.network;
    let port = spec.http_port;
    let addr = SocketAddr::from((network.pod_ip, network.host_port(network.pod_ip, port)));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            let message = format!("wasi:http: cannot listen on {}:{port}: {e}", network.pod_ip);
            log_line(&spec.stderr, &message);
            return Exit::failed(1, message);
        }
    };
    spec.instantiated.cancel();
    log_line(
        &spec.stdout,
        &format!(
            "wasi:http handler {} listening on {}:{port}",
            spec.image.name, network.pod_ip
        ),
    );
    let (stop, drain) = (spec.stop.clone(), spec.drain.clone());
    let handler = Arc::new(Handler { pre, spec, limit });
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Exit::killed(),
            () = drain.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let handler = handler.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler.handle(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Draining: the listener closes; requests in flight finish.
    drop(listener);
    let finish = async { while connections.join_next().await.is_some() {} };
    tokio::select! {
        () = stop.cancelled() => Exit::killed(),
        _ = tokio::time::timeout(DRAIN_WAIT, finish) => Exit::completed(),
    }
}

impl Handler {
    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        match self.run(req).await {
            Ok(response) => response,
            Err(message) => {
                log_line(
                    &self.spec.stderr,
                    &format!("wasi:http handler failed: {message}"),
                );
                error_response(500, "the handler failed; see the container's log\n")
            }
        }
    }

    async fn run(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, String> {
        let spec = &self.spec;
        let wasi = wasi_builder(spec).map_err(|e| e.to_string())?.build();
        let state = ComponentState::new(
            wasi,
            PodSockets::new(
                spec.network,
                spec.cluster.clone(),
                spec.drain.clone(),
                spec.usage.clone(),
            ),
            ContainerLimiter::new(self.limit, spec.usage.clone()),
        );
        let meter = CpuMeter::new(spec.cpu, spec.usage.clone());
        let mut store = new_store(self.pre.engine(), state, &spec.stop, &meter);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (request, out) = {
            let mut view = wasmtime_wasi_http::WasiHttpView::http(store.data_mut());
            let request = view
                .new_incoming_request(Scheme::Http, req)
                .map_err(|e| format!("{e:#}"))?;
            let out = view
                .new_response_outparam(sender)
                .map_err(|e| format!("{e:#}"))?;
            (request, out)
        };
        let pre = self.pre.clone();
        let stop = spec.stop.clone();
        // The instance runs beside the response: it may keep writing the body after it set
        // the head.
        let task = tokio::spawn(Metered::new(
            async move {
                let run = async {
                    let proxy = pre.instantiate_async(&mut store).await?;
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, request, out)
                        .await
                };
                tokio::select! {
                    () = stop.cancelled() => Err(wasmtime::format_err!("stopped by the node agent")),
                    result = run => result.map_err(|e| {
                        if store.data().oom() {
                            wasmtime::format_err!("out of memory (limit {} bytes): {e:#}", store.data().limit())
                        } else {
                            e
                        }
                    }),
                }
            },
            meter,
        ));
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(format!("the handler answered with an error: {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err("the handler returned without setting a response".into()),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

fn error_response(status: u16, text: &'static str) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}

/// The HTTP context of a component container's store.
pub(crate) fn new_ctx() -> (WasiHttpCtx, NoOutgoing) {
    (WasiHttpCtx::new(), NoOutgoing)
}

/// Writes a line to a container's log; a log that cannot be written loses the line only.
fn log_line(sink: &Arc<dyn OutputSink>, line: &str) {
    let _ = sink.write(format!("{line}\n").as_bytes());
}
