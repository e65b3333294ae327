//! Log output: text or JSON, at a level or a tracing filter, on stderr.

use anyhow::{Context as _, Result};

use crate::cli::{LogArgs, LogFormat};

/// Sets up tracing from the log flags. A second call keeps the first subscriber (the demo
/// runs `serve` in-process).
pub fn init(log: &LogArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level(&log.log_level))
        .with_context(|| format!("invalid --log-level {:?}", log.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    let _ = result;
    Ok(())
}

/// Reloader's level names (logrus) read as tracing's; anything else is a tracing filter.
fn level(s: &str) -> &str {
    match s {
        "warning" => "warn",
        "fatal" | "panic" => "error",
        other => other,
    }
}
