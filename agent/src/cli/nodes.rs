//! `seam fingerprint` and `seam fleet-check`: what one node's kernel lets Seam see, and where a
//! fleet's nodes differ.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use super::{USAGE_ERROR, node_name};
use crate::kernel::fleet;

/// `seam fingerprint`.
#[derive(Debug, clap::Args)]
pub(super) struct FingerprintArgs {
    /// Also hash these rules directories (as `seam run --rules` loads them).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Node name in the report (default: the host name).
    #[arg(long, env = "SEAM_NODE")]
    node: Option<String>,
    /// Write the report here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// `seam fleet-check`.
#[derive(Debug, clap::Args)]
pub(super) struct FleetArgs {
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Oldest kernel allowed (MAJOR.MINOR, e.g. 6.1).
    #[arg(long, value_name = "VERSION")]
    min_kernel: Option<String>,
    /// Kernel releases allowed (comma-separated, `*` wildcards, e.g. '6.1.*,6.12.*').
    #[arg(long, value_name = "RELEASES", value_delimiter = ',')]
    allowed_kernels: Vec<String>,
}

#[allow(clippy::print_stdout)]
pub(super) fn fingerprint(args: FingerprintArgs) -> anyhow::Result<ExitCode> {
    let report = match crate::kernel::fingerprint::take(node_name(args.node), &args.rules) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let text = serde_json::to_string_pretty(&report)?;
    match args.output {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
pub(super) fn fleet_check(args: FleetArgs) -> ExitCode {
    let result = args
        .min_kernel
        .as_deref()
        .map(fleet::parse_version)
        .transpose()
        .and_then(|min_kernel| {
            let fingerprints = fleet::read_inputs(&args.inputs)?;
            let policy = fleet::Policy {
                min_kernel,
                allowed_kernels: args.allowed_kernels,
            };
            Ok(fleet::check(&fingerprints, &policy))
        });
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("seam: error: cannot render the report: {error}");
                return ExitCode::from(USAGE_ERROR);
            }
        }
    } else {
        print!("{}", fleet::render_text(&report));
    }
    if report.uniform {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
