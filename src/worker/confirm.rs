//! Was the admitted write persisted? The webhook sees writes that are later rejected or
//! never stored (another webhook denies, a conflict, an etcd failure), so before acting the
//! worker reads the live object and acts only when its content is what was admitted.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;

use crate::kube::retry::error_chain;
use crate::kube::sources::{self, Error};
use crate::queue::Intent;
use crate::reload::hash::{configmap_hash_of, secret_hash_of};
use crate::reload::model::SourceKind;

/// What the live object says about an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The live content is the admitted one. `annotations` are the live object's (for
    /// `ignore` and `match`), `hash` the content hash to write (for a delete, the hash of
    /// empty content).
    Persisted {
        hash: String,
        annotations: BTreeMap<String, String>,
        /// The admitted write was a delete, and the object is gone.
        deleted: bool,
    },
    /// The live content never became the admitted one (rejected after admission) or has
    /// moved on to content this worker has not been told about.
    NotPersisted,
}

/// What one read of the live object says about an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Act on this content (`deleted`: the object is gone).
    Act {
        hash: String,
        deleted: bool,
    },
    /// The admitted write may still be in flight: read again.
    Wait,
    NotPersisted,
}

/// Pure decision. `live` is the live content hash (`None`: the object does not exist);
/// `last` says the patience is used up.
fn judge(intent: &Intent, live: Option<&str>, last: bool) -> Verdict {
    match (intent.hash.as_deref(), live) {
        (Some(admitted), Some(live)) if admitted == live => {
            return Verdict::Act {
                hash: live.to_owned(),
                deleted: false,
            };
        }
        (None, None) => {
            return Verdict::Act {
                hash: String::new(),
                deleted: true,
            };
        }
        _ => {}
    }
    if !last {
        return Verdict::Wait;
    }
    match live {
        // The admitted write never showed up, but the content did change since before the
        // window: an earlier write in the window was stored and a later one rejected (or a
        // newer one landed). The live content is stored content: act on it.
        Some(live) if intent.hash.is_some() && intent.base.as_deref() != Some(live) => {
            Verdict::Act {
                hash: live.to_owned(),
                deleted: false,
            }
        }
        _ => Verdict::NotPersisted,
    }
}

/// Reads the live object, retrying with backoff while the admitted write may still be in
/// flight (and through transient read errors), for at most about `patience`.
pub async fn confirm(
    client: &Client,
    intent: &Intent,
    patience: Duration,
) -> Result<Outcome, Error> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(50);
    loop {
        let last = tokio::time::Instant::now() + delay > deadline;
        let admitted = intent.hash.as_deref();
        let read =
            sources::read_confirming(client, &intent.namespace, &intent.source, admitted).await;
        let state = match read {
            Ok(state) => state,
            Err(error) if last => return Err(error),
            Err(error) => {
                tracing::debug!(error = %error_chain(&error), "read failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let live_hash = state.as_ref().map(|live| live.hash.as_str());
        match judge(intent, live_hash, last) {
            Verdict::Act { hash, deleted } => {
                let hash = if deleted {
                    match intent.source.kind {
                        SourceKind::ConfigMap => configmap_hash_of(&ConfigMap::default()),
                        // Never admitted (Reloader ignores status deletes too); empty content.
                        SourceKind::Secret | SourceKind::SecretProviderClass => {
                            secret_hash_of(&Secret::default())
                        }
                    }
                } else {
                    hash
                };
                let annotations = state.map(|live| live.annotations).unwrap_or_default();
                return Ok(Outcome::Persisted {
                    hash,
                    annotations,
                    deleted,
                });
            }
            Verdict::NotPersisted => return Ok(Outcome::NotPersisted),
            Verdict::Wait => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Operation;
    use crate::reload::model::SourceRef;

    fn intent(hash: Option<&str>, base: Option<&str>) -> Intent {
        Intent {
            namespace: "ns".into(),
            source: SourceRef {
                kind: SourceKind::ConfigMap,
                name: "cm".into(),
            },
            hash: hash.map(str::to_owned),
            base: base.map(str::to_owned),
            operation: if hash.is_some() {
                Operation::Update
            } else {
                Operation::Delete
            },
            admitted: None,
        }
    }

    fn act(hash: &str) -> Verdict {
        Verdict::Act {
            hash: hash.into(),
            deleted: false,
        }
    }

    #[test]
    fn the_admitted_content_is_acted_on_at_once() {
        assert_eq!(
            judge(&intent(Some("h2"), Some("h1")), Some("h2"), false),
            act("h2")
        );
    }

    #[test]
    fn older_content_means_the_write_may_still_be_in_flight() {
        let i = intent(Some("h2"), Some("h1"));
        assert_eq!(judge(&i, Some("h1"), false), Verdict::Wait);
        // Still the content from before the window when patience runs out: rejected.
        assert_eq!(judge(&i, Some("h1"), true), Verdict::NotPersisted);
    }

    #[test]
    fn a_stored_write_followed_by_a_rejected_one_is_not_lost() {
        // Window: h1 -> h2 (stored) -> h3 (admitted, then rejected). The intent carries h3
        // and the base h1; live says h2.
        let i = intent(Some("h3"), Some("h1"));
        assert_eq!(judge(&i, Some("h2"), false), Verdict::Wait);
        assert_eq!(judge(&i, Some("h2"), true), act("h2"));
    }

    #[test]
    fn deletes_are_confirmed_by_absence() {
        let i = intent(None, Some("h1"));
        assert_eq!(
            judge(&i, None, false),
            Verdict::Act {
                hash: String::new(),
                deleted: true
            }
        );
        assert_eq!(judge(&i, Some("h1"), true), Verdict::NotPersisted);
    }

    #[test]
    fn an_object_gone_before_its_update_is_confirmed_is_not_reloaded() {
        assert_eq!(
            judge(&intent(Some("h2"), Some("h1")), None, true),
            Verdict::NotPersisted
        );
    }
}
