//! kreload: restarts workloads when the ConfigMaps and Secrets they use change.
//!
//! Read top to bottom, the modules follow one ConfigMap edit (docs/architecture.md):
//! [`admission`] decides inline and enqueues on the [`queue`]; the [`worker`] confirms the
//! write, plans with the pure core in [`reload`] over the workload [`index`], and patches
//! through [`kube`]. [`scope`] says where kreload acts, [`loops`] holds periodic work, and
//! [`server`] the listeners. [`config`] is the typed configuration that [`run`] wires up.

pub mod admission;
pub mod certs;
pub mod cli;
pub mod config;
pub mod explain;
pub mod index;
pub mod kube;
pub mod logging;
pub mod loops;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod reload;
pub mod run;
pub mod scope;
pub mod server;
#[cfg(test)]
mod testing;
pub mod worker;
