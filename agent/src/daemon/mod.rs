//! Starting and stopping the agent: preflight, BTF offsets, probes, the initial cgroup scan, the
//! reader, watcher and ticker tasks, and the pipeline loop.
pub(crate) mod host;
pub(crate) mod privileges;
pub(crate) mod reload;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    attribution::{
        Attributor, CgroupRegistry, LocalAddrs, ProcessTable,
        pods::{PodError, RuntimeConfig},
    },
    daemon::host::{HostError, Pinned},
    evidence::history::{History, HistoryConfig, HistoryError, RunInfo},
    kernel::{
        events::reader,
        preflight,
        preflight::PreflightError,
        probes,
        probes::{ProbeError, maps},
    },
    metrics::{Metrics, PipelineMetrics},
    output::{
        Record, SinkError, SinkOptions, Sinks, Start,
        otlp::{ExportError, Exporter, OtlpConfig},
    },
    pipeline::{
        Pipeline, PipelineOptions,
        input::{Inlets, Input},
        totals::StatsReport,
    },
    policy::RuleSet,
    receive::{ReceiveError, ReceiverConfig},
    serve::metrics::ServeError,
};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AgentError {
    /// A start-up precondition does not hold (root, cgroup v2, tracefs).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Probes could not be loaded or attached, or their maps are not what the agent expects.
    #[error(transparent)]
    Probes(#[from] ProbeError),
    /// The feed sink could not be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The metrics and health listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ServeError),
    /// OTLP export could not be set up.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The OTLP receiver could not listen.
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    /// The sealed history (`--store`) could not be opened.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A host path given for running in a container (`--cgroup-root`, `--bpffs`) is unusable.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Pod identity is needed but the container runtime cannot be asked.
    #[error(transparent)]
    Pods(#[from] PodError),
    /// The ready file could not be written.
    #[error("cannot write ready file {path}: {source}; check the directory exists and is writable")]
    ReadyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to run.
pub(crate) struct AgentOptions {
    pub rules: RuleSet,
    pub node: String,
    /// Where the feed goes: stdout, the feed file (rotation), webhooks; aggregation.
    pub feeds: SinkOptions,
    /// OTLP export of spans, violations and losses (`None`: off).
    pub otlp: Option<OtlpConfig>,
    /// OTLP receiver for applications' spans (`None`: off).
    pub receive: Option<ReceiverConfig>,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub listen: Option<SocketAddr>,
    /// TLS and bearer token of that listener.
    pub listen_security: crate::serve::ListenSecurity,
    /// Written (with the live hooks) once probes are attached and cgroups registered.
    pub ready_file: Option<PathBuf>,
    /// How often the cgroup tree is rescanned even without inotify events.
    pub rescan: Duration,
    /// Ring buffer size in bytes (None: the probes' default, 4 MiB).
    pub ring_bytes: Option<u32>,
    /// The kernel's per-tenant event budget.
    pub budget: seam_common::BudgetConfig,
    /// Probes not to load (program names or attach points).
    pub disabled_probes: Vec<String>,
    /// Most open connection spans held at once (the oldest beyond are evicted, counted).
    pub max_open_spans: usize,
    /// The host's procfs (process start times, the boot id).
    pub procfs: PathBuf,
    /// Keep a sealed per-tenant history (`None`: off).
    pub history: Option<HistoryConfig>,
    /// The host's cgroup2 root (`--cgroup-root`; `None`: the cgroup2 mount Seam sees).
    pub cgroup_root: Option<PathBuf>,
    /// The host's BPF file system: the tenant filter map is pinned there (`--bpffs`).
    pub bpffs: Option<PathBuf>,
    /// The container runtime that names container cgroups' pods.
    pub runtime: RuntimeConfig,
    /// Begin the feed with a start record (the run's fingerprint); the demo, whose feed is
    /// read by people, leaves it out.
    pub start_record: bool,
}

/// A started agent. Call [`RunningAgent::stop`] to flush and collect the stats.
pub(crate) struct RunningAgent {
    /// Rules reloads into the pipeline.
    rules: mpsc::Sender<Box<RuleSet>>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// `None` once it ended (see [`RunningAgent::failed`]).
    task: Option<JoinHandle<StatsReport>>,
    reader: JoinHandle<()>,
    reader_stop: tokio::sync::oneshot::Sender<()>,
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

/// Starts the agent; returns once it is observing (probes live, tenant cgroups registered).
pub(crate) async fn start(options: AgentOptions) -> Result<RunningAgent, AgentError> {
    preflight::require_root()?;
    let cgroup_root = match &options.cgroup_root {
        Some(root) => crate::daemon::host::cgroup_root(root)?,
        None => preflight::cgroup2_mount()?,
    };
    let metrics = Arc::new(Metrics::new());
    let listen = match options.listen {
        Some(addr) => Some(
            crate::serve::metrics::spawn(addr, metrics.clone(), options.listen_security.clone())
                .await?,
        ),
        None => None,
    };
    let offsets = probes::resolve_offsets();
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
    let tcp_counters = offsets.is_some_and(|o| o.tcp_counters_valid == 1);
    let loading = std::time::Instant::now();
    let mut probes = probes::load(
        offsets,
        &cgroup_root,
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
    let mut sink = Sinks::open(&options.feeds, &metrics)?;
    if let Some(otlp) = &options.otlp {
        let resource =
            crate::output::otlp::map::resource(&otlp.service_name, &options.node, &otlp.resource);
        sink = sink.with_exporter(Exporter::start(otlp, resource, &metrics)?);
    }
    if options.start_record {
        sink.emit(Record::Start(Box::new(Start {
            time: crate::model::clock::UnixNanos::now(),
            fingerprint,
        })));
    }
    let (kernel_tx, kernel_rx) = mpsc::channel(1024);
    let (cgroups_tx, cgroups_rx) = crate::model::handoff::notifier();
    let (rules_tx, rules_rx) = mpsc::channel(4);
    let (app_tx, app_rx) = mpsc::channel(1024);
    let inlets = Inlets {
        kernel: kernel_rx,
        cgroups: cgroups_rx,
        rules: rules_rx,
        app: app_rx,
    };
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
        cgroups_tx.clone(),
        metrics.node.runtime.clone(),
    )
    .await?;
    let attributor = Attributor {
        cgroups: CgroupRegistry::new(cgroup_root.clone()).with_pods(pods),
        processes: ProcessTable::new(boot_id(&options.procfs), options.procfs.clone()),
        local: LocalAddrs::current(),
    };
    let receiving = match options.receive {
        Some(config) => crate::receive::spawn(config, app_tx, &metrics).await?,
        None => crate::receive::Bound::default(),
    };
    // Connections to Seam's own listeners (applications sending spans, scrapes) are not
    // evidence about tenants.
    let own_ports = [listen, receiving.http, receiving.grpc]
        .into_iter()
        .flatten()
        .map(|a| a.port())
        .collect();
    let history = match options.history {
        Some(config) => Some(History::start(
            config,
            RunInfo {
                node: options.node.clone(),
                live_hooks: live_hooks.clone(),
                rules_sha256: options.rules.sha256(),
            },
        )?),
        None => None,
    };
    let mut pipeline = Pipeline::new(
        options.rules,
        attributor,
        sink,
        Box::new(filter),
        PipelineOptions {
            node: options.node,
            max_open_spans: options.max_open_spans,
            own_ports,
            live_hooks: live_hooks.clone(),
        },
        PipelineMetrics::new(metrics.clone()),
    );
    if let Some(history) = history {
        pipeline = pipeline.with_history(history);
    }
    if silence {
        pipeline.set_silences(Box::new(maps::KernelSilenceMap::take(&mut probes.ebpf)?));
    }
    pipeline.handle(Input::CgroupsChanged);

    let (reader_stop, reader_stop_rx) = tokio::sync::oneshot::channel();
    let reader_task = tokio::spawn(reader::run(
        source,
        kernel_tx,
        reader_stop_rx,
        metrics.clone(),
    ));
    crate::attribution::cgroups::spawn_watcher(cgroup_root, cgroups_tx, options.rescan);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ebpf = probes.ebpf;
    let task = tokio::spawn(async move {
        // Keeps the programs attached (and the filter map pinned) while the pipeline runs.
        let _ebpf = ebpf;
        let _pinned = pinned;
        inlets.run(&mut pipeline, stop_rx).await;
        // The webhooks and the exporter get one grace period, together.
        let deadline = std::time::Instant::now() + pipeline.shutdown_grace();
        let otlp = pipeline.finish(deadline).join().await;
        pipeline.report_final(otlp);
        pipeline.stats.report()
    });
    if let Some(path) = &options.ready_file {
        let body = serde_json::json!({
            "live_hooks": live_hooks,
            "listen": listen,
            "otlp_receive_http": receiving.http,
            "otlp_receive_grpc": receiving.grpc,
        })
        .to_string();
        std::fs::write(path, body).map_err(|source| AgentError::ReadyFile {
            path: path.clone(),
            source,
        })?;
    }
    metrics.health.set_ready();
    tracing::info!(hooks = live_hooks.len(), "seam is observing");
    Ok(RunningAgent {
        rules: rules_tx,
        stop: stop_tx,
        task: Some(task),
        reader: reader_task,
        reader_stop,
    })
}

impl RunningAgent {
    /// Where rules reloads go.
    pub(crate) fn rules(&self) -> mpsc::Sender<Box<RuleSet>> {
        self.rules.clone()
    }

    /// Drains the ring buffer one last time, stops the pipeline (which ends every open span),
    /// detaches the probes and returns the final stats.
    pub(crate) async fn stop(self) -> StatsReport {
        let _ = self.reader_stop.send(());
        if let Err(error) = self.reader.await {
            tracing::error!(%error, "ring buffer reader failed");
        }
        let _ = self.stop.send(());
        let Some(task) = self.task else {
            return crate::pipeline::totals::Stats::default().report();
        };
        match task.await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "pipeline task failed");
                crate::pipeline::totals::Stats::default().report()
            }
        }
    }

    /// Resolves only if the pipeline task ends by itself, which it never does while healthy
    /// (it panicked, or every input closed): the agent no longer observes anything. Says why.
    pub(crate) async fn failed(&mut self) -> String {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.task = None;
        pipeline_end(outcome)
    }
}

/// Why the pipeline task ended early.
pub(crate) fn pipeline_end<T>(outcome: Result<T, tokio::task::JoinError>) -> String {
    match outcome {
        Err(error) if error.is_panic() => {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            format!("the pipeline panicked: {message}")
        }
        Err(error) => format!("the pipeline task was cancelled: {error}"),
        Ok(_) => "the pipeline stopped: every input closed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_dead_pipeline_says_why() {
        let task = tokio::spawn(async { panic!("decoder bug") });
        let why = super::pipeline_end::<()>(task.await);
        assert_eq!(why, "the pipeline panicked: decoder bug");
        let ended = super::pipeline_end(Ok(()));
        assert!(ended.contains("every input closed"), "{ended}");
    }
}
