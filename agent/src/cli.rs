//! The `seam` command line: the binary's edge (anyhow lives here only).
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::{
    agent::{self, AgentError, AgentOptions},
    config::RuleSet,
    demo,
    keys::cli::KeysArgs,
    preflight,
    sinks::{SinkOptions, rotate::Rotation, webhook::WebhookConfig},
    workload::{self, Workload},
};

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
        #[command(flatten)]
        spans: SpanArgs,
        #[command(flatten)]
        otlp: OtlpArgs,
        #[command(flatten)]
        receive: ReceiveArgs,
        /// Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this address,
        /// e.g. 127.0.0.1:9464 (port 0: any free port, written to --ready-file).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Demo on this node: two tenant cgroups, a same-tenant and a cross-tenant connection.
    Demo {
        #[arg(long, env = "SEAM_NODE")]
        node: Option<String>,
        #[command(flatten)]
        otlp: OtlpArgs,
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
    /// Manage the keys that seal tenant history: init, rotate, retire, list, shred, escrow,
    /// audit.
    Keys(KeysArgs),
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

/// OTLP export. The standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `..._PROTOCOL`,
/// `..._HEADERS`, `..._TIMEOUT`, `..._TRACES_ENDPOINT`, `..._LOGS_ENDPOINT`,
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) are honoured; flags win over them.
#[derive(Debug, clap::Args)]
struct OtlpArgs {
    /// Export ended spans (traces) and violations and losses (logs) over OTLP to this
    /// endpoint, e.g. http://127.0.0.1:4318 (http/protobuf) or http://127.0.0.1:4317 (grpc).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// OTLP protocol.
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    otlp_protocol: Option<crate::export::config::Protocol>,
    /// Header sent with every export request, KEY=VALUE (value percent-encoded); repeatable.
    #[arg(long = "otlp-header", value_name = "KEY=VALUE")]
    otlp_headers: Vec<String>,
    /// Spans and log records queued at most; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    otlp_queue: u64,
    /// Spans or log records per export request at most.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    otlp_batch: u64,
}

impl OtlpArgs {
    /// The export settings from the environment with these flags over them.
    fn resolve(
        self,
    ) -> Result<Option<crate::export::OtlpConfig>, crate::export::config::OtlpConfigError> {
        let mut settings = crate::export::OtlpSettings::from_env();
        if self.otlp_endpoint.is_some() {
            settings.endpoint = self.otlp_endpoint;
            settings.traces_endpoint = None;
            settings.logs_endpoint = None;
        }
        if let Some(protocol) = self.otlp_protocol {
            settings.protocol = Some(protocol.to_string());
        }
        settings.headers.extend(self.otlp_headers);
        settings.queue = usize::try_from(self.otlp_queue).unwrap_or(usize::MAX);
        settings.batch = usize::try_from(self.otlp_batch).unwrap_or(usize::MAX);
        settings.resolve()
    }
}

/// Receiving applications' spans over OTLP (off unless a listener is given).
#[derive(Debug, clap::Args)]
struct ReceiveArgs {
    /// Receive application spans over OTLP/HTTP (POST /v1/traces) on ADDR; without a value,
    /// 127.0.0.1:4318.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4318")]
    otlp_receive_http: Option<SocketAddr>,
    /// Receive application spans over OTLP/gRPC on ADDR; without a value, 127.0.0.1:4317.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4317")]
    otlp_receive_grpc: Option<SocketAddr>,
    /// Largest OTLP request accepted (after decompression), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=256 * 1024 * 1024))]
    otlp_receive_max_bytes: u64,
    /// The span or resource attribute that carries the tenant an application declares.
    #[arg(long, value_name = "KEY", default_value = "tenant.id")]
    declared_tenant_attribute: String,
}

impl ReceiveArgs {
    fn into_config(self, procfs: PathBuf) -> Option<crate::receive::ReceiverConfig> {
        (self.otlp_receive_http.is_some() || self.otlp_receive_grpc.is_some()).then(|| {
            crate::receive::ReceiverConfig {
                http: self.otlp_receive_http,
                grpc: self.otlp_receive_grpc,
                max_bytes: usize::try_from(self.otlp_receive_max_bytes).unwrap_or(usize::MAX),
                declared_attribute: self.declared_tenant_attribute,
                procfs,
            }
        })
    }
}

/// How spans are kept and shared.
#[derive(Debug, clap::Args)]
struct SpanArgs {
    /// Also write every ended span to the feed (`{"kind":"span","span":{...}}`).
    #[arg(long)]
    feed_spans: bool,
    /// Most connection spans held open at once; past it the oldest are ended early
    /// (`end_reason: evicted`) and counted (`seam_lost_total{source="span_evicted"}`).
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_open_spans: u64,
    /// The host's procfs (process start times, the boot id); set it when Seam runs in a
    /// container with the host's /proc mounted elsewhere.
    #[arg(long, value_name = "DIR", env = "SEAM_PROCFS", default_value = "/proc")]
    procfs: PathBuf,
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
    fn into_options(
        self,
        stdout: bool,
        feed_file: Option<PathBuf>,
        feed_spans: bool,
    ) -> SinkOptions {
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
            feed_spans,
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

/// Runs the command line; returns the process's exit code.
pub fn main() -> ExitCode {
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
        Command::Keys(args) => Ok(crate::keys::cli::run(&args, &mut std::io::stdout().lock())?),
        Command::Attributes => {
            #[allow(clippy::print_stdout)]
            {
                print!("{}", crate::rules::doc::span_attributes_markdown());
            }
            Ok(ExitCode::SUCCESS)
        }
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
        Command::Demo { node, otlp } => {
            let otlp = match otlp.resolve() {
                Ok(otlp) => otlp,
                Err(error) => {
                    eprintln!("seam: error: {error}");
                    return Ok(ExitCode::from(USAGE_ERROR));
                }
            };
            let violations = runtime()?.block_on(demo::run(node_name(node), otlp))?;
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
            spans,
            otlp,
            receive,
            listen,
        } => {
            let otlp = match otlp.resolve() {
                Ok(otlp) => otlp,
                Err(error) => {
                    eprintln!("seam: error: {error}");
                    return Ok(ExitCode::from(USAGE_ERROR));
                }
            };
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
                feeds: feeds.into_options(!quiet, feed_file, spans.feed_spans),
                listen,
                ready_file,
                rescan: Duration::from_secs(2),
                ring_bytes: ring_buffer_bytes,
                disabled_probes,
                otlp,
                receive: receive.into_config(spans.procfs.clone()),
                max_open_spans: usize::try_from(spans.max_open_spans).unwrap_or(usize::MAX),
                procfs: spans.procfs,
            };
            runtime()?.block_on(run_agent(options, stats_file, rules_dirs))
        }
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
            | AgentError::Listen(_)
            | AgentError::Export(_)
            | AgentError::Receive(_)),
        ) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        Err(error @ AgentError::ReadyFile { .. }) => return Err(error.into()),
    };
    crate::reload::spawn(rules_dirs, hangup, agent.inputs(), crate::reload::POLL);
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
