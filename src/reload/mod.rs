//! The pure decision core: which objects a pod spec uses, whether a change reloads a
//! workload, the Reloader-compatible content hash, the patch that performs a reload, how a
//! batch of changes is planned, the workload mutation, when a Deployment's pause-period
//! pauses and resumes it, and the texts of the Events.
//! Functions of values only: no client, no clock, no I/O.

pub mod csi;
pub mod duration;
pub mod explain;
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
pub mod resync;
pub mod rules;
pub mod storm;
#[cfg(test)]
pub(crate) mod testing;
pub mod warnings;
pub mod workload;
