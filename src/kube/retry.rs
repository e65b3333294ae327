//! The one retry policy of kreload's API calls: how many attempts, how long between them,
//! and which failures are worth another try.

use std::time::Duration;

/// Attempts for a read-plan-patch cycle (a refused guarded patch is read and planned again).
pub const ATTEMPTS: u32 = 5;
/// Attempts to create a Job's copy once the original is deleted: about 20 s with
/// [`backoff`], because only the copy in hand can bring the Job back.
pub const JOB_CREATE_ATTEMPTS: u32 = 10;

/// The wait after failed attempt `attempt` (1-based): 200 ms doubling, capped at 3.2 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(5))
}

/// Conflicts, throttling, server errors and transport failures may pass on another try; a
/// policy denial or an invalid object will not.
pub fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 409 || status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// An error with its sources, on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure("x", "y").with_code(code)))
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<u64> = (1..=8).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 3200, 3200, 3200]);
    }

    #[test]
    fn only_failures_that_can_pass_are_transient() {
        for code in [409, 429, 500, 503] {
            assert!(transient(&api(code)), "{code}");
        }
        for code in [400, 403, 404, 422] {
            assert!(!transient(&api(code)), "{code}");
        }
    }
}
