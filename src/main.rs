//! `kreload`: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser as _;
use kreload::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("kreload: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                kreload::run::init_tracing(&args.log)?;
                let shutdown = kreload::shutdown::signals()?;
                kreload::run::serve(*args, shutdown).await
            }
            Command::Certs(args) => kreload::demo::certs(&args),
            Command::Demo(mut args) => {
                // The API server answers 500 while it starts; the client logs each poll
                // of /readyz as an error, which is noise in a demo.
                if !args.log.log_level.contains("kube_client") {
                    args.log
                        .log_level
                        .push_str(",kube_client::client::builder=off");
                }
                kreload::run::init_tracing(&args.log)?;
                kreload::demo::run(args).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kreload: {error:#}");
            ExitCode::FAILURE
        }
    }
}
