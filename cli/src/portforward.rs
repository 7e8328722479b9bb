//! `port-forward`: local ports forwarded to a pod's, like `kubectl port-forward TYPE/NAME
//! [LOCAL:]REMOTE...`, through the API server's `pods/portforward` (kube-rs speaks its
//! WebSocket channel form, `v4.channel.k8s.io` with `?ports=`).
//!
//! `svc/NAME` and `deploy/NAME` are resolved here, as kubectl resolves them: a running pod
//! their selector matches (a ready one first), and for a Service each service port mapped to
//! its `targetPort` (a number, or a container port's name). Every accepted local connection
//! gets a WebSocket of its own, so one failing connection leaves the others alone.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::ListParams;
use tokio::net::{TcpListener, TcpStream};

use crate::client::Cluster;
use crate::error::Error;

/// Arguments of `port-forward`.
#[derive(clap::Args, Debug)]
pub struct PortForwardArgs {
    /// What to forward to: `POD`, `pod/POD`, `svc/SERVICE` or `deploy/DEPLOYMENT`.
    #[arg(value_name = "TYPE/NAME")]
    pub target: String,
    /// `[LOCAL:]REMOTE` ports (`8080:80`, `80`, `:80` for a random local port); REMOTE may be
    /// a named container port, or for a Service a service port's number or name.
    #[arg(required = true, value_name = "[LOCAL:]REMOTE")]
    pub ports: Vec<String>,
    /// Local addresses to listen on.
    #[arg(long, default_value = "127.0.0.1", value_delimiter = ',')]
    pub address: Vec<IpAddr>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// One `[LOCAL:]REMOTE` argument, before the remote side is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortSpec {
    /// The local port; 0 picks a free one; `None` means "the same as REMOTE".
    local: Option<u16>,
    /// The remote port: a number or a name.
    remote: String,
}

fn parse_spec(spec: &str) -> Result<PortSpec, Error> {
    let invalid = || Error::Usage(format!("invalid port specification {spec:?}"));
    let (local, remote) = match spec.split_once(':') {
        Some(("", remote)) => (Some(0), remote),
        Some((local, remote)) => (Some(local.parse::<u16>().map_err(|_| invalid())?), remote),
        None => (None, spec),
    };
    if remote.is_empty() || remote == "0" {
        return Err(invalid());
    }
    Ok(PortSpec {
        local,
        remote: remote.to_string(),
    })
}

/// A forward resolved to numbers: listen on `local`, connect to the pod's `remote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Forward {
    local: u16,
    remote: u16,
}

/// The pod's port of this name, from its containers' `ports`.
fn named_pod_port(pod: &Pod, name: &str) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// A pod's remote port: a number, or a named container port.
fn pod_forward(pod: &Pod, spec: &PortSpec) -> Result<Forward, Error> {
    let remote = match spec.remote.parse::<u16>() {
        Ok(port) => port,
        Err(_) => named_pod_port(pod, &spec.remote).ok_or_else(|| {
            Error::Usage(format!(
                "Pod '{}' does not have a named port '{}'",
                pod.metadata.name.as_deref().unwrap_or_default(),
                spec.remote
            ))
        })?,
    };
    Ok(Forward {
        local: spec.local.unwrap_or(remote),
        remote,
    })
}

/// A Service's port (by number or name) mapped to the pod's target port, as kubectl's
/// `translateServicePortToTargetPort`: the local port defaults to the service port.
fn service_forward(service: &Service, pod: &Pod, spec: &PortSpec) -> Result<Forward, Error> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let port = match spec.remote.parse::<i32>() {
        Ok(number) => ports.iter().find(|p| p.port == number),
        Err(_) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(spec.remote.as_str())),
    }
    .ok_or_else(|| {
        Error::Usage(format!(
            "Service {name} does not have a service port {}",
            spec.remote
        ))
    })?;
    let remote = match &port.target_port {
        None | Some(IntOrString::Int(0)) => u16::try_from(port.port).ok(),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(target)) => match target.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => Some(named_pod_port(pod, target).ok_or_else(|| {
                Error::Usage(format!(
                    "Pod '{}' does not have a named port '{target}'",
                    pod.metadata.name.as_deref().unwrap_or_default()
                ))
            })?),
        },
    }
    .ok_or_else(|| Error::Usage(format!("Service {name} has an invalid target port")))?;
    let service_port = u16::try_from(port.port)
        .map_err(|_| Error::Usage(format!("Service {name} has an invalid port")))?;
    Ok(Forward {
        local: spec.local.unwrap_or(service_port),
        remote,
    })
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod a selector's pods offer: running and ready first, then running, then any (which
/// then fails the running check with its phase).
fn choose_pod(mut pods: Vec<Pod>) -> Option<Pod> {
    pods.sort_by_key(|p| {
        let rank = match (phase(p) == "Running", ready(p)) {
            (true, true) => 0,
            (true, false) => 1,
            _ => 2,
        };
        (rank, p.metadata.name.clone())
    });
    pods.into_iter().next()
}

fn selector_query(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod behind `target` and the forwards of `specs`.
async fn resolve(
    cluster: &Cluster,
    namespace: &str,
    target: &str,
    specs: &[PortSpec],
) -> Result<(Pod, Vec<Forward>), Error> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let (kind, name) = target.split_once('/').unwrap_or(("pod", target));
    let by_selector = |what: &str, labels: Option<BTreeMap<String, String>>| {
        let labels = labels.filter(|l| !l.is_empty()).ok_or_else(|| {
            Error::Usage(format!(
                "invalid {what} '{name}': {what} is defined without a selector"
            ))
        })?;
        Ok::<_, Error>(ListParams::default().labels(&selector_query(&labels)))
    };
    let chosen = |list: Vec<Pod>, what: &str| {
        choose_pod(list).ok_or_else(|| Error::Usage(format!("no pods found for {what} {name:?}")))
    };
    match kind {
        "po" | "pod" | "pods" => {
            let pod = pods.get(name).await?;
            let forwards = specs
                .iter()
                .map(|s| pod_forward(&pod, s))
                .collect::<Result<_, _>>()?;
            Ok((pod, forwards))
        }
        "svc" | "service" | "services" => {
            let services: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
            let service = services.get(name).await?;
            let selector = service.spec.as_ref().and_then(|s| s.selector.clone());
            let params = by_selector("service", selector)?;
            let pod = chosen(pods.list(&params).await?.items, "service")?;
            let forwards = specs
                .iter()
                .map(|s| service_forward(&service, &pod, s))
                .collect::<Result<_, _>>()?;
            Ok((pod, forwards))
        }
        "deploy" | "deployment" | "deployments" => {
            let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
            let deployment = deployments.get(name).await?;
            let labels = deployment.spec.selector.match_labels.clone();
            let params = by_selector("deployment", labels)?;
            let pod = chosen(pods.list(&params).await?.items, "deployment")?;
            let forwards = specs
                .iter()
                .map(|s| pod_forward(&pod, s))
                .collect::<Result<_, _>>()?;
            Ok((pod, forwards))
        }
        other => Err(Error::Usage(format!(
            "cannot attach to {other}: port-forward takes a pod, a service or a deployment"
        ))),
    }
}

/// Runs `port-forward` until interrupted (Ctrl-C).
pub async fn run(args: PortForwardArgs, cluster: &Cluster) -> Result<(), Error> {
    let namespace = cluster.namespace(args.namespace.as_deref());
    let specs = args
        .ports
        .iter()
        .map(|p| parse_spec(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (pod, forwards) = resolve(cluster, &namespace, &args.target, &specs).await?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if phase(&pod) != "Running" {
        return Err(Error::PortForward(format!(
            "unable to forward port because pod is not running. Current status={}",
            phase(&pod)
        )));
    }
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let mut listeners = tokio::task::JoinSet::new();
    for forward in forwards {
        for address in &args.address {
            let listener = TcpListener::bind(SocketAddr::new(*address, forward.local))
                .await
                .map_err(|e| {
                    Error::PortForward(format!("unable to listen on port {}: {e}", forward.local))
                })?;
            let local = listener
                .local_addr()
                .map(|a| a.port())
                .unwrap_or(forward.local);
            let shown = match address {
                IpAddr::V4(ip) => format!("{ip}:{local}"),
                IpAddr::V6(ip) => format!("[{ip}]:{local}"),
            };
            println!("Forwarding from {shown} -> {}", forward.remote);
            listeners.spawn(accept(
                listener,
                api.clone(),
                pod_name.clone(),
                local,
                forward.remote,
            ));
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = listeners.join_next() => {}
    }
    listeners.shutdown().await;
    Ok(())
}

/// Accepts local connections for one forward, each forwarded in a task of its own.
async fn accept(listener: TcpListener, api: Api<Pod>, pod: String, local: u16, remote: u16) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    println!("Handling connection for {local}");
                    connections.spawn(connection(socket, api.clone(), pod.clone(), local, remote));
                }
                Err(e) => {
                    eprintln!("error: accepting on port {local}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One local connection through its own `pods/portforward` WebSocket.
async fn connection(mut socket: TcpStream, api: Api<Pod>, pod: String, local: u16, remote: u16) {
    let fail = |message: &dyn std::fmt::Display| {
        eprintln!("error: an error occurred forwarding {local} -> {remote}: {message}");
    };
    let mut forwarder = match api.portforward(&pod, &[remote]).await {
        Ok(forwarder) => forwarder,
        Err(e) => return fail(&e),
    };
    let (Some(mut upstream), Some(error)) =
        (forwarder.take_stream(remote), forwarder.take_error(remote))
    else {
        return fail(&"the port-forward session has no stream for this port");
    };
    {
        let copy = tokio::io::copy_bidirectional(&mut socket, &mut upstream);
        tokio::pin!(copy, error);
        let mut error_done = false;
        loop {
            tokio::select! {
                _ = &mut copy => break,
                message = &mut error, if !error_done => {
                    error_done = true;
                    if let Some(message) = message {
                        fail(&message);
                        break;
                    }
                }
            }
        }
    }
    drop(upstream);
    // The session ends once both sides are closed; it is cut off if it lingers.
    if tokio::time::timeout(Duration::from_secs(2), forwarder.join())
        .await
        .is_err()
    {
        tracing::debug!(pod, remote, "port-forward session did not end in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, ServicePort, ServiceSpec};

    fn pod_with_port(name: &str, port: i32) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-1".into());
        pod.spec = Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                ports: Some(vec![ContainerPort {
                    name: Some(name.into()),
                    container_port: port,
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        });
        pod
    }

    fn service(ports: Vec<ServicePort>) -> Service {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.spec = Some(ServiceSpec {
            ports: Some(ports),
            ..ServiceSpec::default()
        });
        svc
    }

    #[test]
    fn parses_port_specs_as_kubectl() {
        let spec = |s: &str| parse_spec(s).unwrap();
        assert_eq!(spec("8080:80").local, Some(8080));
        assert_eq!(spec("80").local, None);
        assert_eq!(spec(":80").local, Some(0));
        assert_eq!(spec("9000:http").remote, "http");
        assert!(parse_spec("x:80").is_err());
        assert!(parse_spec("8080:").is_err());
    }

    #[test]
    fn maps_service_ports_to_target_ports() {
        let pod = pod_with_port("http", 8080);
        let svc = service(vec![
            ServicePort {
                name: Some("web".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            },
            ServicePort {
                name: Some("metrics".into()),
                port: 9090,
                target_port: None,
                ..ServicePort::default()
            },
        ]);
        let forward = |s: &str| service_forward(&svc, &pod, &parse_spec(s).unwrap());
        assert_eq!(
            forward("80").unwrap(),
            Forward {
                local: 80,
                remote: 8080
            }
        );
        assert_eq!(
            forward("5000:web").unwrap(),
            Forward {
                local: 5000,
                remote: 8080
            }
        );
        assert_eq!(
            forward("9090").unwrap(),
            Forward {
                local: 9090,
                remote: 9090
            }
        );
        assert!(
            forward("81")
                .unwrap_err()
                .to_string()
                .contains("does not have a service port 81")
        );
    }

    #[test]
    fn resolves_named_pod_ports() {
        let pod = pod_with_port("http", 8080);
        let spec = parse_spec("7000:http").unwrap();
        assert_eq!(
            pod_forward(&pod, &spec).unwrap(),
            Forward {
                local: 7000,
                remote: 8080
            }
        );
        assert!(pod_forward(&pod, &parse_spec("grpc").unwrap()).is_err());
    }

    #[test]
    fn prefers_running_ready_pods() {
        let mut pending = pod_with_port("http", 80);
        pending.metadata.name = Some("a".into());
        let mut running = pod_with_port("http", 80);
        running.metadata.name = Some("b".into());
        running.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let chosen = choose_pod(vec![pending, running]).unwrap();
        assert_eq!(chosen.metadata.name.as_deref(), Some("b"));
    }
}
