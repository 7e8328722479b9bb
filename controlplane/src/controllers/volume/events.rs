//! The volume controller's Events. Kubernetes' binder records an Event on every sync and
//! lets the recorder fold repeats into a count; this one records each distinct Event once
//! per object and phase, so a claim waiting for its first consumer says so once, and again
//! only after it has been through another phase.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;

use crate::controllers::events;

/// The component of the binder's Events (kube-controller-manager's name for it).
pub const CONTROLLER: &str = "persistentvolume-controller";

/// One Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The reason (`WaitForFirstConsumer`, `ProvisioningFailed`...).
    pub reason: &'static str,
    /// The message.
    pub message: String,
    /// Who says it: [`CONTROLLER`] or a provisioner.
    pub component: String,
}

impl Note {
    /// A `Normal` Event from the binder.
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: false,
            reason,
            message: message.into(),
            component: CONTROLLER.into(),
        }
    }

    /// A `Warning` Event from the binder.
    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: true,
            ..Note::normal(reason, message)
        }
    }

    /// The same Event from another component (a provisioner).
    pub fn from(mut self, component: impl Into<String>) -> Note {
        self.component = component.into();
        self
    }
}

/// What was recorded about one object since it entered its current phase.
#[derive(Default)]
struct Seen {
    phase: String,
    notes: HashSet<(String, &'static str, String)>,
}

/// Records Events once per object and phase.
#[derive(Default)]
pub struct Recorder {
    seen: HashMap<String, Seen>,
}

impl Recorder {
    /// Whether `note` about the object `uid` in `phase` is new (and remembers it).
    pub fn first(&mut self, uid: &str, phase: &str, note: &Note) -> bool {
        let seen = self.seen.entry(uid.to_string()).or_default();
        if seen.phase != phase {
            seen.phase = phase.to_string();
            seen.notes.clear();
        }
        seen.notes
            .insert((note.component.clone(), note.reason, note.message.clone()))
    }

    /// Records `note` about `regarding` (in `phase`) unless it was already.
    pub async fn record(
        &mut self,
        client: &Client,
        regarding: ObjectReference,
        phase: &str,
        note: &Note,
    ) {
        let uid = regarding.uid.clone().unwrap_or_default();
        if self.first(&uid, phase, note) {
            events::emit(
                client,
                &note.component,
                regarding,
                note.warning,
                note.reason,
                note.message.clone(),
            )
            .await;
        }
    }

    /// Forgets objects that are gone.
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.seen.retain(|uid, _| live.contains(uid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_recorded_once_per_phase() {
        let mut r = Recorder::default();
        let wait = Note::normal("WaitForFirstConsumer", "waiting");
        assert!(r.first("u", "Pending", &wait));
        assert!(!r.first("u", "Pending", &wait));
        assert!(r.first("u", "Pending", &Note::normal("ExternalProvisioning", "x")));
        assert!(r.first("u", "Bound", &wait), "a new phase starts over");
        r.retain(&HashSet::new());
        assert!(r.first("u", "Bound", &wait));
    }
}
