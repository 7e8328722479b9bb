//! One container of a pod as the worker tracks it: its state machine (waiting -> running ->
//! terminated -> waiting in back-off -> running ...), its restart count, last state and
//! CrashLoopBackOff timer, and its `ContainerStatus`.
//!
//! The transitions are methods ([`Record::started`], [`Record::exited`],
//! [`Record::waiting`]); the worker decides when to call them. Restart decisions
//! ([`should_restart`]) and back-off delays ([`Backoff`]) are pure.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio_util::sync::CancellationToken;

use super::probes::ProbeState;
use crate::wasm::Exit;

/// CrashLoopBackOff: the first restart is immediate, then `base`, doubling up to `max`; a
/// container that ran at least `reset` before exiting starts over (the kubelet's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    reset: Duration,
    restarts: u32,
}

impl Backoff {
    /// A back-off with the node's timers.
    pub fn new(base: Duration, max: Duration, reset: Duration) -> Backoff {
        Backoff {
            base,
            max,
            reset,
            restarts: 0,
        }
    }

    /// The delay before restarting a container that ran for `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= self.reset {
            self.restarts = 0;
        }
        let delay = match self.restarts {
            0 => Duration::ZERO,
            n => self
                .base
                .saturating_mul(1u32 << (n - 1).min(20))
                .min(self.max),
        };
        self.restarts = self.restarts.saturating_add(1);
        delay
    }
}

impl Backoff {
    /// The delay before pulling again after `failures` failed pulls in a row: the same
    /// timers, doubling from the first failure (the kubelet's image back-off).
    pub fn image_delay(&self, failures: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max)
    }
}

/// Whether a container that exited with `code` runs again under `restart_policy`.
pub fn should_restart(restart_policy: &str, code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// `spec.initContainers` (sidecars included).
    Init,
    /// `spec.containers`.
    Main,
    /// `spec.ephemeralContainers`: added to a running pod (`kubectl debug`), never restarted.
    Ephemeral,
}

/// A finished run of a container (`state.terminated` / `lastState.terminated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// The exit code.
    pub code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, ...
    pub reason: String,
    /// Details (trap text, limit hit).
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<jiff::Timestamp>,
    /// When it ended.
    pub finished_at: jiff::Timestamp,
    /// The `wasm://` id of that run.
    pub container_id: Option<String>,
}

impl Terminated {
    fn to_k8s(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.code,
            reason: Some(self.reason.clone()),
            message: self.message.clone(),
            started_at: self.started_at.map(Time),
            finished_at: Some(Time(self.finished_at)),
            container_id: self.container_id.clone(),
            signal: None,
        }
    }

    /// Reads a terminated state back from a status written earlier (agent restart).
    pub fn from_k8s(t: &ContainerStateTerminated) -> Terminated {
        Terminated {
            code: t.exit_code,
            reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
            message: t.message.clone(),
            started_at: t.started_at.as_ref().map(|t| t.0),
            finished_at: t
                .finished_at
                .as_ref()
                .map_or_else(jiff::Timestamp::now, |t| t.0),
            container_id: t.container_id.clone(),
        }
    }
}

/// Where a container is in its life.
#[derive(Debug)]
pub enum State {
    /// Not running: being created, waiting for init containers, in back-off, or unable to
    /// start (`ErrImagePull`, `CreateContainerConfigError`). `retry_at` is when to try again.
    Waiting {
        /// The Kubernetes reason.
        reason: String,
        /// Details.
        message: Option<String>,
        /// Not before this instant.
        retry_at: Option<Instant>,
    },
    /// An instance runs.
    Running {
        /// When it started.
        started_at: jiff::Timestamp,
        /// The same, for measuring the run.
        since: Instant,
        /// Cancelled to kill the instance.
        stop: CancellationToken,
        /// Cancelled to ask it to stop: its listening sockets close.
        drain: CancellationToken,
    },
    /// It ended and will not run again (or not yet decided).
    Terminated(Terminated),
}

/// One container of the pod.
#[derive(Debug)]
pub struct Record {
    /// The container name.
    pub name: String,
    /// Whether it is an init container.
    pub init: bool,
    /// Whether it is an ephemeral container.
    pub ephemeral: bool,
    /// The image as the spec names it.
    pub image: String,
    /// The resolved image (`name@sha256:...`), once known.
    pub image_id: String,
    /// The `wasm://` id of the current or last run.
    pub container_id: Option<String>,
    /// The current state.
    pub state: State,
    /// How the previous run ended.
    pub last: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Whether the container ran before (so the next start is a restart).
    pub ran_before: bool,
    /// Its CrashLoopBackOff.
    pub backoff: Backoff,
    /// A sidecar: an init container with `restartPolicy: Always`, which keeps running beside
    /// the containers and restarts whatever its exit code.
    pub sidecar: bool,
    /// What the probes of the current run found.
    pub probes: Arc<ProbeState>,
    /// Its instance is still being created (the image compiling) or its `postStart` hook is
    /// still running: the container shows as waiting (`ContainerCreating`) until both are
    /// done, as the kubelet shows it until the process runs and the hook is done.
    pub post_start_pending: bool,
    /// Image pulls that failed in a row (the image back-off doubles with each).
    pub pull_failures: u32,
    /// No pull is tried before this: the container shows `ImagePullBackOff` until then.
    pub pull_backoff_until: Option<Instant>,
}

impl Record {
    /// A container not started yet, waiting for `reason` (`ContainerCreating`, `PodInitializing`).
    pub fn new(name: &str, init: bool, image: &str, backoff: Backoff, reason: &str) -> Record {
        Record {
            name: name.to_string(),
            init,
            ephemeral: false,
            image: image.to_string(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting {
                reason: reason.into(),
                message: None,
                retry_at: None,
            },
            last: None,
            restart_count: 0,
            ran_before: false,
            backoff,
            sidecar: false,
            probes: Arc::default(),
            post_start_pending: false,
            pull_failures: 0,
            pull_backoff_until: None,
        }
    }

    /// Takes over what a previous agent reported (restart count, last state). A container
    /// that was running then is counted as ended by the agent restart; one that ended and
    /// does not rerun (`restart_policy`, or a completed init container) stays ended.
    pub fn adopt(&mut self, previous: &ContainerStatus, restart_policy: &str) {
        self.restart_count = previous.restart_count;
        self.image_id = previous.image_id.clone();
        self.container_id = previous.container_id.clone();
        let state = previous.state.as_ref();
        self.last = previous
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(Terminated::from_k8s);
        self.ran_before = self.last.is_some();
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            self.ran_before = true;
            let done = if self.init {
                t.exit_code == 0
            } else {
                !should_restart(restart_policy, t.exit_code)
            };
            if done {
                self.state = State::Terminated(Terminated::from_k8s(t));
            } else {
                self.last = Some(Terminated::from_k8s(t));
            }
        } else if let Some(r) = state.and_then(|s| s.running.as_ref()) {
            self.last = Some(Terminated {
                code: crate::wasm::EXIT_KILLED,
                reason: "Unknown".into(),
                message: Some("the node agent restarted while the container was running".into()),
                started_at: r.started_at.as_ref().map(|t| t.0),
                finished_at: jiff::Timestamp::now(),
                container_id: previous.container_id.clone(),
            });
            self.ran_before = true;
        }
    }

    /// The index of the next run's log file: one per start.
    pub fn next_start(&self) -> u32 {
        u32::try_from(self.restart_count + i32::from(self.ran_before)).unwrap_or(0)
    }

    /// Marks the container running (a new instance started).
    pub fn started(
        &mut self,
        container_id: String,
        stop: CancellationToken,
        drain: CancellationToken,
        probes: Arc<ProbeState>,
    ) {
        self.post_start_pending = false;
        self.probes = probes;
        if self.ran_before {
            self.restart_count += 1;
        }
        self.ran_before = true;
        self.container_id = Some(container_id);
        self.state = State::Running {
            started_at: jiff::Timestamp::now(),
            since: Instant::now(),
            stop,
            drain,
        };
    }

    /// Records the end of the current run. Returns how long it ran.
    pub fn exited(&mut self, exit: &Exit) -> Duration {
        let (started_at, ran) = match &self.state {
            State::Running {
                started_at, since, ..
            } => (Some(*started_at), since.elapsed()),
            _ => (None, Duration::ZERO),
        };
        // A run the probes killed says so (the kubelet's lastState shows the kill).
        let message = self.probes.killed().or_else(|| exit.message.clone());
        self.state = State::Terminated(Terminated {
            code: exit.code,
            reason: exit.reason.clone(),
            message,
            started_at,
            finished_at: jiff::Timestamp::now(),
            container_id: self.container_id.clone(),
        });
        ran
    }

    /// Moves a terminated container to waiting (for a restart), its run becoming `last`.
    pub fn waiting(&mut self, reason: &str, message: Option<String>, retry_at: Option<Instant>) {
        let previous = std::mem::replace(
            &mut self.state,
            State::Waiting {
                reason: reason.into(),
                message,
                retry_at,
            },
        );
        if let State::Terminated(t) = previous {
            self.last = Some(t);
        }
    }

    /// The list the container is in.
    pub fn group(&self) -> Group {
        match (self.init, self.ephemeral) {
            (_, true) => Group::Ephemeral,
            (true, false) => Group::Init,
            (false, false) => Group::Main,
        }
    }

    /// Whether an instance is running.
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// The exit of the current state, if terminated.
    pub fn terminated(&self) -> Option<&Terminated> {
        match &self.state {
            State::Terminated(t) => Some(t),
            _ => None,
        }
    }

    /// The container's status as the API shows it.
    pub fn status(&self) -> ContainerStatus {
        let state = match &self.state {
            State::Waiting {
                reason, message, ..
            } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..ContainerState::default()
            },
            State::Running { .. } if self.post_start_pending => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    message: None,
                }),
                ..ContainerState::default()
            },
            State::Running { started_at, .. } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..ContainerState::default()
            },
            State::Terminated(t) => ContainerState {
                terminated: Some(t.to_k8s()),
                ..ContainerState::default()
            },
        };
        let running = self.is_running() && !self.post_start_pending;
        let started = running && self.probes.started.load(Ordering::SeqCst);
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            state: Some(state),
            last_state: Some(
                self.last
                    .as_ref()
                    .map_or_else(ContainerState::default, |t| ContainerState {
                        terminated: Some(t.to_k8s()),
                        ..ContainerState::default()
                    }),
            ),
            // An init container is ready once it completed; a container while it runs, once
            // started, as its readiness probe says.
            ready: if self.ephemeral {
                false
            } else if self.init && !self.sidecar {
                self.terminated().is_some_and(|t| t.code == 0)
            } else {
                started && self.probes.ready.load(Ordering::SeqCst)
            },
            started: Some(started),
            restart_count: self.restart_count,
            ..ContainerStatus::default()
        }
    }
}

#[cfg(test)]
#[path = "container_tests.rs"]
mod tests;
