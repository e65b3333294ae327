//! The pure decision core: which objects a pod spec uses, whether a change reloads a
//! workload, the Reloader-compatible content hash, the patch that performs a reload, how a
//! batch of changes is planned, the workload mutation, when a Deployment's pause-period
//! pauses and resumes it, and the texts of the Events.
//! Functions of values only: no client, no clock, no I/O.

pub mod duration;
pub mod hash;
pub mod keys;
pub mod model;
pub mod mutation;
pub mod observed;
mod ops;
pub mod patch;
pub mod pause;
pub mod plan;
pub mod refs;
pub mod report;
pub mod rules;
pub mod workload;

pub use hash::{configmap_hash, configmap_hash_of, secret_hash, secret_hash_of};
pub use keys::{Key, Vocabulary, parse_bool};
pub use model::{ModelError, RolloutStrategy, SourceKind, SourceRef, Strategy, WorkloadKind};
pub use observed::{Observed, ObservedError};
pub use patch::{Change, Plan, ReloadRecord, Target, plan, recreate_job};
pub use refs::{ContainerUse, PodRefs, pod_refs};
pub use rules::{
    Decision, InvalidPattern, RuleOptions, SkipReason, SourceView, WorkloadView, decide,
    invalid_reload_patterns, opted_in,
};
