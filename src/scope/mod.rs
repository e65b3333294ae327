//! Where kreload acts: which namespaces (by name, by label through the namespace gate,
//! never its own) and which sources (kinds, labels, the operations it reloads on).

pub mod selector;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::reload::model::SourceKind;
use selector::Selector;

/// Which writes can matter, from the flags.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub own_namespace: Option<String>,
    /// Empty: every namespace.
    pub namespaces: HashSet<String>,
    pub namespaces_to_ignore: HashSet<String>,
    pub resource_labels: Selector,
    pub ignored_kinds: HashSet<SourceKind>,
    pub reload_on_create: bool,
    pub reload_on_delete: bool,
    /// `--namespace-selector`.
    pub namespace_gate: NamespaceGate,
}

impl Scope {
    /// Whether kreload acts in `namespace` at all.
    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        self.own_namespace.as_deref() != Some(namespace)
            && !self.namespaces_to_ignore.contains(namespace)
            && (self.namespaces.is_empty() || self.namespaces.contains(namespace))
            && self.namespace_gate.allows(namespace)
    }
}

/// Decides whether a namespace is selected. Without a selector every namespace is.
#[derive(Clone, Debug, Default)]
pub struct NamespaceGate {
    selector: Option<String>,
    matching: Arc<RwLock<HashSet<String>>>,
}

impl NamespaceGate {
    /// A gate for a Kubernetes label selector (`a=b,c`); `None` selects everything.
    pub fn new(selector: Option<String>) -> Self {
        Self {
            selector,
            matching: Arc::default(),
        }
    }

    pub fn selector(&self) -> Option<&str> {
        self.selector.as_deref()
    }

    pub fn allows(&self, namespace: &str) -> bool {
        self.selector.is_none()
            || self
                .matching
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(namespace)
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut HashSet<String>)) {
        f(&mut self.matching.write().unwrap_or_else(|p| p.into_inner()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_selector_every_namespace_is_allowed() {
        assert!(NamespaceGate::new(None).allows("anything"));
    }

    #[test]
    fn with_a_selector_only_listed_namespaces_are_allowed() {
        let gate = NamespaceGate::new(Some("team=a".into()));
        assert!(!gate.allows("a1"));
        gate.set(|m| {
            m.insert("a1".into());
        });
        assert!(gate.allows("a1"));
        assert!(!gate.allows("b1"));
    }
}
