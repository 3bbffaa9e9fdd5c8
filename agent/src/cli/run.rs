//! `seam run`: its flags and the agent's life from start to signal.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;

use super::{RUNTIME_FAILURE, USAGE_ERROR, VIOLATIONS_FOUND, host::HostArgs, node_name, runtime};
use crate::{
    daemon,
    daemon::{AgentError, AgentOptions},
    kernel::probes::ProbeError,
    model::vocab::WebhookFormat,
    output::{SinkError, SinkOptions, feed_file::Rotation, webhook::WebhookConfig},
    policy::RuleSet,
};

#[cfg(test)]
mod tests;

/// `seam run`.
#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Read flags from this TOML file (keys are the flags without dashes: `feed_file = "..."`,
    /// `webhook = ["..."]`); flags and their SEAM_* variables win over it. Default:
    /// /etc/seam/seam.toml when it exists.
    #[arg(long, value_name = "FILE", env = "SEAM_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of tenant and policy files (*.toml); repeat to load several together
    /// (e.g. `--rules rules/shipped --rules /etc/seam/tenants`). Reloaded on SIGHUP and
    /// when a file changes; invalid rules are rejected and the last good ones kept.
    #[arg(long, required = true, env = "SEAM_RULES", value_delimiter = ':')]
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
    /// Exit with code 1 (instead of 0) when stopped if any violation was found (a gate for CI
    /// jobs that run a workload under Seam).
    #[arg(long)]
    fail_on_violation: bool,
    /// Size of the kernel-to-agent ring buffer (power of two, >= page size).
    #[arg(long)]
    ring_buffer_bytes: Option<u32>,
    /// Kernel event budget: events per second each tenant may send per CPU, counted apart for
    /// connect intent and for everything else; beyond it (and its burst) the tenant's own
    /// events are dropped in the kernel and reported as a `tenant_flood` loss naming it.
    /// 0 turns the budget off.
    #[arg(long, value_name = "EVENTS_PER_SEC", default_value_t = crate::kernel::probes::budget::DEFAULT_RATE)]
    tenant_event_rate: u32,
    /// Kernel event budget: how many events beyond the rate a tenant may send at once (per
    /// CPU and class).
    #[arg(long, value_name = "EVENTS", default_value_t = crate::kernel::probes::budget::DEFAULT_BURST)]
    tenant_event_burst: u32,
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
    #[command(flatten)]
    host: HostArgs,
    /// Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this address,
    /// e.g. 127.0.0.1:9464 (port 0: any free port, written to --ready-file).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    listen_security: crate::serve::ListenArgs,
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
    otlp_protocol: Option<crate::output::otlp::config::Protocol>,
    /// Header sent with every export request, KEY=VALUE (value percent-encoded); repeatable.
    #[arg(long = "otlp-header", value_name = "KEY=VALUE")]
    otlp_headers: Vec<String>,
    /// Spans and log records queued at most; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    otlp_queue: u64,
    /// Spans or log records per export request at most.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    otlp_batch: u64,
    /// Export requests in flight at once at most.
    #[arg(long, value_name = "N", default_value_t = crate::output::otlp::config::DEFAULT_IN_FLIGHT as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    otlp_max_in_flight: u64,
}

impl OtlpArgs {
    /// The export settings from the environment with these flags over them.
    pub(super) fn resolve(
        self,
    ) -> Result<Option<crate::output::otlp::OtlpConfig>, crate::output::otlp::config::OtlpConfigError>
    {
        let mut settings = crate::output::otlp::OtlpSettings::from_env();
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
        settings.in_flight = usize::try_from(self.otlp_max_in_flight).unwrap_or(1);
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
        security: crate::serve::ListenSecurity,
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
    /// POST every feed record (JSON) to this http:// or https:// URL; repeatable.
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// Header sent with every webhook request, `NAME: VALUE` (e.g. `Authorization: Bearer
    /// TOKEN`); repeatable. Read from SEAM_WEBHOOK_HEADERS too (one per line).
    #[arg(long = "webhook-header", value_name = "NAME: VALUE")]
    webhook_headers: Vec<String>,
    /// Sign every webhook body: `X-Seam-Signature: sha256=<hex HMAC-SHA256>` with the key in
    /// this file (its bytes, trailing newline removed).
    #[arg(long, value_name = "FILE", env = "SEAM_WEBHOOK_HMAC_KEY_FILE")]
    webhook_hmac_key_file: Option<PathBuf>,
    /// Also trust the CA certificates in this PEM file for https:// webhooks.
    #[arg(long, value_name = "FILE", env = "SEAM_WEBHOOK_CA")]
    webhook_ca: Option<PathBuf>,
    /// Body of webhook requests: seam (the feed record) or falcosidekick (Falco's payload, for
    /// falcosidekick's `POST /`).
    #[arg(long, value_name = "FORMAT", default_value = "seam", value_parser = clap::builder::PossibleValuesParser::new(WebhookFormat::NAMES))]
    webhook_format: String,
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
    /// Headers from `--webhook-header` and `SEAM_WEBHOOK_HEADERS`.
    fn headers(&self) -> anyhow::Result<Vec<(String, String)>> {
        let from_env = std::env::var("SEAM_WEBHOOK_HEADERS").unwrap_or_default();
        self.webhook_headers
            .iter()
            .map(String::as_str)
            .chain(from_env.lines().filter(|l| !l.trim().is_empty()))
            .map(|header| {
                let (name, value) = header
                    .split_once(':')
                    .filter(|(n, _)| !n.trim().is_empty() && !n.contains(char::is_whitespace))
                    .with_context(|| {
                        format!("--webhook-header {header:?}: expected `NAME: VALUE`")
                    })?;
                Ok((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect()
    }

    fn into_options(
        self,
        stdout: bool,
        feed_file: Option<PathBuf>,
        feed_spans: bool,
    ) -> anyhow::Result<SinkOptions> {
        let headers = self.headers()?;
        let hmac_key: Option<std::sync::Arc<[u8]>> = match &self.webhook_hmac_key_file {
            Some(path) => {
                let mut key = std::fs::read(path).with_context(|| {
                    format!("cannot read --webhook-hmac-key-file {}", path.display())
                })?;
                while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    key.pop();
                }
                anyhow::ensure!(
                    !key.is_empty(),
                    "--webhook-hmac-key-file {} is empty",
                    path.display()
                );
                Some(key.into())
            }
            None => None,
        };
        let format = if self.webhook_format == WebhookFormat::Falcosidekick.as_str() {
            WebhookFormat::Falcosidekick
        } else {
            WebhookFormat::Seam
        };
        let webhooks = self
            .webhooks
            .into_iter()
            .map(|url| {
                let mut hook = WebhookConfig::new(url);
                hook.timeout = Duration::from_millis(self.webhook_timeout_ms);
                hook.attempts = self.webhook_attempts;
                hook.queue = usize::try_from(self.webhook_queue).unwrap_or(usize::MAX);
                hook.headers.clone_from(&headers);
                hook.hmac_key.clone_from(&hmac_key);
                hook.ca_file.clone_from(&self.webhook_ca);
                hook.format = format;
                hook
            })
            .collect();
        Ok(SinkOptions {
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
        })
    }
}

/// The exit code for an agent that could not start: 2 when the flags or files given are at
/// fault, 3 when the node or its environment is.
fn start_failure_code(error: &AgentError) -> u8 {
    match error {
        AgentError::Probes(ProbeError::RingSize { .. })
        | AgentError::Sink(
            SinkError::WebhookUrl { .. }
            | SinkError::WebhookCa { .. }
            | SinkError::WebhookHeader { .. },
        ) => USAGE_ERROR,
        // A required capability left without a probe because --disable-probe switched off
        // rows that would have served it: dropping the flag fixes it.
        AgentError::Probes(ProbeError::Required { failures, .. })
            if failures
                .split("; ")
                .any(|f| f.ends_with("disabled by --disable-probe")) =>
        {
            USAGE_ERROR
        }
        _ => RUNTIME_FAILURE,
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
    if let Some(config) = &args.config {
        tracing::info!(config = %config.display(), "flags from the config file");
    }
    let rules_dirs = args.rules;
    let loaded = crate::daemon::reload::fingerprint(&rules_dirs);
    let rules = match RuleSet::load_dirs(&rules_dirs) {
        Ok(rules) => rules,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("seam: refusing to start with invalid rules");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let security = match crate::serve::ListenSecurity::load(&args.listen_security) {
        Ok(security) => security,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let spans = args.spans;
    let history = args.store.into_config()?;
    let feeds = match args
        .feeds
        .into_options(!args.quiet, args.feed_file, spans.feed_spans)
    {
        Ok(feeds) => feeds,
        Err(error) => {
            eprintln!("seam: error: {error:#}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let host = args.host;
    let options = AgentOptions {
        rules,
        node: node_name(args.node),
        feeds,
        listen: args.listen,
        listen_security: security.clone(),
        ready_file: args.ready_file,
        rescan: Duration::from_secs(2),
        ring_bytes: args.ring_buffer_bytes,
        budget: seam_common::BudgetConfig::new(args.tenant_event_rate, args.tenant_event_burst),
        disabled_probes: args.disabled_probes,
        otlp,
        receive: args.receive.into_config(host.procfs.clone(), security),
        max_open_spans: usize::try_from(spans.max_open_spans).unwrap_or(usize::MAX),
        runtime: host.runtime(),
        start_record: true,
        procfs: host.procfs,
        cgroup_root: host.cgroup_root,
        bpffs: host.bpffs,
        history,
    };
    let gate = args.fail_on_violation;
    runtime()?.block_on(run_agent(
        options,
        args.stats_file,
        (rules_dirs, loaded),
        gate,
    ))
}

async fn run_agent(
    options: AgentOptions,
    stats_file: Option<PathBuf>,
    (rules_dirs, loaded): (Vec<PathBuf>, crate::daemon::reload::Fingerprint),
    fail_on_violation: bool,
) -> anyhow::Result<ExitCode> {
    // Registered before start-up, which writes the ready file: a SIGHUP never kills the agent,
    // and a SIGINT or SIGTERM sent as soon as it is ready stops it cleanly instead of by the
    // default action.
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut agent = match daemon::start(options).await {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("seam: error: {error}");
            return Ok(ExitCode::from(start_failure_code(&error)));
        }
    };
    match crate::daemon::privileges::drop_unneeded() {
        Ok(kept) => tracing::info!(
            kept = format!("{kept:#x}"),
            "dropped the capabilities no longer needed"
        ),
        Err(error) => tracing::warn!(%error, "cannot drop capabilities"),
    }
    crate::daemon::reload::spawn(
        rules_dirs,
        loaded,
        hangup,
        agent.rules(),
        crate::daemon::reload::POLL,
    );
    tokio::select! {
        _ = interrupt.recv() => {},
        _ = term.recv() => {},
        why = agent.failed() => {
            tracing::error!("{why}; Seam no longer observes anything and exits");
            eprintln!("seam: error: {why}");
            return Ok(ExitCode::from(RUNTIME_FAILURE));
        }
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
    if let Some(path) = stats_file
        && let Err(error) = std::fs::write(&path, serde_json::to_string_pretty(&report)?)
    {
        eprintln!(
            "seam: error: cannot write stats file {}: {error}",
            path.display()
        );
        return Ok(ExitCode::from(RUNTIME_FAILURE));
    }
    Ok(if fail_on_violation && report.violations > 0 {
        ExitCode::from(VIOLATIONS_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}
