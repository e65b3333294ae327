//! What the decisions need to know about one workload: its identity and a compact
//! projection (relevant annotations, referenced sources per container), never the object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::keys::Key;
use super::model::WorkloadKind;
use super::refs::{PodRefs, pod_refs};
use super::rules::{RuleOptions, WorkloadView, opted_in};

/// Identifies a workload within a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    pub name: String,
}

/// The projection kept per workload.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    /// Workload metadata annotations under kreload's (and Reloader's) prefixes only.
    pub annotations: BTreeMap<String, String>,
    /// Pod template annotations under the same prefixes only.
    pub template_annotations: BTreeMap<String, String>,
    pub refs: PodRefs,
}

/// Builds the entry for a workload, or `None` when it has not opted in.
impl Entry {
    /// The projection of `obj`, a workload of `kind` as JSON, keeping every annotation (for
    /// the warnings and `explain`, which look at keys the index drops); what cannot be read
    /// counts as absent.
    pub fn of(kind: WorkloadKind, obj: &serde_json::Value) -> Entry {
        let strings = |v: Option<&serde_json::Value>| -> BTreeMap<String, String> {
            v.and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default()
        };
        let template: PodTemplateSpec = obj
            .pointer(super::patch::template_path(kind))
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        Entry {
            annotations: strings(obj.pointer("/metadata/annotations")),
            template_annotations: template
                .metadata
                .and_then(|m| m.annotations)
                .unwrap_or_default(),
            refs: template.spec.as_ref().map(pod_refs).unwrap_or_default(),
        }
    }

    /// The entry as the rules see a workload of `kind`.
    pub fn view(&self, kind: WorkloadKind) -> WorkloadView<'_> {
        WorkloadView {
            kind,
            annotations: &self.annotations,
            template_annotations: &self.template_annotations,
            refs: &self.refs,
        }
    }
}

pub fn project(
    opts: &RuleOptions,
    annotations: &BTreeMap<String, String>,
    template: &PodTemplateSpec,
) -> Option<Entry> {
    let empty = BTreeMap::new();
    let template_annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .unwrap_or(&empty);
    // A Deployment kreload paused stays indexed even if it no longer opts in, so the
    // pause is still resumed (also after a restart).
    let paused_by_kreload = opts.vocabulary.get(annotations, Key::PausedAt).is_some();
    if !opted_in(opts, annotations, template_annotations) && !paused_by_kreload {
        return None;
    }
    let mut refs = template.spec.as_ref().map(pod_refs).unwrap_or_default();
    // Kept for the workload's life: no spare capacity (a Vec's first push reserves four).
    for c in refs.containers.iter_mut().chain(&mut refs.init_containers) {
        c.mounts.shrink_to_fit();
        c.env.shrink_to_fit();
    }
    Some(Entry {
        annotations: opts.vocabulary.relevant(annotations),
        template_annotations: opts.vocabulary.relevant(template_annotations),
        refs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::keys::Vocabulary;
    use crate::reload::model::{SourceKind, SourceRef};

    fn opts() -> RuleOptions {
        RuleOptions {
            vocabulary: Vocabulary::new(true),
            auto_reload_all: false,
            ignored_workload_kinds: Default::default(),
        }
    }

    fn template(annotations: &[(&str, &str)]) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"annotations": annotations.iter().cloned().collect::<BTreeMap<_,_>>()},
            "spec": {"containers": [{
                "name": "app",
                "envFrom": [{"configMapRef": {"name": "settings"}}]
            }]}
        }))
        .expect("template")
    }

    #[test]
    fn projection_keeps_only_relevant_annotations_and_references() {
        let meta = BTreeMap::from([
            ("reloader.stakater.com/auto".to_owned(), "true".to_owned()),
            ("team".to_owned(), "payments".to_owned()),
        ]);
        let entry = project(
            &opts(),
            &meta,
            &template(&[("prometheus.io/scrape", "true")]),
        )
        .expect("opted in");
        assert_eq!(entry.annotations.len(), 1);
        assert!(entry.template_annotations.is_empty());
        assert!(entry.refs.references(&SourceRef {
            kind: SourceKind::ConfigMap,
            name: "settings".into()
        }));
    }

    #[test]
    fn a_deployment_kreload_paused_is_kept_after_opting_out() {
        let meta = BTreeMap::from([(
            "deployment.kreload.dev/paused-at".to_owned(),
            "2026-11-22T00:00:00Z".to_owned(),
        )]);
        let entry = project(&opts(), &meta, &template(&[])).expect("kept");
        assert!(
            entry
                .annotations
                .contains_key("deployment.kreload.dev/paused-at")
        );
    }

    #[test]
    fn workloads_that_did_not_opt_in_are_not_kept() {
        assert!(project(&opts(), &BTreeMap::new(), &template(&[])).is_none());
        let mut all = opts();
        all.auto_reload_all = true;
        assert!(project(&all, &BTreeMap::new(), &template(&[])).is_some());
    }
}
