//! Pulling a container's image as the kubelet does it (ARCHITECTURE D12, the lookup itself in
//! `images/pull.rs`): the pod's `imagePullSecrets`, the `Pulling`/`Pulled`/`StandIn` events,
//! `ErrImagePull` then `ImagePullBackOff` during the image back-off, `ErrImageNeverPull`, and
//! the container's `imageID`.

use std::time::Instant;

use k8s_openapi::api::core::v1::Container;

use super::container::Group;
use super::events::{EventType, container_field_path, pod_ref};
use super::start::{Failure, failure};
use super::worker::Worker;
use crate::images::pull::{Credential, Origin, PullError, PullPolicy, credentials};
use crate::images::{Image, Reference, StandIn, stand_in};

/// A duration as the kubelet's events print it: `512ms`, `1.25s`.
fn human_duration(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
}

/// `name@sha256:...` without the tag: the `imageID` of a container status.
pub fn image_id(image: &Image) -> String {
    let name = image.name.split('@').next().unwrap_or(&image.name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repository = match name[last_slash..].rfind(':') {
        Some(i) if !name.starts_with("file://") => &name[..last_slash + i],
        _ => name,
    };
    format!("{repository}@{}", image.digest)
}

impl Worker {
    /// While a container's image back-off lasts, shows `ImagePullBackOff` (with the last
    /// pull error) instead of pulling. True when it did.
    pub(super) fn back_off_pull(&mut self, group: Group, index: usize, image: &str) -> bool {
        let now = Instant::now();
        let record = &mut self.records_mut(group)[index];
        let Some(until) = record.pull_backoff_until.filter(|&t| t > now) else {
            return false;
        };
        let super::container::State::Waiting {
            reason, message, ..
        } = &record.state
        else {
            return false;
        };
        if reason != "ErrImagePull" {
            return true;
        }
        let message = format!(
            "Back-off pulling image {image:?}: ErrImagePull: {}",
            message.clone().unwrap_or_default()
        );
        record.waiting("ImagePullBackOff", Some(message), Some(until));
        let field = Some(container_field_path(&record.name.clone(), group));
        self.event(
            field.clone(),
            EventType::Normal,
            "BackOff",
            format!("Back-off pulling image {image:?}"),
        );
        self.event(
            field,
            EventType::Warning,
            "Failed",
            "Error: ImagePullBackOff".into(),
        );
        true
    }

    /// Resolves the container's image under its `imagePullPolicy` ("pulls" it), with the
    /// kubelet's events: `Pulling`, `Pulled` (with the time taken and the size, or "already
    /// present"), `StandIn`; records its `imageID`. A failed pull is `ErrImagePull`; retried
    /// during its back-off it is `ImagePullBackOff`.
    pub(super) async fn pull(
        &mut self,
        group: Group,
        index: usize,
        container: &Container,
    ) -> Result<Image, Failure> {
        let field = Some(container_field_path(&container.name, group));
        let written = container.image.clone().unwrap_or_default();
        let reference =
            Reference::parse(&written).map_err(|e| failure("InvalidImageName")(e.to_string()))?;
        let policy = PullPolicy::of(container.image_pull_policy.as_deref(), &reference);
        let credentials = self.pull_credentials().await;
        let events = self.ctx.events.clone();
        let pod = pod_ref(&self.pod, field.clone());
        let pulling_message = format!("Pulling image {written:?}");
        let started = Instant::now();
        let pulling = move || {
            events.emit(
                pod.clone(),
                EventType::Normal,
                "Pulling",
                pulling_message.clone(),
            );
        };
        let pulled = self
            .ctx
            .puller
            .pull(&reference, policy, &credentials, &pulling)
            .await;
        let pulled = match pulled {
            Ok(pulled) => {
                let record = &mut self.records_mut(group)[index];
                record.pull_failures = 0;
                record.pull_backoff_until = None;
                pulled
            }
            Err(PullError::NeverPull(_)) => {
                let message =
                    format!("Container image {written:?} is not present with pull policy of Never");
                self.event(
                    field,
                    EventType::Warning,
                    "ErrImageNeverPull",
                    message.clone(),
                );
                return Err(failure("ErrImageNeverPull")(message));
            }
            Err(PullError::Failed(message)) => {
                let record = &mut self.records_mut(group)[index];
                record.pull_failures = record.pull_failures.saturating_add(1);
                return Err(failure("ErrImagePull")(message));
            }
        };
        let message = match &pulled.origin {
            Origin::BuiltIn | Origin::Present => {
                format!("Container image {written:?} already present on machine")
            }
            Origin::Pulled { bytes, took, .. } => {
                let waited = started.elapsed();
                format!(
                    "Successfully pulled image {written:?} in {} ({} including waiting). Image \
                     size: {bytes} bytes.",
                    human_duration(*took),
                    human_duration(waited)
                )
            }
        };
        self.event(field.clone(), EventType::Normal, "Pulled", message);
        if pulled.origin == Origin::BuiltIn
            && let Some(StandIn { builtin, .. }) = stand_in(&reference)
        {
            self.event(
                field,
                EventType::Normal,
                "StandIn",
                format!(
                    "Image {written:?} runs as its wasmkube stand-in {builtin} (wasmkube runs \
                     WebAssembly, not container images)"
                ),
            );
        }
        self.records_mut(group)[index].image_id = image_id(&pulled.image);
        Ok(pulled.image)
    }

    /// The registry credentials of the pod's `imagePullSecrets` (missing Secrets are skipped,
    /// as the kubelet does, with a warning).
    async fn pull_credentials(&self) -> Vec<Credential> {
        let names: Vec<String> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        let mut out = Vec::new();
        for name in names {
            match self.objects.secret(&name).await {
                Ok(Some(secret)) => {
                    let data: std::collections::BTreeMap<String, Vec<u8>> = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    out.extend(credentials(&data));
                }
                Ok(None) => {
                    tracing::warn!(secret = %name, "imagePullSecret not found; pulling without it")
                }
                Err(e) => tracing::warn!(secret = %name, error = %e, "imagePullSecret unreadable"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_the_kubelet() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_micros(12_345)), "12ms");
        assert_eq!(human_duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(human_duration(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn image_ids_drop_the_tag_and_pin_the_digest() {
        let web = Image::from_bytes("wasmkube/web:latest", b"\0asm".to_vec());
        assert_eq!(image_id(&web), format!("wasmkube/web@{}", web.digest));
        let port = Image::from_bytes("localhost:5000/app", b"x".to_vec());
        assert_eq!(
            image_id(&port),
            format!("localhost:5000/app@{}", port.digest)
        );
        let file = Image::from_bytes("file:///srv/a.wasm", b"x".to_vec());
        assert_eq!(
            image_id(&file),
            format!("file:///srv/a.wasm@{}", file.digest)
        );
    }
}
