//! Every call kreload makes to the Kubernetes API: the client, the watches that feed the
//! workload index and the namespace gate, reads of sources, writes to workloads, Events,
//! and the one retry policy they share.

pub mod client;
pub mod csi;
pub mod events;
pub mod index;
pub mod namespaces;
pub mod retry;
pub mod slim;
pub mod sources;
pub mod watch;
pub mod workloads;
