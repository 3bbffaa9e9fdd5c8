//! The `seam` binary: the CLI edge (anyhow lives here only).
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use seam::{
    agent::{self, AgentError, AgentOptions},
    config::RuleSet,
    demo, preflight,
    sinks::{SinkOptions, rotate::Rotation, webhook::WebhookConfig},
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
        /// Directory of tenant and policy files (*.toml); repeat to load several together
        /// (e.g. `--rules rules/shipped --rules /etc/seam/tenants`). Reloaded on SIGHUP and
        /// when a file changes; invalid rules are rejected and the last good ones kept.
        #[arg(long, required = true)]
        rules: Vec<PathBuf>,
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
        #[command(flatten)]
        feeds: FeedArgs,
        /// Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this address,
        /// e.g. 127.0.0.1:9464 (port 0: any free port, written to --ready-file).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Demo on this node: two tenant cgroups, a same-tenant and a cross-tenant connection.
    Demo {
        #[arg(long, env = "SEAM_NODE")]
        node: Option<String>,
    },
    /// Validate rules directories (loaded together); lists every error with file:line:col;
    /// exit 2 if any.
    CheckRules {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Report what this node's kernel lets Seam see (JSON): kernel, BTF, cgroup mode, LSMs,
    /// every probe row tried (loaded, attached, the verifier's message) and the tier serving
    /// each capability. Needs root; loads and attaches every probe for a moment.
    Fingerprint {
        /// Also hash these rules directories (as `seam run --rules` loads them).
        #[arg(long)]
        rules: Vec<PathBuf>,
        /// Node name in the report (default: the host name).
        #[arg(long, env = "SEAM_NODE")]
        node: Option<String>,
        /// Write the report here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Compare fingerprints of many nodes (files, or directories of *.json): where guarantees
    /// diverge. Exit 0 when uniform, 1 when a node falls short, 2 on unreadable input.
    FleetCheck {
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
    },
    /// Run a small workload inside a cgroup (used by the demo, tests and benchmarks).
    #[command(hide = true)]
    Workload {
        /// cgroup to join first, relative to the cgroup2 mount.
        #[arg(long)]
        cgroup: Option<String>,
        /// Process name to take (comm).
        #[arg(long)]
        comm: Option<String>,
        /// Drop to this uid (and gid) after joining the cgroup.
        #[arg(long)]
        uid: Option<u32>,
        #[command(subcommand)]
        workload: Workload,
    },
}

/// Violation feeds beyond stdout: file rotation, webhooks, aggregation.
#[derive(Debug, clap::Args)]
struct FeedArgs {
    /// Rotate --feed-file before it would grow past this many bytes (default: never).
    #[arg(long, value_name = "N", requires = "feed_file", value_parser = clap::value_parser!(u64).range(1..))]
    feed_max_bytes: Option<u64>,
    /// Rotated feed files kept (PATH.1 newest .. PATH.K oldest).
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    feed_keep: u32,
    /// POST every feed record (JSON) to this http:// URL; repeatable.
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// Timeout of one webhook delivery attempt, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_timeout_ms: u64,
    /// Delivery attempts per record (first try included) before it is dropped.
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    webhook_attempts: u32,
    /// Records queued per webhook at most; more are dropped (and counted).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    webhook_queue: u64,
    /// Fold identical violations within this many seconds into one aggregate record (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    aggregate_window: u64,
}

impl FeedArgs {
    fn into_options(self, stdout: bool, feed_file: Option<PathBuf>) -> SinkOptions {
        let webhooks = self
            .webhooks
            .into_iter()
            .map(|url| {
                let mut hook = WebhookConfig::new(url);
                hook.timeout = Duration::from_millis(self.webhook_timeout_ms);
                hook.attempts = self.webhook_attempts;
                hook.queue = usize::try_from(self.webhook_queue).unwrap_or(usize::MAX);
                hook
            })
            .collect();
        SinkOptions {
            stdout,
            feed_file,
            rotation: self.feed_max_bytes.map(|max_bytes| Rotation {
                max_bytes,
                keep: self.feed_keep,
            }),
            webhooks,
            aggregate_window: Duration::from_secs(self.aggregate_window),
            ..SinkOptions::default()
        }
    }
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
        Command::CheckRules { dirs } => Ok(check_rules(&dirs)),
        Command::Fingerprint {
            rules,
            node,
            output,
        } => fingerprint(node_name(node), &rules, output),
        Command::FleetCheck {
            inputs,
            json,
            min_kernel,
            allowed_kernels,
        } => Ok(fleet_check(
            &inputs,
            json,
            min_kernel.as_deref(),
            allowed_kernels,
        )),
        Command::Workload {
            cgroup,
            comm,
            uid,
            workload,
        } => {
            let root = match &cgroup {
                Some(_) => preflight::cgroup2_mount()?,
                None => PathBuf::new(),
            };
            workload::enter(&root, cgroup.as_deref(), comm.as_deref(), uid)?;
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
            feeds,
            listen,
        } => {
            let rules_dirs = rules;
            let rules = match RuleSet::load_dirs(&rules_dirs) {
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
                feeds: feeds.into_options(!quiet, feed_file),
                listen,
                ready_file,
                rescan: Duration::from_secs(2),
                ring_bytes: ring_buffer_bytes,
                disabled_probes,
            };
            runtime()?.block_on(run_agent(options, stats_file, rules_dirs))
        }
    }
}

#[allow(clippy::print_stdout)]
fn fingerprint(
    node: String,
    rules: &[PathBuf],
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let report = match seam::fingerprint::take(node, rules) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let text = serde_json::to_string_pretty(&report)?;
    match output {
        Some(path) => std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn fleet_check(
    inputs: &[PathBuf],
    json: bool,
    min_kernel: Option<&str>,
    allowed_kernels: Vec<String>,
) -> ExitCode {
    use seam::fleet;
    let result = min_kernel
        .map(fleet::parse_version)
        .transpose()
        .and_then(|min_kernel| {
            let fingerprints = fleet::read_inputs(inputs)?;
            let policy = fleet::Policy {
                min_kernel,
                allowed_kernels,
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
    if json {
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

async fn run_agent(
    options: AgentOptions,
    stats_file: Option<PathBuf>,
    rules_dirs: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // Registered before start-up so that a SIGHUP never kills the agent.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let agent = match agent::start(options).await {
        Ok(agent) => agent,
        Err(
            error @ (AgentError::Preflight(_)
            | AgentError::Probes(_)
            | AgentError::Sink(_)
            | AgentError::Listen(_)),
        ) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        Err(error) => return Err(error.into()),
    };
    seam::reload::spawn(rules_dirs, hangup, agent.inputs(), seam::reload::POLL);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping");
    let report = agent.stop().await;
    for (sink, dropped) in &report.feed_dropped {
        tracing::warn!(sink, dropped, "feed records dropped");
    }
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
