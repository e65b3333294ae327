//! Log output: text or JSON, at a level or a tracing filter, on stderr.
//!
//! Values that come from requests (a review's uid, names) are logged through [`Escaped`],
//! so a newline or a terminal escape in them cannot forge a log line or recolour a
//! terminal; colour codes are written only when stderr is a terminal.

use std::fmt;
use std::io::IsTerminal as _;

use anyhow::{Context as _, Result};

use crate::cli::{LogArgs, LogFormat};

/// Sets up tracing from the log flags. A second call keeps the first subscriber (the demo
/// runs `serve` in-process).
pub fn init(log: &LogArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level(&log.log_level))
        .with_context(|| format!("invalid --log-level {:?}", log.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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

/// Displays a string from outside with control characters (newlines, escapes) and
/// backslashes escaped, so it stays on its log line as plain text.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_backslashes_are_escaped_and_the_rest_kept() {
        let shown = Escaped("uid\n2026 INFO forged\u{1b}[31m\r\\ é").to_string();
        assert_eq!(shown, r"uid\n2026 INFO forged\u{1b}[31m\r\\ é");
        assert_eq!(Escaped("7f0c3a52-3b5e").to_string(), "7f0c3a52-3b5e");
    }
}
