//! The scenarios of issue 11, each against the same control plane, one controller at a time.

pub mod admission;
pub mod latency;
pub mod memory;
pub mod missed;
pub mod rollouts;

use std::time::Duration;

use anyhow::Result;

use crate::context::Bench;
use crate::controller::{self, Launch, Running, Variant};
use crate::results::Scenario;

/// Starts `variant`, waits until it is quiet, and notes when it did not get quiet.
pub async fn start_settled(b: &Bench, s: &mut Scenario, variant: Variant) -> Result<Running> {
    let running = controller::start(b, variant, &Launch::default()).await?;
    settle(b, s, &running).await;
    Ok(running)
}

pub async fn settle(b: &Bench, s: &mut Scenario, running: &Running) {
    let cap = Duration::from_secs(60 + (30.0 * b.scale) as u64);
    if !running.settle(cap).await {
        s.note(format!(
            "{} was still busy {} s after start; measured anyway",
            running.variant.key(),
            cap.as_secs()
        ));
    }
}
