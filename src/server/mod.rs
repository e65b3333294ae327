//! Serving: the TLS listener for admissions (with certificate reload), the plain-HTTP admin
//! port (`/livez`, `/readyz`, `/metrics`), and shutdown.

mod activity;
pub mod admin;
pub mod listener;
pub mod shutdown;
pub mod tls;

pub use admin::{Probe, Readiness, admin_router};
pub use listener::{ConnectionLimits, ServerError, serve_plain, serve_tls};
pub use tls::{CertResolver, TlsError, server_config, server_config_with};
