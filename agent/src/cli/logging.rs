//! Logs on stderr: `SEAM_LOG`, else `RUST_LOG`, else `info` (tracing's filter syntax), as text
//! or, with `--log-format json`, one JSON object per line.
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// The filter: `SEAM_LOG` wins over `RUST_LOG`; an unparsable one falls back to the next.
fn filter() -> EnvFilter {
    EnvFilter::try_from_env("SEAM_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the subscriber.
pub(crate) fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
