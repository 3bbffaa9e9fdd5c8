//! The `seam` binary: the CLI edge (anyhow lives here only).
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use seam::{
    agent::{self, AgentError, AgentOptions},
    config::RuleSet,
    demo, preflight,
    workload::{self, Workload},
};
use tracing_subscriber::EnvFilter;

/// Seam watches the seams between tenants on a shared Linux node.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: attribute activity to tenants and print violations as JSON lines.
    Run {
        /// Directory of tenant and policy files (*.toml).
        #[arg(long)]
        rules: PathBuf,
        /// Also append the feed to this file.
        #[arg(long)]
        feed_file: Option<PathBuf>,
        /// Node name in the feed (default: the host name).
        #[arg(long, env = "SEAM_NODE")]
        node: Option<String>,
        /// Write this file (live hooks as JSON) once Seam is observing.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Write final counters (events, events/s, losses) here at exit.
        #[arg(long)]
        stats_file: Option<PathBuf>,
        /// Do not print the feed on stdout.
        #[arg(long)]
        quiet: bool,
        /// Size of the kernel-to-agent ring buffer (power of two, >= page size).
        #[arg(long)]
        ring_buffer_bytes: Option<u32>,
        /// Do not load this probe (program name, e.g. seam_skb_ingress, or attach point, e.g.
        /// cgroup_skb/ingress); repeatable. Start-up still fails if a required capability is
        /// left without a probe.
        #[arg(long = "disable-probe", value_name = "PROBE")]
        disabled_probes: Vec<String>,
    },
    /// Demo on this node: two tenant cgroups, a same-tenant and a cross-tenant connection.
    Demo {
        #[arg(long, env = "SEAM_NODE")]
        node: Option<String>,
    },
    /// Validate a rules directory; lists every error with file:line:col; exit 2 if any.
    CheckRules { dir: PathBuf },
    /// Run a small workload inside a cgroup (used by the demo, tests and benchmarks).
    #[command(hide = true)]
    Workload {
        /// cgroup to join first, relative to the cgroup2 mount.
        #[arg(long)]
        cgroup: Option<String>,
        /// Process name to take (comm).
        #[arg(long)]
        comm: Option<String>,
        #[command(subcommand)]
        workload: Workload,
    },
}

fn node_name(node: Option<String>) -> String {
    node.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown".into())
    })
}

/// Exit code for bad input or an unusable node.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SEAM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("seam: error: {error:#}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckRules { dir } => Ok(check_rules(&dir)),
        Command::Workload {
            cgroup,
            comm,
            workload,
        } => {
            let root = match &cgroup {
                Some(_) => preflight::cgroup2_mount()?,
                None => PathBuf::new(),
            };
            workload::enter(&root, cgroup.as_deref(), comm.as_deref())?;
            workload::run(&workload)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { node } => {
            let violations = runtime()?.block_on(demo::run(node_name(node)))?;
            Ok(if violations > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Run {
            rules,
            feed_file,
            node,
            ready_file,
            stats_file,
            quiet,
            ring_buffer_bytes,
            disabled_probes,
        } => {
            let rules = match RuleSet::load_dir(&rules) {
                Ok(rules) => rules,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!("seam: refusing to start with invalid rules");
                    return Ok(ExitCode::from(USAGE_ERROR));
                }
            };
            let options = AgentOptions {
                rules,
                node: node_name(node),
                stdout: !quiet,
                feed_file,
                ready_file,
                rescan: Duration::from_secs(2),
                ring_bytes: ring_buffer_bytes,
                disabled_probes,
            };
            runtime()?.block_on(run_agent(options, stats_file))
        }
    }
}

#[allow(clippy::print_stdout)]
fn check_rules(dir: &std::path::Path) -> ExitCode {
    match RuleSet::load_dir(dir) {
        Ok(rules) => {
            println!(
                "{}: {} tenant(s), {} rule(s), {} allow(s) in {} file(s): ok",
                dir.display(),
                rules.tenants.len(),
                rules.rules.len(),
                rules.allows.len(),
                rules.sources.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

async fn run_agent(options: AgentOptions, stats_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let agent = match agent::start(options).await {
        Ok(agent) => agent,
        Err(error @ (AgentError::Preflight(_) | AgentError::Probes(_) | AgentError::Sink(_))) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        Err(error) => return Err(error.into()),
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping");
    let report = agent.stop().await;
    tracing::info!(
        events = report.events_total,
        events_per_sec = format!("{:.1}", report.events_per_sec),
        lost = report.lost_total,
        violations = report.violations,
        "seam stopped"
    );
    if let Some(path) = stats_file {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write stats file {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
