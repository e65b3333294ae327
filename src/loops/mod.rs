//! Periodic work beside the request path: the resumer that ends pause windows, on the
//! timers it keeps per workload.

pub mod lease;
pub mod resumer;
pub mod resync;
pub mod timers;
