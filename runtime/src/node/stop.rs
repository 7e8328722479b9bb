//! How containers and pods end: a container exit and the restart decision (restart policy,
//! CrashLoopBackOff), graceful deletion (Killing, the grace period, the final status, the
//! delete with a UID precondition), and releasing a pod's resources.
//!
//! There are no signals in WASI: a container cannot be asked to stop, so deletion waits for
//! the grace period (`deletionGracePeriodSeconds`, else `terminationGracePeriodSeconds`, else
//! 30 s) for containers to end on their own and then cancels their stop tokens, which
//! interrupts them within one epoch tick (exit 137).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::container::{State, should_restart};
use super::events::{EventType, container_field_path};
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
        let Some((init, name, log)) = self.running.ids.remove(&id) else {
            return;
        };
        log.finish();
        self.ctx.logs.stopped(&self.namespace, &self.name, &name);
        let policy = self.restart_policy();
        let terminating = self.stopping || matches!(self.stage, Stage::Terminating { .. });
        let pod_name = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let records = if init {
            &mut self.init
        } else {
            &mut self.containers
        };
        let Some(record) = records.iter_mut().find(|r| r.name == name) else {
            return;
        };
        let ran = record.exited(&exit);
        tracing::info!(container = %name, code = exit.code, reason = %exit.reason, "container exited");
        let field = Some(container_field_path(&name, init));
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
        // Init containers only rerun when they fail; containers per the restart policy.
        let restart = !terminating
            && if init {
                exit.code != 0 && policy != "Never"
            } else {
                should_restart(&policy, exit.code)
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

    /// Enters Terminating: Killing events, and the deadline after the grace period.
    pub(super) fn begin_termination(&mut self, now: Instant) {
        let meta = &self.pod.metadata;
        let grace = meta
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        let running: Vec<(bool, String)> = self
            .all_records()
            .filter(|r| r.is_running())
            .map(|r| (r.init, r.name.clone()))
            .collect();
        for (init, name) in running {
            self.event(
                Some(container_field_path(&name, init)),
                EventType::Normal,
                "Killing",
                format!("Stopping container {name}"),
            );
        }
        // Waiting containers will not start any more.
        let kill_at = now + Duration::from_secs(grace);
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
        for r in self.init.iter().chain(self.containers.iter()) {
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
