//! `kreload`: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser as _;
use kreload::cli::{Cli, Command};

/// mimalloc gives freed memory back to the system soon after a burst of large reviews;
/// glibc's per-thread arenas keep much of it (see README, "Admission server limits").
/// Built without its transparent-huge-page requests (`no_thp`, docs/memory.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kreload::run::runtime::with_purge_delay();
    kreload::run::runtime::disable_transparent_huge_pages();
    let cli = Cli::parse_from(kreload::cli::with_default_command(std::env::args_os()));
    let result = match cli.command {
        Command::Serve(args) => kreload::run::runtime::build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| {
                kreload::logging::init(&args.log)?;
                runtime.block_on(async move {
                    let shutdown = kreload::server::shutdown::signals()?;
                    kreload::run::serve(*args, shutdown).await
                })
            }),
        Command::Certs(args) => kreload::run::certs(&args),
        Command::Explain(args) => kreload::run::runtime::build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(kreload::explain::run(&args)))
            .map(|text| print!("{text}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kreload: {error:#}");
            ExitCode::FAILURE
        }
    }
}
