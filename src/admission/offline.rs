//! The whole admission decision without I/O, for the fuzz target (`fuzz/`) and tests: a
//! body goes through [`parse`], then through the source trigger's [`admit`] and the workload
//! mutation's [`mutation::decide`] (with and without live hashes), as the endpoints would.

use std::collections::BTreeSet;

use super::review::{Parsed, parse};
use super::sources::{Admitted, admit};
use super::workloads::parse as workload;
use crate::reload::keys::Vocabulary;
use crate::reload::mutation::{self, Mutation, Request};
use crate::reload::observed::Observed;
use crate::reload::rules::RuleOptions;
use crate::scope::Scope;

/// What the endpoints would do with `body`.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No request uid: answered 400.
    Malformed,
    /// A uid, but the objects do not parse: allowed with a warning.
    Unreadable,
    /// Parsed; `enqueued` says whether the source trigger queued a reload, `patched`
    /// whether the workload mutation answered with a patch.
    Reviewed { enqueued: bool, patched: bool },
}

/// Runs `body` through parsing and both decisions, in every namespace, with every
/// workload a candidate (the most code a body can reach).
pub fn review(body: &[u8]) -> Outcome {
    let request = match parse(body) {
        Parsed::Request(request) => request,
        Parsed::Unreadable { .. } => return Outcome::Unreadable,
        Parsed::Malformed(_) => return Outcome::Malformed,
    };
    let scope = Scope::default();
    let rules = RuleOptions {
        vocabulary: Vocabulary::new(true),
        auto_reload_all: true,
        ignored_workload_kinds: BTreeSet::new(),
    };
    let enqueued = matches!(
        admit(&scope, &rules.vocabulary, &request, |_| true),
        Admitted::Enqueue(_)
    );
    let patched = workload(&request).is_some_and(|parsed| {
        let request = Request {
            kind: parsed.kind,
            operation: parsed.operation,
            by_kreload: false,
            in_scope: true,
            old: parsed.old.as_ref(),
            new: &parsed.new,
        };
        match mutation::decide(&rules, &request, None) {
            Mutation::NeedsLive(_) => matches!(
                mutation::decide(&rules, &request, Some(&Observed::default())),
                Mutation::Patch(_)
            ),
            decided => matches!(decided, Mutation::Patch(_)),
        }
    });
    Outcome::Reviewed { enqueued, patched }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixtures_take_the_paths_the_endpoints_take() {
        let update = include_bytes!("../../tests/fixtures/configmap_update.json");
        assert_eq!(
            review(update),
            Outcome::Reviewed {
                enqueued: true,
                patched: false
            }
        );
        let unreadable = include_bytes!("../../tests/fixtures/secret_unreadable.json");
        assert_eq!(review(unreadable), Outcome::Unreadable);
        assert_eq!(review(b"{"), Outcome::Malformed);
        assert_eq!(review(b"\xff\xfe"), Outcome::Malformed);
    }
}
