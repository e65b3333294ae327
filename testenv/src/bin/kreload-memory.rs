//! `kreload-memory`: kreload's memory idle, with many Secrets and ConfigMaps, and per
//! opted-in workload, against a local control plane (docs/memory.md). Not part of CI.

use std::process::ExitCode;

use clap::Parser as _;
use kreload_testenv::memory::{self, MemoryArgs};

fn main() -> ExitCode {
    let args = MemoryArgs::parse();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(memory::run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kreload-memory: {error:#}");
            ExitCode::FAILURE
        }
    }
}
