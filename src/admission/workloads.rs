//! The workload mutation's shell: turns the AdmissionRequest into values for
//! [`crate::reload::mutation::decide`], reads the live hashes it asks for (one source at a
//! time, within a budget), and answers with the patch it decides and the warnings
//! [`crate::reload::warnings`] finds. Never denies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;
use kube::core::DynamicObject;
use kube::core::admission::{self, AdmissionRequest, AdmissionResponse};

use super::review::Reviewer;
use crate::index::SharedIndex;
use crate::kube::sources;
use crate::logging::Escaped;
use crate::reload::keys::FIELD_MANAGER;
use crate::reload::model::{SourceRef, WorkloadKind};
use crate::reload::mutation::{self, Mutation, Operation, Request};
use crate::reload::observed::Observed;
use crate::reload::rules::RuleOptions;
use crate::reload::warnings::{Lookup, Parts, lookups, warnings};
use crate::scope::Scope;

pub struct WorkloadsReviewer {
    pub client: Client,
    pub rules: Arc<RuleOptions>,
    pub scope: Scope,
    /// Budget for reading the referenced objects; the webhook timeout is a few seconds.
    pub read_budget: Duration,
    /// Told about each opted-in workload admitted, before its watch event arrives.
    pub index: SharedIndex,
}

/// The field manager the request's options name (`fieldManager` of its Create/Update
/// options; a patch's options arrive as UpdateOptions).
fn field_manager(req: &AdmissionRequest<DynamicObject>) -> Option<&str> {
    req.options.as_ref()?.0.get("fieldManager")?.as_str()
}

/// The request's kind, operation, namespace and objects; `None` for what the mutation
/// does not look at.
pub(crate) fn parse(req: &AdmissionRequest<DynamicObject>) -> Option<Parsed> {
    let kind = WorkloadKind::from_api_kind(&req.kind.kind)?;
    let operation = match req.operation {
        admission::Operation::Create => Operation::Create,
        admission::Operation::Update => Operation::Update,
        _ => return None,
    };
    let new = serde_json::to_value(req.object.as_ref()?).ok()?;
    let old = req
        .old_object
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok());
    Some(Parsed {
        kind,
        operation,
        namespace: req.namespace.clone()?,
        new,
        old,
    })
}

impl Reviewer for WorkloadsReviewer {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        Box::pin(self.mutate(req))
    }
}

/// The admitted write, as values.
pub(crate) struct Parsed {
    pub(crate) kind: WorkloadKind,
    pub(crate) operation: Operation,
    pub(crate) namespace: String,
    pub(crate) new: serde_json::Value,
    pub(crate) old: Option<serde_json::Value>,
}

impl WorkloadsReviewer {
    pub async fn mutate(&self, req: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(&req);
        let Some(parsed) = parse(&req) else {
            return response;
        };
        let by_kreload = field_manager(&req) == Some(FIELD_MANAGER);
        let in_scope = self.scope.namespace_allowed(&parsed.namespace);
        // Warnings for everyone in scope, opted in or not: a typo is how a workload fails
        // to opt in. Not for kreload's own writes.
        let warnings = if in_scope && !by_kreload {
            self.warnings(&parsed).await
        } else {
            Vec::new()
        };
        let request = Request {
            kind: parsed.kind,
            operation: parsed.operation,
            by_kreload,
            in_scope,
            old: parsed.old.as_ref(),
            new: &parsed.new,
        };
        if !req.dry_run && mutation::indexes(&self.rules, &request) {
            let now = std::time::Instant::now();
            self.index.write(|i| i.admitted(&parsed.namespace, now));
        }
        let mut decided = mutation::decide(&self.rules, &request, None);
        if let Mutation::NeedsLive(sources) = &decided {
            let live = self.live_hashes(&parsed.namespace, sources).await;
            decided = mutation::decide(&self.rules, &request, Some(&live));
        }
        let mut response = match decided {
            Mutation::Patch(ops) => match response.clone().with_patch(json_patch::Patch(ops)) {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(uid = %Escaped(&req.uid), %error, "cannot encode the workload patch");
                    response
                }
            },
            _ => response,
        };
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        response
    }

    /// The admission warnings for the object (README, "Warnings"), reading the few sources
    /// they need one at a time within the read budget.
    async fn warnings(&self, parsed: &Parsed) -> Vec<String> {
        let vocab = &self.rules.vocabulary;
        let parts = Parts::of(parsed.kind, &parsed.new);
        let subject = parts.subject(parsed.kind.api_kind());
        let mut found = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + self.read_budget;
        let wanted = lookups(vocab, &subject).into_iter();
        // Kinds kreload does not act on are not read (no access to them may be granted).
        for source in wanted.filter(|s| !self.scope.ignored_kinds.contains(&s.kind)) {
            let read = sources::annotations(&self.client, &parsed.namespace, &source);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(Some(annotations))) => {
                    found.insert(source, Lookup::Found(annotations));
                }
                Ok(Ok(None)) => {
                    found.insert(source, Lookup::Missing);
                }
                // Unread sources get no verdict.
                Ok(Err(_)) => {}
                Err(_) => break,
            }
        }
        warnings(vocab, &subject, &found)
    }

    /// Content hashes of `sources`, read one at a time within the read budget; objects that
    /// are missing or unreadable are left out.
    async fn live_hashes(&self, namespace: &str, sources: &[SourceRef]) -> Observed {
        let mut observed = Observed::default();
        let deadline = tokio::time::Instant::now() + self.read_budget;
        let wanted = sources.iter();
        for source in wanted.filter(|s| !self.scope.ignored_kinds.contains(&s.kind)) {
            let read = sources::read(&self.client, namespace, source);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(Some(live))) => {
                    observed.set(source.clone(), live.hash);
                }
                Ok(Ok(None) | Err(_)) => {}
                Err(_) => {
                    tracing::warn!(
                        namespace = %Escaped(namespace),
                        "reading referenced objects took too long; recording what was read"
                    );
                    break;
                }
            }
        }
        observed
    }
}
