//! `seam run`: its flags and the agent's life from start to signal.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;

use super::{USAGE_ERROR, node_name, runtime};
use crate::{
    agent::{self, AgentError, AgentOptions},
    config::RuleSet,
    sinks::{SinkOptions, rotate::Rotation, webhook::WebhookConfig},
};

/// `seam run`.
#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
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
    #[command(flatten)]
    store: super::history::StoreRunArgs,
    /// Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this address,
    /// e.g. 127.0.0.1:9464 (port 0: any free port, written to --ready-file).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    listen_security: crate::listen::ListenArgs,
}

/// OTLP export. The standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `..._PROTOCOL`,
/// `..._HEADERS`, `..._TIMEOUT`, `..._TRACES_ENDPOINT`, `..._LOGS_ENDPOINT`,
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) are honoured; flags win over them.
#[derive(Debug, clap::Args)]
pub(super) struct OtlpArgs {
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
    pub(super) fn resolve(
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
    fn into_config(
        self,
        procfs: PathBuf,
        security: crate::listen::ListenSecurity,
    ) -> Option<crate::receive::ReceiverConfig> {
        (self.otlp_receive_http.is_some() || self.otlp_receive_grpc.is_some()).then(|| {
            crate::receive::ReceiverConfig {
                http: self.otlp_receive_http,
                grpc: self.otlp_receive_grpc,
                max_bytes: usize::try_from(self.otlp_receive_max_bytes).unwrap_or(usize::MAX),
                declared_attribute: self.declared_tenant_attribute,
                procfs,
                security,
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

/// Runs the agent until SIGINT or SIGTERM.
pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let otlp = match args.otlp.resolve() {
        Ok(otlp) => otlp,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let rules_dirs = args.rules;
    let rules = match RuleSet::load_dirs(&rules_dirs) {
        Ok(rules) => rules,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("seam: refusing to start with invalid rules");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let security = match crate::listen::ListenSecurity::load(&args.listen_security) {
        Ok(security) => security,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let spans = args.spans;
    let history = args.store.into_config()?;
    let options = AgentOptions {
        rules,
        node: node_name(args.node),
        feeds: args
            .feeds
            .into_options(!args.quiet, args.feed_file, spans.feed_spans),
        listen: args.listen,
        listen_security: security.clone(),
        ready_file: args.ready_file,
        rescan: Duration::from_secs(2),
        ring_bytes: args.ring_buffer_bytes,
        disabled_probes: args.disabled_probes,
        otlp,
        receive: args.receive.into_config(spans.procfs.clone(), security),
        max_open_spans: usize::try_from(spans.max_open_spans).unwrap_or(usize::MAX),
        procfs: spans.procfs,
        history,
    };
    runtime()?.block_on(run_agent(options, args.stats_file, rules_dirs))
}

async fn run_agent(
    options: AgentOptions,
    stats_file: Option<PathBuf>,
    rules_dirs: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // Registered before start-up, which writes the ready file: a SIGHUP never kills the agent,
    // and a SIGINT or SIGTERM sent as soon as it is ready stops it cleanly instead of by the
    // default action.
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let agent = match agent::start(options).await {
        Ok(agent) => agent,
        Err(
            error @ (AgentError::Preflight(_)
            | AgentError::Probes(_)
            | AgentError::Sink(_)
            | AgentError::Listen(_)
            | AgentError::Export(_)
            | AgentError::Receive(_)
            | AgentError::History(_)),
        ) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        Err(error @ AgentError::ReadyFile { .. }) => return Err(error.into()),
    };
    match crate::privileges::drop_unneeded() {
        Ok(kept) => tracing::info!(
            kept = format!("{kept:#x}"),
            "dropped the capabilities no longer needed"
        ),
        Err(error) => tracing::warn!(%error, "cannot drop capabilities"),
    }
    crate::reload::spawn(rules_dirs, hangup, agent.inputs(), crate::reload::POLL);
    tokio::select! {
        _ = interrupt.recv() => {},
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
