//! AdmissionReview in and out, and the two reviewers: the ConfigMap/Secret trigger and the
//! workload mutation.

pub mod load;
pub mod offline;
pub mod review;
pub mod sources;
pub mod workloads;

pub use load::{Limits, Load};
pub use review::{DEFAULT_BODY_LIMIT, Reviewer, router, router_with_load};
