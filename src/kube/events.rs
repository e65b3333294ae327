//! Kubernetes Events on workloads, through one recorder (repeated Events are patched into a
//! series by kube's recorder).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::workloads::api_resource;
use crate::reload::model::WorkloadKind;
use crate::reload::report;

/// Records Events for kreload's workload actions.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

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
            recorder: Recorder::new(client, reporter),
        }
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
        let event = Event {
            type_: note.type_,
            reason: note.reason.into(),
            note: Some(report::limit(note.note)),
            action: note.action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "cannot record the event");
        }
    }
}
