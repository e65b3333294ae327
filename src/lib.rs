//! kreload: restarts workloads when the ConfigMaps and Secrets they use change.
pub mod admission;
pub mod certs;
pub mod cli;
pub mod controlplane;
pub mod demo;
pub mod index;
pub mod local;
pub mod metrics;
pub mod namespaces;
pub mod reload;
pub mod run;
pub mod selector;
pub mod shutdown;
pub mod worker;
