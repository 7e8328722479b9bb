//! Ephemeral containers (`kubectl debug`): added to a running pod's spec through the
//! `pods/ephemeralcontainers` subresource, started once each, never restarted, reported in
//! `ephemeralContainerStatuses`.

use std::time::Instant;

use super::container::{Backoff, Group, Record, State};
use super::worker::Worker;

impl Worker {
    /// Starts the ephemeral containers added to the spec since (`kubectl debug`); each
    /// runs once.
    pub(super) async fn start_ephemeral(&mut self, now: Instant) {
        let added: Vec<(String, String)> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.ephemeral_containers.iter().flatten())
            .filter(|c| !self.ephemeral.iter().any(|r| r.name == c.name))
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect();
        for (name, image) in added {
            let c = &self.ctx.config;
            let backoff = Backoff::new(c.backoff_base, c.backoff_max, c.backoff_reset);
            let mut record = Record::new(&name, false, &image, backoff, "ContainerCreating");
            record.ephemeral = true;
            // One that ran before an agent restart stays as it ended.
            let previous = self.pod.status.as_ref().and_then(|s| {
                s.ephemeral_container_statuses
                    .iter()
                    .flatten()
                    .find(|s| s.name == name)
            });
            if let Some(previous) = previous {
                record.adopt(previous, "Never");
                if record.ran_before && record.terminated().is_none() {
                    let last = record.last.take();
                    if let Some(last) = last {
                        record.state = State::Terminated(last);
                    }
                }
            }
            self.ephemeral.push(record);
        }
        for i in 0..self.ephemeral.len() {
            if let State::Waiting { retry_at, .. } = &self.ephemeral[i].state
                && retry_at.is_none_or(|t| t <= now)
            {
                self.start(Group::Ephemeral, i).await;
            }
        }
    }
}
