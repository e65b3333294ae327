//! The admission side: the TLS webhook server, AdmissionReview handling and the admin port.

pub mod admin;
pub mod review;
pub mod server;
pub mod sources;
pub mod tls;
pub mod workloads;

pub use admin::{Readiness, admin_router};
pub use review::{DEFAULT_BODY_LIMIT, Reviewer, router};
pub use server::{ConnectionLimits, ServerError, serve_plain, serve_tls};
pub use tls::{CertResolver, TlsError, server_config};
