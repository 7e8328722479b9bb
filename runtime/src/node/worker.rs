//! One pod on this node: the per-pod worker and its state machine.
//!
//! ```text
//!  Sandbox --(IP, dirs, volumes)--> Init(0) -> Init(1) ... -> Main --(nothing restarts)--> Done
//!     \__________________________________|______________|____________________________|
//!                          deletionTimestamp set: Terminating --(all stopped)--> deleted
//! ```
//!
//! The worker is level-triggered: every wake-up (a new version of the pod from the watch,
//! a container exit, a timer, the periodic resync) runs [`Worker::step`], which compares
//! the latest pod with what runs and acts, then writes the status if it changed
//! ([`Worker::write_status`], the only place status is written). The pod objects come over a
//! `watch` channel, so a burst of updates collapses into the latest one.
//!
//! Starting one container (image, env, mounts, log, instance) is in start.rs.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::NodeConfig;
use super::container::{Backoff, Group, Record, State};
use super::events::{EventType, Recorder, pod_ref};
use super::ipam::Ipam;
use super::logs::{ContainerLog, LogStore};
use super::sandbox::{PodDirs, VolumeDir};
use super::status::{self, Observed};
use super::volumes::Objects;
use crate::images::pull::Puller;
use crate::wasm::{ContainerRuntime, Exit};

/// What the whole node shares with its pod workers.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// Runs containers.
    pub runtime: Arc<ContainerRuntime>,
    /// Where this node's containers run (sized by `--node-cpu`).
    pub guests: crate::wasm::GuestExecutor,
    /// Pulls images (`imagePullPolicy`, pull secrets, the node's copies).
    pub puller: Arc<Puller>,
    /// The node's configuration.
    pub config: NodeConfig,
    /// Pod IPs. A plain mutex: allocations are short and never held across `.await`.
    pub ipam: Mutex<Ipam>,
    /// Container logs.
    pub logs: Arc<LogStore>,
    /// Container resource usage.
    pub usages: Arc<super::metrics::Usages>,
    /// Events.
    pub events: Recorder,
    /// The running containers as exec and attach targets.
    pub exec: Arc<super::exec::Exec>,
    /// The cluster's Services (balancing, DNS, service links).
    pub services: Arc<super::services::ServiceCache>,
}

/// The latest word from the API about a pod.
#[derive(Debug, Clone)]
pub enum Desired {
    /// The pod as last seen.
    Present(Arc<Pod>),
    /// The pod object is gone (deleted by someone else, or no longer bound here).
    Gone,
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The pod is finished on this node and its resources are released.
    Removed,
    /// The agent is shutting down; the pod's resources are kept for the next run.
    Stopped,
}

/// The pod-level state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Preparing IP, directories and volumes; retried at `retry_at` after a failure.
    Sandbox { retry_at: Option<Instant> },
    /// Running init container `i`.
    Init(usize),
    /// The containers run under the restart policy.
    Main,
    /// The pod reached a terminal phase: nothing runs or restarts.
    Done,
    /// Deletion requested: containers are killed at `kill_at` unless they end first.
    Terminating { kill_at: Instant },
}

/// The running-container bookkeeping of a worker.
pub(super) struct Running {
    pub(super) tasks: JoinSet<Exit>,
    /// Task id -> (its list, container name, its log).
    pub(super) ids: HashMap<tokio::task::Id, (Group, String, Arc<ContainerLog>)>,
    /// Running `postStart` hooks; each ends with (its list, container name).
    pub(super) hooks: JoinSet<(Group, String)>,
}

/// A pod worker.
pub(super) struct Worker {
    pub(super) ctx: Arc<Context>,
    pub(super) uid: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) pod: Arc<Pod>,
    pub(super) stage: Stage,
    pub(super) dirs: PodDirs,
    pub(super) objects: Objects,
    pub(super) pod_ip: Option<Ipv4Addr>,
    pub(super) volumes: HashMap<String, VolumeDir>,
    pub(super) service_account: Option<PathBuf>,
    pub(super) init: Vec<Record>,
    pub(super) containers: Vec<Record>,
    /// Ephemeral containers, in the order they were added.
    pub(super) ephemeral: Vec<Record>,
    pub(super) running: Running,
    /// Set when the worker is stopping its containers for good (agent shutdown, pod gone):
    /// exits then restart nothing.
    pub(super) stopping: bool,
    pub(super) written: Option<PodStatus>,
    pub(super) status_retry_at: Option<Instant>,
    pub(super) next_sync: Instant,
    pub(super) start_time: jiff::Timestamp,
    /// Probe tasks poke this when a container's readiness or started state changed.
    pub(super) probed: tokio::sync::mpsc::UnboundedSender<()>,
    probed_rx: tokio::sync::mpsc::UnboundedReceiver<()>,
}

/// Runs the worker of one pod until it is removed or the agent stops.
#[tracing::instrument(skip_all, fields(pod = %uid))]
pub async fn run(
    ctx: Arc<Context>,
    uid: String,
    mut desired: watch::Receiver<Desired>,
    shutdown: CancellationToken,
) -> Outcome {
    let Desired::Present(pod) = desired.borrow_and_update().clone() else {
        return Outcome::Removed;
    };
    let mut w = Worker::new(ctx, uid, pod);
    loop {
        // Cloned out first: the borrow of the channel must not live across an `.await`.
        let latest = desired.borrow_and_update().clone();
        match latest {
            Desired::Present(pod) => w.pod = pod,
            Desired::Gone => {
                w.stopping = true;
                w.kill_all();
                w.drain().await;
                w.cleanup();
                return Outcome::Removed;
            }
        }
        if w.step().await {
            w.cleanup();
            return Outcome::Removed;
        }
        w.write_status().await;
        let wake = tokio::time::Instant::from_std(w.next_wakeup());
        let exited = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                w.stopping = true;
                w.kill_all();
                w.drain().await;
                return Outcome::Stopped;
            }
            changed = desired.changed() => {
                if changed.is_err() {
                    // The dispatcher is gone: the agent is stopping.
                    w.stopping = true;
                    w.kill_all();
                    w.drain().await;
                    return Outcome::Stopped;
                }
                None
            }
            Some(joined) = w.running.tasks.join_next_with_id() => Some(joined),
            Some(Ok((group, name))) = w.running.hooks.join_next() => {
                if let Some(r) = w.records_mut(group).iter_mut().find(|r| r.name == name) {
                    r.post_start_pending = false;
                }
                None
            }
            Some(()) = w.probed_rx.recv() => None,
            () = tokio::time::sleep_until(wake) => None,
        };
        if let Some(joined) = exited {
            w.on_exit(joined);
        }
    }
}

impl Worker {
    fn new(ctx: Arc<Context>, uid: String, pod: Arc<Pod>) -> Worker {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let c = &ctx.config;
        let backoff = || Backoff::new(c.backoff_base, c.backoff_max, c.backoff_reset);
        let spec = pod.spec.clone().unwrap_or_default();
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let main_reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let previous = pod.status.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let adopt = |records: &mut Vec<Record>, statuses: &Option<Vec<ContainerStatus>>| {
            for r in records.iter_mut() {
                if let Some(s) = statuses.iter().flatten().find(|s| s.name == r.name) {
                    r.adopt(s, &policy);
                }
            }
        };
        let mut init: Vec<Record> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let mut r = Record::new(
                    &c.name,
                    true,
                    c.image.as_deref().unwrap_or_default(),
                    backoff(),
                    "PodInitializing",
                );
                r.sidecar = c.restart_policy.as_deref() == Some("Always");
                r
            })
            .collect();
        let mut containers: Vec<Record> = spec
            .containers
            .iter()
            .map(|c| {
                Record::new(
                    &c.name,
                    false,
                    c.image.as_deref().unwrap_or_default(),
                    backoff(),
                    main_reason,
                )
            })
            .collect();
        adopt(&mut init, &previous.init_container_statuses);
        adopt(&mut containers, &previous.container_statuses);

        let terminal = matches!(previous.phase.as_deref(), Some("Succeeded" | "Failed"));
        let dirs = PodDirs::new(&c.data_dir, &uid);
        ctx.logs.add_pod(&namespace, &name, &uid, dirs.logs());
        let pod_ip = ctx.ipam.lock().unwrap_or_else(|e| e.into_inner()).get(&uid);
        let start_time = previous
            .start_time
            .as_ref()
            .map_or_else(jiff::Timestamp::now, |t| t.0);
        let (probed, probed_rx) = tokio::sync::mpsc::unbounded_channel();
        Worker {
            probed,
            probed_rx,
            objects: Objects::new(&ctx.client, &namespace),
            next_sync: Instant::now() + c.sync_period,
            ctx,
            uid,
            namespace,
            name,
            pod,
            stage: if terminal {
                Stage::Done
            } else {
                Stage::Sandbox { retry_at: None }
            },
            dirs,
            pod_ip,
            volumes: HashMap::new(),
            service_account: None,
            init,
            containers,
            ephemeral: Vec::new(),
            running: Running {
                tasks: JoinSet::new(),
                ids: HashMap::new(),
                hooks: JoinSet::new(),
            },
            stopping: false,
            written: None,
            status_retry_at: None,
            start_time,
        }
    }

    /// One level-triggered pass. Returns true once the pod object is deleted.
    async fn step(&mut self) -> bool {
        let now = Instant::now();
        if self.pod.metadata.deletion_timestamp.is_some()
            && !matches!(self.stage, Stage::Terminating { .. })
        {
            self.begin_termination(now);
        }
        let resync = now >= self.next_sync;
        if resync {
            self.next_sync = now + self.ctx.config.sync_period;
        }
        loop {
            match self.stage {
                Stage::Sandbox { retry_at } => {
                    if retry_at.is_some_and(|t| now < t) || !self.prepare_sandbox().await {
                        return false;
                    }
                    let init_done = self
                        .init
                        .iter()
                        .all(|r| r.terminated().is_some_and(|t| t.code == 0));
                    self.stage = if init_done {
                        Stage::Main
                    } else {
                        Stage::Init(0)
                    };
                }
                Stage::Init(i) => {
                    if i >= self.init.len() {
                        self.stage = Stage::Main;
                        continue;
                    }
                    if resync {
                        self.refresh_volumes().await;
                    }
                    let record = &self.init[i];
                    if record.sidecar {
                        // A sidecar only has to start before the next init container.
                        match &record.state {
                            State::Running { .. } => {
                                self.stage = Stage::Init(i + 1);
                                continue;
                            }
                            State::Waiting { retry_at, .. } => {
                                if retry_at.is_none_or(|t| t <= now) {
                                    self.start(Group::Init, i).await;
                                }
                                return false;
                            }
                            State::Terminated(_) => return false,
                        }
                    }
                    match &record.state {
                        State::Terminated(t) if t.code == 0 => self.stage = Stage::Init(i + 1),
                        State::Terminated(_) => {
                            // Only left terminated when the policy forbids a restart.
                            self.stage = Stage::Done;
                        }
                        State::Running { .. } => return false,
                        State::Waiting { retry_at, .. } => {
                            if retry_at.is_none_or(|t| t <= now) {
                                self.start(Group::Init, i).await;
                            }
                            return false;
                        }
                    }
                }
                Stage::Main => {
                    if resync {
                        self.refresh_volumes().await;
                    }
                    for i in 0..self.init.len() {
                        if self.init[i].sidecar
                            && let State::Waiting { retry_at, .. } = &self.init[i].state
                            && retry_at.is_none_or(|t| t <= now)
                        {
                            self.start(Group::Init, i).await;
                        }
                    }
                    for i in 0..self.containers.len() {
                        if let State::Waiting { retry_at, .. } = &self.containers[i].state
                            && retry_at.is_none_or(|t| t <= now)
                        {
                            self.start(Group::Main, i).await;
                        }
                    }
                    self.start_ephemeral(now).await;
                    if self.containers.iter().all(|r| r.terminated().is_some()) {
                        // The containers are done: their sidecars stop too.
                        self.stage = Stage::Done;
                        for r in self.init.iter().filter(|r| r.sidecar) {
                            if let State::Running { stop, .. } = &r.state {
                                stop.cancel();
                            }
                        }
                    }
                    return false;
                }
                Stage::Done => return false,
                Stage::Terminating { kill_at } => {
                    if !self.running.ids.is_empty() {
                        if now >= kill_at {
                            self.kill_all();
                        }
                        return false;
                    }
                    return self.finish_deletion().await;
                }
            }
        }
    }

    /// Writes the status if it changed since the last write (merge patch of `status`).
    pub(super) async fn write_status(&mut self) {
        let now = Instant::now();
        if self.status_retry_at.is_some_and(|t| now < t) {
            return;
        }
        let observed = Observed {
            restart_policy: self.restart_policy(),
            init: self.init.iter().map(Record::status).collect(),
            sidecars: self
                .init
                .iter()
                .filter(|r| r.sidecar)
                .map(|r| r.name.clone())
                .collect(),
            containers: self.containers.iter().map(Record::status).collect(),
            ephemeral: self.ephemeral.iter().map(Record::status).collect(),
            sandbox_ready: !matches!(self.stage, Stage::Sandbox { .. }),
            terminal: matches!(self.stage, Stage::Terminating { .. })
                && self.running.ids.is_empty(),
            pod_ip: self.pod_ip,
            host_ip: self.ctx.config.address,
            start_time: Some(self.start_time),
        };
        let previous = self.written.as_ref().or(self.pod.status.as_ref());
        let status = status::pod_status(previous, &observed, jiff::Timestamp::now());
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let patch = json!({ "status": status });
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.written = Some(status);
                self.status_retry_at = None;
            }
            Err(error) => {
                tracing::warn!(error = %error, "writing the pod status failed");
                self.status_retry_at = Some(
                    now + self
                        .ctx
                        .config
                        .backoff_base
                        .min(self.ctx.config.status_update_interval),
                );
            }
        }
    }

    /// The earliest moment something is due.
    fn next_wakeup(&self) -> Instant {
        let mut wake = self.next_sync;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = wake.min(t);
            }
        };
        at(self.status_retry_at);
        match self.stage {
            Stage::Sandbox { retry_at } => at(retry_at),
            Stage::Terminating { kill_at } => at(Some(kill_at)),
            _ => {}
        }
        for r in self.all_records() {
            if let State::Waiting { retry_at, .. } = &r.state {
                at(*retry_at);
            }
        }
        wake
    }

    pub(super) fn all_records(&self) -> impl Iterator<Item = &Record> {
        self.init
            .iter()
            .chain(self.containers.iter())
            .chain(self.ephemeral.iter())
    }

    /// The records of `group`.
    pub(super) fn records(&self, group: Group) -> &Vec<Record> {
        match group {
            Group::Init => &self.init,
            Group::Main => &self.containers,
            Group::Ephemeral => &self.ephemeral,
        }
    }

    /// The records of `group`, to change.
    pub(super) fn records_mut(&mut self, group: Group) -> &mut Vec<Record> {
        match group {
            Group::Init => &mut self.init,
            Group::Main => &mut self.containers,
            Group::Ephemeral => &mut self.ephemeral,
        }
    }

    pub(super) fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    pub(super) fn event(
        &self,
        field_path: Option<String>,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        self.ctx
            .events
            .emit(pod_ref(&self.pod, field_path), type_, reason, message);
    }
}
