//! `kreload-soak`: steady ConfigMap/Secret updates against a local control plane, kreload's
//! memory sampled, nothing lost (README, "Soak"). Not part of CI.

use std::process::ExitCode;

use clap::Parser as _;
use kreload_testenv::soak::{self, SoakArgs};

fn main() -> ExitCode {
    let args = SoakArgs::parse();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(soak::run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kreload-soak: {error:#}");
            ExitCode::FAILURE
        }
    }
}
