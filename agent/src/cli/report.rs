//! `seam report`: what the sealed history proves for a period, as JSON, Markdown or a
//! self-contained HTML page.
use std::{fs, path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;

use super::history::ReadArgs;
use crate::{
    evidence::{
        history::{
            record::RunEntry,
            report::{Gather, Period, Report, html, markdown},
        },
        keys::keyring,
    },
    model::{clock::UnixNanos, vocab::RunPhase},
};

/// The report's format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum Format {
    Json,
    Markdown,
    Html,
}

/// `seam report`.
#[derive(Debug, clap::Args)]
pub(super) struct ReportArgs {
    #[command(flatten)]
    read: ReadArgs,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, short, value_name = "PATH")]
    output: Option<PathBuf>,
}

/// The period: --since (else the first agent start), --until (else now).
fn period(args: &ReadArgs, runs: &[RunEntry]) -> Period {
    let now = UnixNanos::now();
    let first = runs
        .iter()
        .find(|r| r.phase == RunPhase::Start)
        .map(|r| r.time);
    Period {
        from: args
            .since
            .map(UnixNanos::from_u64)
            .or(first)
            .unwrap_or(UnixNanos(now.0 - 86_400_000_000_000)),
        until: args.until.map_or(now, UnixNanos::from_u64),
    }
}

/// Runs `seam report`.
pub(super) fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let read = &args.read;
    let opened = read.open()?;
    let started = Instant::now();
    let (gather, replayed) = read.replay(&opened, |runs| Gather::new(runs, period(read, runs)))?;
    let period = period(read, &replayed.runs);
    let keys = keyring::list(opened.keyring.dir()).unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot list the keyring; key states are unknown");
        Vec::new()
    });
    let report = Report::new(
        gather,
        replayed,
        period,
        &keys,
        read.store.display().to_string(),
        opened.rules.sha256(),
        started.elapsed().as_secs_f64(),
    );
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Markdown => markdown::render(&report),
        Format::Html => html::render(&report),
    };
    match &args.output {
        Some(path) => {
            fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            #[allow(clippy::print_stdout)]
            {
                print!("{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
