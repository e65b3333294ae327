//! kreload: restarts workloads when the ConfigMaps and Secrets they use change.
pub mod certs;
pub mod reload;
