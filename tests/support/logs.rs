//! What the log tests share: a writer they read back, and a reviewer that allows
//! everything (logging one line inside the admission span, as the real reviewers do).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use kreload::admission::Reviewer;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};

pub struct Allow;

impl Reviewer for Allow {
    fn review(&self, req: AdmissionRequest<DynamicObject>) -> BoxFuture<'_, AdmissionResponse> {
        let response = AdmissionResponse::from(&req);
        Box::pin(async move {
            tracing::info!("reviewed");
            response
        })
    }
}

/// A writer the test reads back.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
