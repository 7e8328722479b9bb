//! Kubernetes Events from the node: `Pulled`, `Created`, `Started`, `Killing`, `BackOff`,
//! `Failed`, ... as core/v1 Events that `kubectl describe pod` lists.
//!
//! Pod workers never wait for the API here: [`Recorder::emit`] hands the event to one owner
//! task ([`run`]) over a bounded channel (dropped with a log line when full). The owner
//! aggregates repeats the way the kubelet's correlator does: the same object, field path,
//! type, reason and message bumps `count` and `lastTimestamp` of the event already written
//! instead of creating another.

use super::container::Group;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events queued for the writer before new ones are dropped.
const QUEUE: usize = 1024;
/// Distinct events remembered for aggregation.
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Things going as planned.
    Normal,
    /// Something the user should look at.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
struct Record {
    object: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// Hands events to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
}

impl Recorder {
    /// A recorder and the receiving end to pass to [`run`].
    pub fn new() -> (Recorder, Receiver) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Recorder { tx }, Receiver(rx))
    }

    /// Records an event about `object` without waiting.
    pub fn emit(
        &self,
        object: ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let record = Record {
            object,
            type_,
            reason: reason.to_string(),
            message: message.into(),
        };
        if self.tx.try_send(record).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}

/// The receiving end of a [`Recorder`].
#[derive(Debug)]
pub struct Receiver(mpsc::Receiver<Record>);

/// The reference to a pod, or to one of its containers when `field_path` is
/// `spec.containers{name}` (see [`container_field_path`]).
pub fn pod_ref(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path,
    }
}

/// `spec.containers{name}`, `spec.initContainers{name}` or `spec.ephemeralContainers{name}`.
pub fn container_field_path(name: &str, group: Group) -> String {
    match group {
        Group::Init => format!("spec.initContainers{{{name}}}"),
        Group::Main => format!("spec.containers{{{name}}}"),
        Group::Ephemeral => format!("spec.ephemeralContainers{{{name}}}"),
    }
}

/// The identity of an event for aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: Option<String>,
    name: Option<String>,
    field_path: Option<String>,
    type_: EventType,
    reason: String,
    message: String,
}

#[derive(Debug)]
struct Written {
    name: String,
    count: i32,
    seq: u64,
}

/// Writes events until every [`Recorder`] is gone or `shutdown`.
pub async fn run(
    client: kube::Client,
    node: String,
    mut rx: Receiver,
    shutdown: CancellationToken,
) {
    let mut written: HashMap<Key, Written> = HashMap::new();
    let mut seq: u64 = 0;
    loop {
        let record = tokio::select! {
            () = shutdown.cancelled() => return,
            record = rx.0.recv() => match record { Some(r) => r, None => return },
        };
        let namespace = record
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let key = Key {
            uid: record.object.uid.clone(),
            name: record.object.name.clone(),
            field_path: record.object.field_path.clone(),
            type_: record.type_,
            reason: record.reason.clone(),
            message: record.message.clone(),
        };
        let now = jiff::Timestamp::now();
        seq += 1;
        let n = seq;
        if let Some(prev) = written.get_mut(&key) {
            let patch = json!({ "count": prev.count + 1, "lastTimestamp": Time(now) });
            match api
                .patch(&prev.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    prev.count += 1;
                    prev.seq = n;
                    continue;
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(error) => {
                    tracing::debug!(error = %error, "updating an event failed");
                    continue;
                }
            }
        }
        let event = new_event(&record, &node, now, n);
        let name = event.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                if written.len() >= REMEMBERED {
                    forget_oldest(&mut written);
                }
                written.insert(
                    key,
                    Written {
                        name,
                        count: 1,
                        seq: n,
                    },
                );
            }
            Err(error) => {
                tracing::debug!(error = %error, reason = %record.reason, "writing an event failed")
            }
        }
    }
}

fn forget_oldest(written: &mut HashMap<Key, Written>) {
    if let Some(oldest) = written
        .iter()
        .min_by_key(|(_, w)| w.seq)
        .map(|(k, _)| k.clone())
    {
        written.remove(&oldest);
    }
}

/// A new core/v1 Event, named `<object>.<hex>` as the kubelet names them.
fn new_event(record: &Record, node: &str, now: jiff::Timestamp, seq: u64) -> Event {
    let object_name = record
        .object
        .name
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let unique = (now.as_nanosecond() as u64).wrapping_add(seq);
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{object_name}.{unique:x}")),
            namespace: Some(
                record
                    .object
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            ..ObjectMeta::default()
        },
        involved_object: record.object.clone(),
        reason: Some(record.reason.clone()),
        message: Some(record.message.clone()),
        type_: Some(record.type_.as_str().to_string()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.to_string()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.to_string()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_container_and_the_kubelet() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u1".into());
        let record = Record {
            object: pod_ref(&pod, Some(container_field_path("main", Group::Main))),
            type_: EventType::Warning,
            reason: "BackOff".into(),
            message: "Back-off restarting failed container".into(),
        };
        let e =
            serde_json::to_value(new_event(&record, "n1", jiff::Timestamp::UNIX_EPOCH, 1)).unwrap();
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{main}");
        assert_eq!(e["involvedObject"]["uid"], "u1");
        assert_eq!(e["source"], json!({ "component": "kubelet", "host": "n1" }));
        assert_eq!(
            (e["type"].as_str(), e["count"].as_i64()),
            (Some("Warning"), Some(1))
        );
        assert_eq!(e["metadata"]["name"], "web.1");
        assert_eq!(e["metadata"]["namespace"], "ns");
        assert_eq!(
            container_field_path("init", Group::Init),
            "spec.initContainers{init}"
        );
    }
}
