//! Container probes, as the kubelet runs them: a `startupProbe` holds the others back until
//! it succeeds (or kills the container after `failureThreshold` failures); then the
//! `readinessProbe` decides the container's `ready` (and so the pod's Ready condition) both
//! ways, and the `livenessProbe` kills the container after `failureThreshold` failures so
//! its restart policy restarts it. Handlers: `exec` (a new instance in the container's
//! sandbox, exit 0 is success), `httpGet` (status 200..400) and `tcpSocket` (the connection
//! opens). Every failed attempt is an `Unhealthy` Warning event.
//!
//! One task per container run holds the probes' counters; it writes the outcome into the
//! run's [`ProbeState`] and pokes the worker, which writes the status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ObjectReference, Probe};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::events::{EventType, Recorder};
use super::exec::Target;
use super::lifecycle::{http_get, resolve_port};
use crate::wasm::PodNetwork;

/// The kubelet's User-Agent for HTTP probes.
const USER_AGENT: &str = "kube-probe/1.37";

/// What the probes of one container run have found.
#[derive(Debug)]
pub struct ProbeState {
    /// The startup probe succeeded (or there is none).
    pub started: AtomicBool,
    /// The readiness probe says ready (or there is none).
    pub ready: AtomicBool,
    /// Why the probes killed the container, for its `lastState` message.
    pub killed: Mutex<Option<String>>,
}

impl ProbeState {
    /// The state at the start of a run of `container`.
    pub fn new(container: &Container) -> Arc<ProbeState> {
        Arc::new(ProbeState {
            started: AtomicBool::new(container.startup_probe.is_none()),
            ready: AtomicBool::new(container.readiness_probe.is_none()),
            killed: Mutex::new(None),
        })
    }

    /// Why the probes killed the run, if they did.
    pub fn killed(&self) -> Option<String> {
        self.killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Default for ProbeState {
    fn default() -> Self {
        ProbeState {
            started: AtomicBool::new(true),
            ready: AtomicBool::new(true),
            killed: Mutex::new(None),
        }
    }
}

/// The three kinds of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

/// Everything a container run's probe task needs.
pub struct Prober {
    /// The container (its probes and ports).
    pub container: Container,
    /// Where exec probes run.
    pub target: Target,
    /// The pod's network (httpGet and tcpSocket go to the pod IP).
    pub network: PodNetwork,
    /// Where the outcome is written.
    pub state: Arc<ProbeState>,
    /// Pokes the worker to write the status.
    pub changed: mpsc::UnboundedSender<()>,
    /// Events.
    pub events: Recorder,
    /// The container as an event's object.
    pub object: ObjectReference,
    /// Kills the container.
    pub kill: CancellationToken,
    /// Cancelled when the run ends: the probes stop.
    pub ended: CancellationToken,
    /// Cancelled once the instance exists: probing starts then.
    pub instantiated: CancellationToken,
}

/// The timing of a probe, with the API's defaults.
struct Timing {
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

impl Timing {
    fn of(probe: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(default).max(min)).unwrap_or(0))
        };
        let count =
            |v: Option<i32>, default: i32| u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1);
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

impl Prober {
    /// Whether `container` has any probe.
    pub fn needed(container: &Container) -> bool {
        container.startup_probe.is_some()
            || container.readiness_probe.is_some()
            || container.liveness_probe.is_some()
    }

    /// Runs the probes until the run ends or they kill it.
    pub async fn run(self) {
        let ended = self.ended.clone();
        tokio::select! {
            () = ended.cancelled() => {}
            () = self.probe_all() => {}
        }
    }

    async fn probe_all(&self) {
        // Delays count from the moment the container really runs (its image compiled).
        self.instantiated.cancelled().await;
        let start = tokio::time::Instant::now();
        if let Some(probe) = &self.container.startup_probe {
            if !self.probe(Kind::Startup, probe, start).await {
                return;
            }
            self.state.started.store(true, Ordering::SeqCst);
            let _ = self.changed.send(());
        }
        let readiness = async {
            if let Some(probe) = &self.container.readiness_probe {
                self.probe(Kind::Readiness, probe, start).await;
            }
        };
        let liveness = async {
            if let Some(probe) = &self.container.liveness_probe {
                self.probe(Kind::Liveness, probe, start).await;
            }
        };
        tokio::join!(readiness, liveness);
        // Killed by one: the other has nothing left to watch.
        std::future::pending::<()>().await;
    }

    /// Probes on `probe`'s schedule. Startup returns true once it succeeds; startup and
    /// liveness return false after killing the container; readiness runs until the end.
    async fn probe(&self, kind: Kind, probe: &Probe, start: tokio::time::Instant) -> bool {
        let timing = Timing::of(probe);
        // A startup probe's successThreshold must be 1.
        let success_threshold = if kind == Kind::Readiness {
            timing.success_threshold
        } else {
            1
        };
        tokio::time::sleep_until(start + timing.initial_delay).await;
        let (mut successes, mut failures) = (0u32, 0u32);
        loop {
            let attempt = tokio::time::Instant::now();
            match self.attempt(probe, timing.timeout).await {
                Ok(()) => {
                    successes += 1;
                    failures = 0;
                    if successes >= success_threshold {
                        match kind {
                            Kind::Startup => return true,
                            Kind::Readiness => self.set_ready(true),
                            Kind::Liveness => {}
                        }
                    }
                }
                Err(message) => {
                    failures += 1;
                    successes = 0;
                    self.events.emit(
                        self.object.clone(),
                        EventType::Warning,
                        "Unhealthy",
                        format!("{} probe failed: {message}", kind.name()),
                    );
                    if failures >= timing.failure_threshold {
                        match kind {
                            Kind::Readiness => self.set_ready(false),
                            Kind::Startup | Kind::Liveness => {
                                self.kill(kind, &message);
                                return false;
                            }
                        }
                    }
                }
            }
            tokio::time::sleep_until(attempt + timing.period).await;
        }
    }

    fn set_ready(&self, ready: bool) {
        if self.state.ready.swap(ready, Ordering::SeqCst) != ready {
            let _ = self.changed.send(());
        }
    }

    /// Kills the container after a failed liveness or startup probe, saying why.
    fn kill(&self, kind: Kind, message: &str) {
        let name = &self.container.name;
        let why = format!(
            "Container {name} failed {} probe, will be restarted",
            kind.name().to_lowercase()
        );
        *self.state.killed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("{why}: {message}"));
        self.events
            .emit(self.object.clone(), EventType::Normal, "Killing", why);
        self.kill.cancel();
    }

    /// One attempt of the probe's handler.
    async fn attempt(&self, probe: &Probe, timeout: Duration) -> Result<(), String> {
        if let Some(exec) = &probe.exec {
            let argv = exec.command.clone().unwrap_or_default();
            return match self.target.capture(argv.clone(), timeout).await {
                Ok(c) if c.code == 0 => Ok(()),
                Ok(c) if c.output.trim().is_empty() => {
                    Err(format!("command {argv:?} exited with {}", c.code))
                }
                Ok(c) => Err(c.output.trim_end().to_string()),
                Err(e) => Err(e.to_string()),
            };
        }
        if let Some(get) = &probe.http_get {
            let status = http_get(
                get,
                &self.container,
                self.network,
                USER_AGENT,
                timeout,
                Duration::ZERO,
            )
            .await?;
            return if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {status}"))
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(&tcp.port, &self.container)?;
            let ip = match tcp.host.as_deref().filter(|h| !h.is_empty()) {
                Some(h) => h
                    .parse()
                    .map_err(|_| format!("host {h:?} is not an IPv4 address"))?,
                None => self.network.pod_ip,
            };
            let addr = (ip, self.network.host_port(ip, port));
            return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Err(format!("dial tcp {ip}:{port}: connect: connection refused"))
                }
                Ok(Err(e)) => Err(format!("dial tcp {ip}:{port}: {e}")),
                Err(_) => Err(format!("dial tcp {ip}:{port}: i/o timeout")),
            };
        }
        if probe.grpc.is_some() {
            return Err("gRPC probes are not supported by this node".into());
        }
        Err("the probe has no handler".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_defaults_are_the_apis() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let t = Timing::of(&Probe {
            period_seconds: Some(0),
            failure_threshold: Some(1),
            initial_delay_seconds: Some(5),
            ..Probe::default()
        });
        assert_eq!(t.period, Duration::from_secs(1));
        assert_eq!(t.initial_delay, Duration::from_secs(5));
        assert_eq!(t.failure_threshold, 1);
    }

    #[test]
    fn a_run_without_probes_is_started_and_ready() {
        let state = ProbeState::new(&Container::default());
        assert!(state.started.load(Ordering::SeqCst) && state.ready.load(Ordering::SeqCst));
        let probed = Container {
            readiness_probe: Some(Probe::default()),
            ..Container::default()
        };
        assert!(!ProbeState::new(&probed).ready.load(Ordering::SeqCst));
    }
}
