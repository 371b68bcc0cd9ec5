//! Log output shared by both binaries: one place decides how `tracing`
//! events reach stderr, so the agent and the collector log alike.
//!
//! Text logs carry ANSI colours only when stderr is a terminal: under
//! systemd, cron or a pipe into a file the escape codes are noise. `json`
//! writes one JSON object per line (`timestamp`, `level`, `message`, the
//! event's other fields flattened beside it, and the span), for log
//! shippers. The filter is `RUST_LOG` when set, else the caller's default.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?} (expected text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the global subscriber writing to stderr. `default_filter` (e.g.
/// `"info"`) applies unless `RUST_LOG` is set. A second call does nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}

/// Reports the error that ends the program: `PROGRAM: message` on stderr
/// in text mode; in JSON mode an `error` event, so that stderr stays one
/// JSON object per line to the end.
pub fn fatal(format: LogFormat, program: &str, message: &str) {
    match format {
        LogFormat::Text => eprintln!("{program}: {message}"),
        LogFormat::Json => tracing::error!(program, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print_back() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
        let e = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(e.contains("text or json"), "{e}");
    }
}
