//! The pods bound to this node: a kube-rs `watcher` on `spec.nodeName=<node>` feeding one
//! worker task per pod UID (worker.rs).
//!
//! Each worker gets the pod through a `watch` channel: sending replaces the previous value,
//! so updates arriving faster than the worker handles them are deduplicated and the worker
//! always acts on the latest level. A pod that disappears (a `Delete` event, or missing from
//! a relist after the watch restarted) is sent as [`Desired::Gone`]. Workers that removed
//! their pod leave a tombstone for a while, so a stale event cannot start a deleted pod again.
//! After the first complete list, directories and IPs of pods that no longer exist (deleted
//! while the agent was down) are released.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::sandbox::{PodDirs, pods_dir};
use super::worker::{self, Context, Desired, Outcome};

/// How long a removed pod's UID is ignored.
const TOMBSTONE: Duration = Duration::from_secs(600);

/// The dispatcher's state: the workers and what they were told.
struct Dispatcher {
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    workers: HashMap<String, watch::Sender<Desired>>,
    tasks: JoinSet<Outcome>,
    uids: HashMap<tokio::task::Id, String>,
    tombstones: HashMap<String, Instant>,
    /// UIDs seen since the watcher's last `Init`.
    listing: Option<HashSet<String>>,
    collected: bool,
}

/// Watches this node's pods and runs their workers until `shutdown`; then waits for every
/// worker to stop its containers.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.config.name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut d = Dispatcher {
        ctx,
        shutdown: shutdown.clone(),
        workers: HashMap::new(),
        tasks: JoinSet::new(),
        uids: HashMap::new(),
        tombstones: HashMap::new(),
        listing: None,
        collected: false,
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = d.tasks.join_next_with_id() => d.finished(done),
            event = events.next() => match event {
                Some(Ok(event)) => d.handle(event),
                Some(Err(error)) => tracing::warn!(error = %error, "pod watch failed; retrying"),
                None => break,
            },
        }
    }
    // Workers see the same token and stop their containers; wait for them.
    while let Some(done) = d.tasks.join_next_with_id().await {
        d.finished(done);
    }
}

impl Dispatcher {
    fn handle(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.listing = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let (Some(listing), Some(uid)) = (&mut self.listing, &pod.metadata.uid) {
                    listing.insert(uid.clone());
                }
                self.apply(pod);
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let vanished: Vec<String> = self
                    .workers
                    .keys()
                    .filter(|u| !listed.contains(*u))
                    .cloned()
                    .collect();
                for uid in vanished {
                    self.gone(&uid);
                }
                if !self.collected {
                    self.collected = true;
                    self.collect_orphans();
                }
            }
            Event::Apply(pod) => self.apply(pod),
            Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.gone(uid);
                }
            }
        }
    }

    fn apply(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            != Some(self.ctx.config.name.as_str())
        {
            return;
        }
        if let Some(sender) = self.workers.get(&uid) {
            sender.send_replace(Desired::Present(Arc::new(pod)));
            return;
        }
        let now = Instant::now();
        self.tombstones
            .retain(|_, at| now.duration_since(*at) < TOMBSTONE);
        if self.tombstones.contains_key(&uid) {
            return;
        }
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let capacity = self.ctx.config.max_pods as usize;
        if !terminal && self.active() >= capacity {
            self.reject(pod, uid, capacity);
            return;
        }
        let (tx, rx) = watch::channel(Desired::Present(Arc::new(pod)));
        let handle = self.tasks.spawn(worker::run(
            self.ctx.clone(),
            uid.clone(),
            rx,
            self.shutdown.clone(),
        ));
        self.uids.insert(handle.id(), uid.clone());
        self.workers.insert(uid, tx);
    }

    /// Pods that count against `--max-pods`: those not yet Succeeded or Failed.
    fn active(&self) -> usize {
        self.workers
            .values()
            .filter(|w| match &*w.borrow() {
                Desired::Present(pod) => !matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                ),
                Desired::Gone => false,
            })
            .count()
    }

    /// Kubelet admission: the node already runs `--max-pods` pods. The pod fails with
    /// `OutOfpods` (its controller, if any, makes another) and is not looked at again.
    fn reject(&mut self, pod: Pod, uid: String, capacity: usize) {
        let message = format!(
            "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {capacity}",
            self.active()
        );
        tracing::warn!(pod = %uid, "{message}");
        self.ctx.events.emit(
            super::events::pod_ref(&pod, None),
            super::events::EventType::Warning,
            "OutOfpods",
            message.clone(),
        );
        self.tombstones.insert(uid, Instant::now());
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = serde_json::json!({"status": {
            "phase": "Failed", "reason": "OutOfpods", "message": message,
        }});
        tokio::spawn(async move {
            let patch = kube::api::Patch::Merge(&status);
            if let Err(e) = api
                .patch_status(&name, &kube::api::PatchParams::default(), &patch)
                .await
            {
                tracing::warn!(pod = %name, error = %e, "marking a rejected pod failed");
            }
        });
    }

    fn gone(&mut self, uid: &str) {
        if let Some(sender) = self.workers.get(uid) {
            sender.send_replace(Desired::Gone);
        }
    }

    fn finished(&mut self, done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        let (id, outcome) = match done {
            Ok((id, outcome)) => (id, Some(outcome)),
            Err(e) => {
                tracing::error!(error = %e, "pod worker failed; it restarts with the next pod event");
                (e.id(), None)
            }
        };
        let Some(uid) = self.uids.remove(&id) else {
            return;
        };
        self.workers.remove(&uid);
        if outcome == Some(Outcome::Removed) {
            self.tombstones.insert(uid, Instant::now());
        }
    }

    /// Releases directories and IPs of pods that are not on this node any more.
    fn collect_orphans(&mut self) {
        let data_dir = &self.ctx.config.data_dir;
        let on_disk: Vec<String> = std::fs::read_dir(pods_dir(data_dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        let mut ipam = self.ctx.ipam.lock().unwrap_or_else(|e| e.into_inner());
        let with_ip: Vec<String> = ipam.uids().map(str::to_string).collect();
        for uid in on_disk.into_iter().chain(with_ip) {
            if self.workers.contains_key(&uid) {
                continue;
            }
            tracing::info!(pod = %uid, "releasing the resources of a pod that no longer exists");
            if let Err(e) = PodDirs::new(data_dir, &uid).remove() {
                tracing::warn!(pod = %uid, error = %e, "removing an orphaned pod directory failed");
            }
            if let Err(e) = ipam.release(&uid) {
                tracing::warn!(pod = %uid, error = %e, "releasing an orphaned pod IP failed");
            }
        }
    }
}
