//! Kubernetes Events on workloads. kube's recorder turns a repeat of an Event into a series
//! on the first one, keyed by type, reason, action and object, but not by note: a reload
//! from `configmap/b` after one from `secret/a` would only raise the count of "secret/a
//! changed". So Events go through one recorder per distinct note: a repeat is one with the
//! same note, and every Event's note names its own cause.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::workloads::api_resource;
use crate::reload::model::WorkloadKind;
use crate::reload::report;

/// Records Events for kreload's workload actions.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
    /// A recorder per note; cleared when full, which costs a new Event instead of a count.
    recorders: Arc<Mutex<HashMap<String, Recorder>>>,
}

/// Distinct notes whose series are kept (kube keeps each series for six minutes).
const RECORDERS: usize = 512;

/// One Event to record.
pub struct Note<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: String,
}

impl Events {
    /// Events reported by controller `kreload`, instance `POD_NAME` when set.
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "kreload".into(),
            instance,
        };
        Events {
            client,
            reporter,
            recorders: Arc::default(),
        }
    }

    /// The recorder of Events whose note is `note`.
    fn recorder(&self, note: &str) -> Recorder {
        let mut recorders = self
            .recorders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !recorders.contains_key(note) && recorders.len() >= RECORDERS {
            recorders.clear();
        }
        recorders
            .entry(note.to_owned())
            .or_insert_with(|| Recorder::new(self.client.clone(), self.reporter.clone()))
            .clone()
    }

    /// Records `note` on the workload; a failure is logged, never returned (an Event is
    /// worth less than the reload it reports).
    pub async fn publish(&self, kind: WorkloadKind, namespace: &str, name: &str, note: Note<'_>) {
        let resource = api_resource(kind);
        let reference = ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let text = report::limit(note.note);
        let recorder = self.recorder(&text);
        let event = Event {
            type_: note.type_,
            reason: note.reason.into(),
            note: Some(text),
            action: note.action.into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "cannot record the event");
        }
    }
}
