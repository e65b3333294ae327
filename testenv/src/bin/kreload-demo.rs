//! `kreload-demo`: a local control plane, kreload serving against it, and a reload shown.

use std::process::ExitCode;

use clap::Parser as _;
use kreload_testenv::demo::{self, DemoArgs};

fn main() -> ExitCode {
    let mut args = DemoArgs::parse();
    // The API server answers 500 while it starts; the client logs each poll of /readyz as
    // an error, which is noise in a demo.
    if !args.log.log_level.contains("kube_client") {
        args.log
            .log_level
            .push_str(",kube_client::client::builder=off");
    }
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            kreload::logging::init(&args.log)?;
            runtime.block_on(demo::run(args))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kreload-demo: {error:#}");
            ExitCode::FAILURE
        }
    }
}
