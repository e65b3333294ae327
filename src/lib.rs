//! kreload: restarts workloads when the ConfigMaps and Secrets they use change.
pub mod admission;
pub mod certs;
pub mod controlplane;
pub mod metrics;
pub mod reload;
pub mod shutdown;
