//! Container lifecycle hooks: `postStart` and `preStop` with `exec`, `httpGet` and `sleep`
//! handlers. An exec handler is an exec in the container (`exec.rs`). The HTTP GET is the kubelet's: from the node to the pod
//! IP (or `host`), success is a status in 200..400; the probes of the next issue reuse it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exec::Target;
use crate::wasm::PodNetwork;

/// Which hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Right after the container started.
    PostStart,
    /// Before the container is asked to stop.
    PreStop,
}

impl Hook {
    /// The handler the container declares for this hook.
    pub fn handler(self, container: &Container) -> Option<&LifecycleHandler> {
        let lifecycle = container.lifecycle.as_ref()?;
        match self {
            Hook::PostStart => lifecycle.post_start.as_ref(),
            Hook::PreStop => lifecycle.pre_stop.as_ref(),
        }
    }

    /// The Warning event reason when the handler fails.
    pub fn failed_reason(self) -> &'static str {
        match self {
            Hook::PostStart => "FailedPostStartHook",
            Hook::PreStop => "FailedPreStopHook",
        }
    }
}

/// The kubelet's User-Agent for lifecycle HTTP requests.
const USER_AGENT: &str = "kube-lifecycle/1.37";

/// How long a `postStart` GET keeps retrying a refused connection: the hook starts with the
/// container, a few milliseconds before its server listens.
const POST_START_CONNECT: Duration = Duration::from_secs(2);

/// Runs a hook handler against the container at `pod_ip` (`target` for exec). `timeout`
/// bounds an HTTP request or a command.
pub async fn run(
    hook: Hook,
    handler: &LifecycleHandler,
    container: &Container,
    network: PodNetwork,
    target: &Target,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }
    if let Some(get) = &handler.http_get {
        let retry = match hook {
            Hook::PostStart => POST_START_CONNECT,
            Hook::PreStop => Duration::ZERO,
        };
        let status = http_get(get, container, network, USER_AGENT, timeout, retry).await?;
        return if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "HTTP lifecycle hook ({}) returned status {status}",
                get.path.as_deref().unwrap_or("/")
            ))
        };
    }
    if let Some(exec) = &handler.exec {
        let argv = exec.command.clone().unwrap_or_default();
        let captured = target
            .capture(argv.clone(), timeout)
            .await
            .map_err(|e| e.to_string())?;
        return if captured.code == 0 {
            Ok(())
        } else {
            Err(format!(
                "Exec lifecycle hook ({argv:?}) failed - error: command '{}' exited with {}: , \
                 message: {:?}",
                argv.join(" "),
                captured.code,
                captured.output
            ))
        };
    }
    if handler.tcp_socket.is_some() {
        return Err("tcpSocket is not a valid lifecycle handler".into());
    }
    Err("the lifecycle handler has no action".into())
}

/// Resolves a port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("no port named {name:?} in container {}", container.name))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("invalid port {number}"))
}

/// One HTTP/1.1 GET; returns the status code. A refused connection is retried for
/// `connect_retry`.
pub async fn http_get(
    get: &HTTPGetAction,
    container: &Container,
    network: PodNetwork,
    user_agent: &str,
    timeout: Duration,
    connect_retry: Duration,
) -> Result<u16, String> {
    if get
        .scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
    {
        return Err("only scheme HTTP is supported by this node".into());
    }
    let port = resolve_port(&get.port, container)?;
    let ip: IpAddr = match get.host.as_deref().filter(|h| !h.is_empty()) {
        None => IpAddr::V4(network.pod_ip),
        Some(h) => h
            .parse()
            .map_err(|_| format!("host {h:?} is not an IP address"))?,
    };
    let host_port = match ip {
        IpAddr::V4(v4) => network.host_port(v4, port),
        IpAddr::V6(_) => port,
    };
    let addr = SocketAddr::new(ip, host_port);
    let path = get.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
    let mut headers = String::new();
    let mut host = addr.to_string();
    let mut agent = user_agent.to_string();
    for h in get.http_headers.iter().flatten() {
        if h.name.contains(['\r', '\n', ':']) || h.value.contains(['\r', '\n']) {
            return Err(format!("invalid HTTP header {:?}", h.name));
        }
        match h.name.to_ascii_lowercase().as_str() {
            "host" => host = h.value.clone(),
            "user-agent" => agent = h.value.clone(),
            _ => headers.push_str(&format!("{}: {}\r\n", h.name, h.value)),
        }
    }
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n\
         Connection: close\r\n{headers}\r\n"
    );
    let exchange = async {
        let started = tokio::time::Instant::now();
        let mut stream = loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => break stream,
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && started.elapsed() < connect_retry =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(format!("GET http://{addr}{path}: {e}")),
            }
        };
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        parse_status(&head).ok_or_else(|| format!("GET http://{addr}{path}: not an HTTP response"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET http://{addr}{path}: timed out after {timeout:?}"))?
}

/// The status code of an HTTP/1.x status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader, SleepAction};
    use std::net::Ipv4Addr;

    fn container() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..ContainerPort::default()
            }]),
            ..Container::default()
        }
    }

    /// `c` in pod `default/p`, which runs nowhere.
    fn test_target(c: &Container) -> Target {
        Target {
            exec: crate::node::exec::Exec::for_tests(),
            namespace: "default".into(),
            pod: "p".into(),
            container: c.name.clone(),
        }
    }

    fn net(pod_ip: Ipv4Addr) -> PodNetwork {
        PodNetwork {
            pod_ip,
            allow_external: false,
            map_low_ports: false,
        }
    }

    #[test]
    fn ports_by_number_or_name() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert!(resolve_port(&IntOrString::String("grpc".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 500 x\r\n"), Some(500));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[tokio::test]
    async fn http_get_hits_the_pod_and_judges_the_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
            seen
        });
        let handler = LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some("/hook".into()),
                port: IntOrString::Int(i32::from(port)),
                http_headers: Some(vec![HTTPHeader {
                    name: "X-Why".into(),
                    value: "test".into(),
                }]),
                ..HTTPGetAction::default()
            }),
            ..LifecycleHandler::default()
        };
        let ip = net(Ipv4Addr::LOCALHOST);
        let c = container();
        let target = test_target(&c);
        assert_eq!(
            run(
                Hook::PreStop,
                &handler,
                &c,
                ip,
                &target,
                Duration::from_secs(5)
            )
            .await,
            Ok(())
        );
        let err = run(
            Hook::PreStop,
            &handler,
            &c,
            ip,
            &target,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(err.contains("503"), "{err}");
        let seen = server.await.unwrap();
        assert!(seen[0].starts_with("GET /hook HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0].contains("User-Agent: kube-lifecycle/1.37\r\n"));
        assert!(seen[0].contains("X-Why: test\r\n"));
    }

    #[tokio::test]
    async fn sleep_waits_and_exec_needs_a_running_container() {
        let c = container();
        let target = test_target(&c);
        let sleep = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 0 }),
            ..LifecycleHandler::default()
        };
        assert_eq!(
            run(
                Hook::PreStop,
                &sleep,
                &c,
                net(Ipv4Addr::LOCALHOST),
                &target,
                Duration::from_secs(1)
            )
            .await,
            Ok(())
        );
        let exec = LifecycleHandler {
            exec: Some(Default::default()),
            ..LifecycleHandler::default()
        };
        let err = run(
            Hook::PreStop,
            &exec,
            &c,
            net(Ipv4Addr::LOCALHOST),
            &target,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(err.contains("is not running on this node"), "{err}");
    }
}
