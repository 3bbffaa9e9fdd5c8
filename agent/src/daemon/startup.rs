//! The steps of [`super::start`], in the order it takes them: the metrics listener, the probes
//! (and what they see), the sinks, the pipeline's channels, attribution, the history, and the
//! tasks that run once everything is wired.
use std::{net::SocketAddr, path::Path, sync::Arc};

use tokio::{sync::mpsc, task::JoinHandle};

use super::{AgentError, AgentOptions, host::Pinned};
use crate::{
    attribution::{Attributor, CgroupRegistry, LocalAddrs, ProcessTable},
    evidence::history::{History, HistoryConfig, RunInfo},
    kernel::{
        events::reader::{self, Drained, KernelSource},
        fingerprint::Fingerprint,
        probes,
        probes::{
            Probes,
            maps::{self, KernelTenantFilter},
        },
    },
    metrics::Metrics,
    model::{app::AppSpanIn, handoff::Notifier},
    output::{Record, Sinks, Start, otlp::Exporter},
    pipeline::{Pipeline, input::Inlets, totals::StatsReport},
    policy::RuleSet,
    receive::Bound,
};

/// Serves `/metrics`, `/healthz` and `/readyz` when a listen address is given; the bound address.
pub(super) async fn serve_metrics(
    options: &AgentOptions,
    metrics: &Arc<Metrics>,
) -> Result<Option<SocketAddr>, AgentError> {
    Ok(match options.listen {
        Some(addr) => Some(
            crate::serve::metrics::spawn(addr, metrics.clone(), options.listen_security.clone())
                .await?,
        ),
        None => None,
    })
}

/// The probes, attached, and what the rest of the agent takes from them.
pub(super) struct Attached {
    pub probes: Probes,
    /// What this run's node looks like (the feed's start record carries it).
    pub fingerprint: Fingerprint,
    pub live_hooks: Vec<String>,
    /// The tenant filter map, pinned in the host's BPF file system (`--bpffs`).
    pub pinned: Option<Pinned>,
    pub filter: KernelTenantFilter,
    pub source: KernelSource,
    /// Whether repeated file opens may be silenced in the kernel.
    pub silence: bool,
}

/// Loads and attaches the probes, records what is live (metrics, the fingerprint), pins the
/// tenant filter map when asked, and takes the maps the agent reads and writes.
pub(super) fn attach_probes(
    options: &AgentOptions,
    cgroup_root: &Path,
    metrics: &Metrics,
) -> Result<Attached, AgentError> {
    let offsets = probes::resolve_offsets();
    let disabled = probes_to_disable(options);
    let tcp_counters = offsets.is_some_and(|o| o.tcp_counters_valid == 1);
    let loading = std::time::Instant::now();
    let mut probes = probes::load(
        offsets,
        cgroup_root,
        options.ring_bytes,
        options.budget,
        &disabled,
    )?;
    let live_hooks = probes.live_hooks();
    for status in &probes.statuses {
        metrics
            .node
            .set_probe_state(status.program, &status.attach_point, status.state);
    }
    let fingerprint = crate::kernel::fingerprint::from_statuses(
        options.node.clone(),
        &probes.statuses,
        options.rules.sha256(),
        u64::try_from(loading.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    metrics.node.set_kernel(&fingerprint.kernel_labels());
    let pinned: Option<Pinned> = match &options.bpffs {
        Some(bpffs) => Some(crate::daemon::host::pin_filter(
            &probes.ebpf,
            seam_common::MAP_TENANT_CGROUPS,
            bpffs,
        )?),
        None => None,
    };
    if let Some(pin) = &pinned {
        tracing::info!(path = %pin.path().display(), "tenant filter map pinned");
    }
    let (filter, source) = maps::take_maps(&mut probes.ebpf, tcp_counters)?;
    let silence = probes.silences_files();
    metrics.kernel.set_live_hooks(&live_hooks);
    Ok(Attached {
        probes,
        fingerprint,
        live_hooks,
        pinned,
        filter,
        source,
        silence,
    })
}

/// The probes disabled by option, and the file probes when no rule looks at file spans.
fn probes_to_disable(options: &AgentOptions) -> Vec<String> {
    let mut disabled = options.disabled_probes.clone();
    if !uses_file_spans(&options.rules) {
        // Syscall tracepoints tax every syscall on the node: no file rule, no file probes.
        tracing::info!("no rule looks at file spans: file probes stay off");
        disabled.extend(
            probes::PROBES
                .iter()
                .filter(|p| p.capability == probes::Capability::FileAccess)
                .map(|p| p.program.to_owned()),
        );
    }
    disabled
}

/// Whether any rule matches file spans (`trace.has(file.*)` and the like).
fn uses_file_spans(rules: &RuleSet) -> bool {
    use crate::policy::lang::{Family, SpanName};
    rules.rules.iter().any(|rule| {
        SpanName::ALL
            .into_iter()
            .any(|name| name.family() == Family::File && rule.matcher.spans.contains(name))
    })
}

/// The feed's sinks and the OTLP exporter; the feed begins with the start record when asked.
pub(super) fn open_sinks(
    options: &AgentOptions,
    metrics: &Arc<Metrics>,
    fingerprint: Fingerprint,
) -> Result<Sinks, AgentError> {
    let mut sink = Sinks::open(&options.feeds, metrics)?;
    if let Some(otlp) = &options.otlp {
        let resource =
            crate::output::otlp::map::resource(&otlp.service_name, &options.node, &otlp.resource);
        sink = sink.with_exporter(Exporter::start(otlp, resource, metrics)?);
    }
    if options.start_record {
        sink.emit(Record::Start(Box::new(Start {
            time: crate::model::clock::UnixNanos::now(),
            fingerprint,
        })));
    }
    Ok(sink)
}

/// The pipeline's inputs, and the ends their producers send on.
pub(super) struct Channels {
    pub inlets: Inlets,
    pub kernel: mpsc::Sender<Drained>,
    pub cgroups: Notifier,
    pub rules: mpsc::Sender<Box<RuleSet>>,
    pub app: mpsc::Sender<Vec<AppSpanIn>>,
}

/// The pipeline's channels, each bounded.
pub(super) fn channels() -> Channels {
    let (kernel, kernel_rx) = mpsc::channel(1024);
    let (cgroups, cgroups_rx) = crate::model::handoff::notifier();
    let (rules, rules_rx) = mpsc::channel(4);
    let (app, app_rx) = mpsc::channel(1024);
    Channels {
        inlets: Inlets {
            kernel: kernel_rx,
            cgroups: cgroups_rx,
            rules: rules_rx,
            app: app_rx,
        },
        kernel,
        cgroups,
        rules,
        app,
    }
}

/// Cgroups (with their pods' identity from the container runtime or the Kubernetes API),
/// processes and this node's addresses; `cgroups_changed` hears of new pods.
pub(super) async fn attribution(
    options: &AgentOptions,
    cgroup_root: &Path,
    cgroups_changed: Notifier,
    metrics: &Metrics,
) -> Result<Attributor, AgentError> {
    let api = match options.runtime.kubernetes_api {
        true => Some((
            crate::attribution::pods::api::in_cluster()?,
            options.node.clone(),
        )),
        false => None,
    };
    let pods = crate::attribution::pods::start(
        &options.runtime,
        options.rules.has_pod_tenants(),
        api,
        cgroups_changed,
        metrics.node.runtime.clone(),
    )
    .await?;
    Ok(Attributor {
        cgroups: CgroupRegistry::new(cgroup_root.to_owned()).with_pods(pods),
        processes: ProcessTable::new(boot_id(&options.procfs), options.procfs.clone()),
        local: LocalAddrs::current(),
    })
}

/// The node's boot id (`/proc/sys/kernel/random/boot_id`), which keys process trace ids; zeros
/// when unreadable (trace ids then repeat across reboots, nothing else changes).
fn boot_id(procfs: &Path) -> [u8; 16] {
    let text =
        std::fs::read_to_string(procfs.join("sys/kernel/random/boot_id")).unwrap_or_default();
    let hex: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = hex
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    id
}

/// The ports of Seam's own listeners: connections to them (applications sending spans,
/// scrapes) are not evidence about tenants.
pub(super) fn own_ports(listen: Option<SocketAddr>, receiving: &Bound) -> Vec<u16> {
    [listen, receiving.http, receiving.grpc]
        .into_iter()
        .flatten()
        .map(|a| a.port())
        .collect()
}

/// The sealed history, when configured.
pub(super) fn history(
    config: Option<HistoryConfig>,
    node: &str,
    live_hooks: &[String],
    rules: &RuleSet,
) -> Result<Option<History>, AgentError> {
    Ok(match config {
        Some(config) => Some(History::start(
            config,
            RunInfo {
                node: node.to_owned(),
                live_hooks: live_hooks.to_vec(),
                rules_sha256: rules.sha256(),
            },
        )?),
        None => None,
    })
}

/// The ring-buffer reader's task, and the sender that stops it.
pub(super) fn spawn_reader(
    source: KernelSource,
    kernel: mpsc::Sender<Drained>,
    metrics: &Arc<Metrics>,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(reader::run(source, kernel, stop_rx, metrics.clone()));
    (stop, task)
}

/// The pipeline's task, and the sender that stops it. The task keeps the programs attached
/// (and the filter map pinned) while the pipeline runs; at the end it flushes and reports.
pub(super) fn spawn_pipeline(
    mut pipeline: Pipeline,
    inlets: Inlets,
    ebpf: aya::Ebpf,
    pinned: Option<Pinned>,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<StatsReport>) {
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ebpf = ebpf;
        let _pinned = pinned;
        inlets.run(&mut pipeline, stop_rx).await;
        // The webhooks and the exporter get one grace period, together.
        let deadline = std::time::Instant::now() + pipeline.shutdown_grace();
        let otlp = pipeline.finish(deadline).join().await;
        pipeline.report_final(otlp);
        pipeline.stats.report()
    });
    (stop, task)
}

/// Writes the ready file: the live hooks and the addresses Seam listens on.
pub(super) fn write_ready_file(
    path: &Path,
    live_hooks: &[String],
    listen: Option<SocketAddr>,
    receiving: &Bound,
) -> Result<(), AgentError> {
    let body = serde_json::json!({
        "live_hooks": live_hooks,
        "listen": listen,
        "otlp_receive_http": receiving.http,
        "otlp_receive_grpc": receiving.grpc,
    })
    .to_string();
    std::fs::write(path, body).map_err(|source| AgentError::ReadyFile {
        path: path.to_owned(),
        source,
    })
}
