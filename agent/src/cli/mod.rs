//! The `seam` command line: the binary's edge, and with the test harness above it (`testkit/`,
//! `--features testkit` only) the one place anyhow is used. One module per command family; this
//! one dispatches.
mod config_file;
mod demo;
mod history;
mod host;
mod keys;
pub(crate) mod logging;
mod nodes;
mod report;
mod run;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::{cli::keys::KeysArgs, policy::RuleSet};

/// Seam watches the seams between tenants on a shared Linux node.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log format on stderr: text or json (one object per line). The level comes from
    /// SEAM_LOG, else RUST_LOG (e.g. `info`, `seam=debug`).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "SEAM_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: attribute activity to tenants and print violations as JSON lines.
    Run(Box<run::RunArgs>),
    /// Demo on this node: two tenant cgroups, a same-tenant and a cross-tenant connection.
    Demo {
        #[arg(long, env = "SEAM_NODE")]
        node: Option<String>,
        #[command(flatten)]
        otlp: run::OtlpArgs,
        /// Keep the demo's history in a sealed store (--store DIR); a master key file is
        /// created beside it when none is given.
        #[command(flatten)]
        store: history::StoreRunArgs,
    },
    /// Print every span name and attribute rules can use (Markdown, as in
    /// docs/span-attributes.md).
    Attributes,
    /// Validate rules directories (loaded together); lists every error with file:line:col;
    /// exit 2 if any.
    CheckRules {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Report what this node's kernel lets Seam see (JSON): kernel, BTF, cgroup mode, LSMs,
    /// every probe row tried (loaded, attached, the verifier's message) and the tier serving
    /// each capability. Needs root; loads and attaches every probe for a moment.
    Fingerprint(nodes::FingerprintArgs),
    /// Compare fingerprints of many nodes (files, or directories of *.json): where guarantees
    /// diverge. Exit 0 when uniform, 1 when a node falls short, 2 on unreadable input.
    FleetCheck(nodes::FleetArgs),
    /// Manage the keys that seal tenant history: init, rotate, retire, list, shred, escrow,
    /// audit.
    Keys(KeysArgs),
    /// Break a boundary on purpose: from a cgroup of one tenant, attempt every crossing Seam
    /// claims to see into another's, and check the running agent reported each (exit 1 when
    /// one went unseen).
    Chaos(crate::chaos::ChaosArgs),
    /// Re-evaluate sealed history (`seam run --store`) with rules, new ones included; print the
    /// breach scope as JSON: violations, tenant pairs, times, counts per rule, pair and tier,
    /// trace ids, and every gap in the evidence.
    Replay(Box<history::ReplayArgs>),
    /// Report on sealed history for a period: operations validated per tenant and tier,
    /// violations, key epochs, hooks live, and every gap in the evidence (lost events, store
    /// gaps, agent downtime), as JSON, Markdown or a self-contained HTML page with charts.
    Report(Box<report::ReportArgs>),
    /// CI gate on sealed history: exit 0 printing "N operations validated, 0 violations", 1
    /// listing the violations, 2 when the history cannot be read (keys, store, damage).
    Validate(Box<history::ReadArgs>),
    /// A tenant-side process of `seam chaos` and `seam demo`: join a cgroup, then listen,
    /// connect, send, make one file syscall, prepare or remove markers, or exec.
    #[command(name = crate::chaos::actor::SUBCOMMAND, hide = true)]
    ChaosActor(crate::chaos::actor::ActorArgs),
}

pub(super) fn node_name(node: Option<String>) -> String {
    node.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown".into())
    })
}

/// Exit code of a gate that found violations (`fleet-check`, `run --fail-on-violation`).
pub(super) const VIOLATIONS_FOUND: u8 = 1;
/// Exit code for bad input: flags, config file, rules.
pub(crate) const USAGE_ERROR: u8 = 2;
/// Exit code when the node or the agent failed: not root, no cgroup v2, a probe that does not
/// load, a socket that cannot be bound, the pipeline dying.
pub(super) const RUNTIME_FAILURE: u8 = 3;

/// The command line with `seam run --config`'s flags inserted (see [`config_file`]).
fn parse() -> Result<Cli, ExitCode> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let argv = match config_file::expand(argv, &command, &|name| std::env::var_os(name)) {
        Ok(argv) => argv,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Err(ExitCode::from(USAGE_ERROR));
        }
    };
    let matches = command
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| e.exit());
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

/// Runs the command line; returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    logging::init(cli.log_format);
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("seam: error: {error:#}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::CheckRules { dirs } => Ok(check_rules(&dirs)),
        Command::Fingerprint(args) => nodes::fingerprint(args),
        Command::FleetCheck(args) => Ok(nodes::fleet_check(args)),
        Command::Chaos(args) => Ok(crate::chaos::run(args)?),
        Command::Keys(args) => Ok(crate::cli::keys::run(&args, &mut std::io::stdout().lock())?),
        Command::Replay(args) => history::replay(&args),
        Command::Report(args) => report::report(&args),
        Command::Validate(args) => history::validate(&args),
        Command::Attributes => {
            #[allow(clippy::print_stdout)]
            {
                print!("{}", crate::policy::lang::doc::span_attributes_markdown());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ChaosActor(args) => {
            crate::chaos::actor::main(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { node, otlp, store } => {
            let otlp = match otlp.resolve() {
                Ok(otlp) => otlp,
                Err(error) => {
                    eprintln!("seam: error: {error}");
                    return Ok(ExitCode::from(USAGE_ERROR));
                }
            };
            let history = demo_history(store)?;
            let violations = runtime()?.block_on(demo::run(node_name(node), otlp, history))?;
            Ok(if violations > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The demo's history: with `--store` but no master key, a new key file beside the store.
fn demo_history(mut store: history::StoreRunArgs) -> anyhow::Result<Option<demo::DemoHistory>> {
    let Some(dir) = store.store.clone() else {
        return Ok(None);
    };
    let created = if store.master_key_file.is_none()
        && std::env::var_os(crate::evidence::keys::MASTER_KEY_ENV).is_none()
    {
        let path = demo::master_key_path(&dir);
        store.master_key_file = Some(path.clone());
        if path.exists() {
            None
        } else {
            crate::evidence::keys::MasterKey::generate()?.write_new_file(&path)?;
            Some(path)
        }
    } else {
        None
    };
    let key_file = store.master_key_file.clone();
    let config = store.into_config()?.context("--store is set")?;
    Ok(Some(demo::DemoHistory {
        config,
        key_file,
        created_key: created,
    }))
}

#[allow(clippy::print_stdout)]
fn check_rules(dirs: &[PathBuf]) -> ExitCode {
    match RuleSet::load_dirs(dirs) {
        Ok(rules) => {
            let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            println!(
                "{}: {} tenant(s), {} rule(s), {} allow(s) in {} file(s): ok",
                names.join(" + "),
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
