//! The workload mutation's shell: turns the AdmissionRequest into values for
//! [`crate::reload::mutation::decide`], reads the live hashes it asks for (one source at a
//! time, within a budget), and answers with the patch it decides. Never denies.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;
use kube::core::DynamicObject;
use kube::core::admission::{self, AdmissionRequest, AdmissionResponse};

use super::review::Reviewer;
use crate::kube::sources;
use crate::reload::keys::FIELD_MANAGER;
use crate::reload::model::{SourceRef, WorkloadKind};
use crate::reload::mutation::{self, Mutation, Operation, Request};
use crate::reload::observed::Observed;
use crate::reload::rules::RuleOptions;
use crate::scope::Scope;

pub struct WorkloadsReviewer {
    pub client: Client,
    pub rules: Arc<RuleOptions>,
    pub scope: Scope,
    /// Budget for reading the referenced objects; the webhook timeout is a few seconds.
    pub read_budget: Duration,
}

/// The field manager the request's options name (`fieldManager` of its Create/Update
/// options; a patch's options arrive as UpdateOptions).
fn field_manager(req: &AdmissionRequest<DynamicObject>) -> Option<&str> {
    req.options.as_ref()?.0.get("fieldManager")?.as_str()
}

impl Reviewer for WorkloadsReviewer {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        Box::pin(self.mutate(req))
    }
}

impl WorkloadsReviewer {
    pub async fn mutate(&self, req: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(&req);
        let Some(kind) = WorkloadKind::from_api_kind(&req.kind.kind) else {
            return response;
        };
        let operation = match req.operation {
            admission::Operation::Create => Operation::Create,
            admission::Operation::Update => Operation::Update,
            _ => return response,
        };
        let (Some(obj), Some(namespace)) = (req.object.as_ref(), req.namespace.as_deref()) else {
            return response;
        };
        let Ok(new) = serde_json::to_value(obj) else {
            return response;
        };
        let old = req
            .old_object
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok());
        let request = Request {
            kind,
            operation,
            by_kreload: field_manager(&req) == Some(FIELD_MANAGER),
            in_scope: self.scope.namespace_allowed(namespace),
            old: old.as_ref(),
            new: &new,
        };
        let mut decided = mutation::decide(&self.rules, &request, None);
        if let Mutation::NeedsLive(sources) = &decided {
            let live = self.live_hashes(namespace, sources).await;
            decided = mutation::decide(&self.rules, &request, Some(&live));
        }
        let Mutation::Patch(ops) = decided else {
            return response;
        };
        match response.clone().with_patch(json_patch::Patch(ops)) {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(uid = %req.uid, %error, "cannot encode the workload patch");
                response
            }
        }
    }

    /// Content hashes of `sources`, read one at a time within the read budget; objects that
    /// are missing or unreadable are left out.
    async fn live_hashes(&self, namespace: &str, sources: &[SourceRef]) -> Observed {
        let mut observed = Observed::default();
        let deadline = tokio::time::Instant::now() + self.read_budget;
        for source in sources {
            let read = sources::read(&self.client, namespace, source);
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(Some(live))) => {
                    observed.set(source.clone(), live.hash);
                }
                Ok(Ok(None) | Err(_)) => {}
                Err(_) => {
                    tracing::warn!(
                        namespace,
                        "reading referenced objects took too long; recording what was read"
                    );
                    break;
                }
            }
        }
        observed
    }
}
