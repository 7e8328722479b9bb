//! How containers and pods end: a container exit and the restart decision (restart policy,
//! CrashLoopBackOff), graceful deletion (Killing, the grace period, the final status, the
//! delete with a UID precondition), and releasing a pod's resources.
//!
//! There are no signals in WASI. Deletion runs each container's `preStop` hook, then closes
//! its listening sockets (the stand-in for SIGTERM: a server's `accept` fails, it finishes
//! its open connections and exits), waits out the grace period (`deletionGracePeriodSeconds`,
//! else `terminationGracePeriodSeconds`, else 30 s) for containers to end on their own, and
//! then cancels their stop tokens, which interrupts them within one epoch tick (exit 137).
//! A container that never listens (`sleep 3600`) takes the whole grace period, as a PID 1
//! that ignores SIGTERM does.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use tokio_util::sync::CancellationToken;

use super::container::{Group, State, should_restart};
use super::events::{EventType, container_field_path, pod_ref};
use super::lifecycle::{self, Hook};
use super::worker::{Stage, Worker};
use crate::wasm::Exit;

impl Worker {
    /// Handles the end of a container instance.
    pub(super) fn on_exit(
        &mut self,
        joined: Result<(tokio::task::Id, Exit), tokio::task::JoinError>,
    ) {
        let (id, exit) = match joined {
            Ok(done) => done,
            Err(e) => {
                let exit = Exit {
                    code: 1,
                    reason: "Error".into(),
                    message: Some(format!("the container task failed: {e}")),
                };
                (e.id(), exit)
            }
        };
        let Some((group, name, log)) = self.running.ids.remove(&id) else {
            return;
        };
        log.finish();
        self.ctx.logs.stopped(&self.namespace, &self.name, &name);
        self.ctx.exec.remove(&self.namespace, &self.name, &name);
        let policy = self.restart_policy();
        let terminating = self.stopping || matches!(self.stage, Stage::Terminating { .. });
        let pod_name = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let stage = self.stage;
        let records = self.records_mut(group);
        let Some(record) = records.iter_mut().find(|r| r.name == name) else {
            return;
        };
        let ran = record.exited(&exit);
        tracing::info!(container = %name, code = exit.code, reason = %exit.reason, "container exited");
        let field = Some(container_field_path(&name, group));
        let mut events = Vec::new();
        match exit.reason.as_str() {
            "OOMKilled" => events.push((
                EventType::Warning,
                "OOMKilled",
                format!(
                    "Container {name} was OOM-killed: {}",
                    exit.message.clone().unwrap_or_default()
                ),
            )),
            "StartError" => events.push((
                EventType::Warning,
                "Failed",
                format!("Error: {}", exit.message.clone().unwrap_or_default()),
            )),
            _ => {}
        }
        // Sidecars rerun until the containers are done; other init containers only when
        // they fail; containers per the restart policy.
        // Ephemeral containers never restart.
        let restart = !terminating
            && match group {
                Group::Init if record.sidecar => !matches!(stage, Stage::Done),
                Group::Init => exit.code != 0 && policy != "Never",
                Group::Main => should_restart(&policy, exit.code),
                Group::Ephemeral => false,
            };
        if restart {
            let delay = record.backoff.next(ran);
            if delay.is_zero() {
                record.waiting("ContainerCreating", None, None);
            } else {
                let message = format!(
                    "back-off {} restarting failed container={name} pod={pod_name}",
                    human(delay)
                );
                record.waiting(
                    "CrashLoopBackOff",
                    Some(message),
                    Some(Instant::now() + delay),
                );
                events.push((
                    EventType::Warning,
                    "BackOff",
                    format!("Back-off restarting failed container {name} in pod {pod_name}"),
                ));
            }
        }
        for (type_, reason, message) in events {
            self.event(field.clone(), type_, reason, message);
        }
    }

    /// The pod's grace period: `deletionGracePeriodSeconds`, else
    /// `terminationGracePeriodSeconds`, else 30 s.
    pub(super) fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(seconds as u64)
    }

    /// Enters Terminating: Killing events, each running container's `preStop` hook and then
    /// its drain (listeners close), and the kill deadline after the grace period.
    pub(super) fn begin_termination(&mut self, now: Instant) {
        let grace = self.grace_period();
        let running: Vec<(Group, String, CancellationToken)> = self
            .all_records()
            .filter_map(|r| match &r.state {
                State::Running { drain, .. } => Some((r.group(), r.name.clone(), drain.clone())),
                _ => None,
            })
            .collect();
        for (group, name, drain) in running {
            let field = Some(container_field_path(&name, group));
            self.event(
                field.clone(),
                EventType::Normal,
                "Killing",
                format!("Stopping container {name}"),
            );
            let container = self.container_spec(group, &name);
            let handler = container
                .as_ref()
                .and_then(|c| Hook::PreStop.handler(c).cloned());
            let network = self.pod_ip.map(|ip| self.network(ip));
            let events = self.ctx.events.clone();
            let object = pod_ref(&self.pod, field);
            let target = self.target(&name);
            // Listeners close only once no node sends new connections here: the pod has left
            // every Service's endpoints (or the wait ran out), and its preStop hook is done.
            let left = self.ctx.services.clone().left_endpoints(
                self.pod_ip,
                grace.min(self.ctx.config.endpoint_drain_timeout),
                self.ctx.config.endpoint_propagation_delay,
            );
            tokio::spawn(async move {
                let pre_stop = async {
                    let (Some(container), Some(handler), Some(network)) =
                        (container, handler, network)
                    else {
                        return;
                    };
                    let outcome = tokio::time::timeout(
                        grace,
                        lifecycle::run(
                            Hook::PreStop,
                            &handler,
                            &container,
                            network,
                            &target,
                            grace,
                        ),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("did not finish within {grace:?}")));
                    if let Err(message) = outcome {
                        events.emit(
                            object,
                            EventType::Warning,
                            Hook::PreStop.failed_reason(),
                            format!("PreStopHook failed for container {name:?}: {message}"),
                        );
                    }
                };
                tokio::join!(pre_stop, left);
                drain.cancel();
            });
        }
        // Waiting containers will not start any more.
        let kill_at = now + grace;
        self.stage = Stage::Terminating { kill_at };
    }

    /// All containers stopped: final status, delete the pod object (precondition on UID).
    /// Returns true when the pod is gone.
    pub(super) async fn finish_deletion(&mut self) -> bool {
        self.status_retry_at = None;
        self.write_status().await;
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&self.name, &params).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => true,
            Err(error) => {
                tracing::warn!(error = %error, "deleting the pod failed; retrying");
                self.stage = Stage::Terminating {
                    kill_at: Instant::now(),
                };
                self.status_retry_at = Some(Instant::now() + self.ctx.config.backoff_base);
                false
            }
        }
    }

    /// Cancels every running instance (they end within one epoch tick).
    pub(super) fn kill_all(&mut self) {
        for r in self.all_records() {
            if let State::Running { stop, .. } = &r.state {
                stop.cancel();
            }
        }
    }

    /// Waits for every instance to end, recording the exits.
    pub(super) async fn drain(&mut self) {
        while let Some(joined) = self.running.tasks.join_next_with_id().await {
            self.on_exit(joined);
        }
    }

    /// Releases the pod's IP, directories and logs.
    pub(super) fn cleanup(&mut self) {
        self.ctx
            .logs
            .remove_pod(&self.namespace, &self.name, &self.uid);
        self.ctx.usages.remove_pod(&self.namespace, &self.name);
        self.ctx.exec.remove_pod(&self.namespace, &self.name);
        if let Err(e) = self
            .ctx
            .ipam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(&self.uid)
        {
            tracing::warn!(error = %e, "releasing the pod IP failed");
        }
        if let Err(e) = self.dirs.remove() {
            tracing::warn!(error = %e, "removing the pod directory failed");
        }
    }
}

/// `10s`, `5m0s`: durations the way the kubelet prints back-offs.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}s", s.max(1))
    }
}
