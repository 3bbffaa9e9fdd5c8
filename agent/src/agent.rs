//! Starting and stopping the agent: preflight, BTF offsets, probes, the initial cgroup scan, the
//! reader, watcher and ticker tasks, and the pipeline loop.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use aya::maps::{HashMap as BpfHashMap, PerCpuArray, RingBuf};
use seam_common::{KernelOffsets, MAP_EVENTS, MAP_LOSSES, MAP_TENANT_CGROUPS};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    attribution::{Attributor, CgroupRegistry, ProcessTable},
    config::RuleSet,
    events::reader,
    metrics::{Metrics, PipelineMetrics, server::ServeError},
    pipeline::{Input, Pipeline},
    preflight::{self, PreflightError},
    probes::{self, ProbeError, ProbeStatus, btf::BtfOffsets},
    sinks::{SinkError, SinkOptions, Sinks},
    stats::StatsReport,
};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A start-up precondition does not hold (root, cgroup v2, tracefs).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Probes could not be loaded or attached.
    #[error(transparent)]
    Probes(#[from] ProbeError),
    /// The feed sink could not be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The metrics and health listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ServeError),
    /// A map the probes declare is missing or of the wrong type (a build mismatch).
    #[error("eBPF map {name}: {source}; rebuild with `cargo xtask build`")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    /// Missing map (a build mismatch).
    #[error("eBPF map {0} missing from the probe object; rebuild with `cargo xtask build`")]
    MissingMap(&'static str),
    /// I/O while setting up the event reader or the ready file.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// How to run.
pub struct AgentOptions {
    pub rules: RuleSet,
    pub node: String,
    /// Where the feed goes: stdout, the feed file (rotation), webhooks; aggregation.
    pub feeds: SinkOptions,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub listen: Option<SocketAddr>,
    /// Written (with the live hooks) once probes are attached and cgroups registered.
    pub ready_file: Option<PathBuf>,
    /// How often the cgroup tree is rescanned even without inotify events.
    pub rescan: Duration,
    /// Ring buffer size in bytes (None: the probes' default, 4 MiB).
    pub ring_bytes: Option<u32>,
    /// Probes not to load (program names or attach points).
    pub disabled_probes: Vec<String>,
}

/// A started agent. Call [`RunningAgent::stop`] to flush and collect the stats.
pub struct RunningAgent {
    inputs: mpsc::Sender<Input>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<Pipeline>,
    reader: JoinHandle<()>,
    reader_stop: tokio::sync::oneshot::Sender<()>,
    pub probe_statuses: Vec<ProbeStatus>,
    /// Where `/metrics` is served (the bound port when `--listen` asked for port 0).
    pub listen: Option<SocketAddr>,
}

fn take_map(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<aya::maps::Map, AgentError> {
    ebpf.take_map(name).ok_or(AgentError::MissingMap(name))
}

/// Resolves every offset the probes need from BTF and tracefs; what cannot be resolved stays
/// zero and the probes depending on it are reported as not loaded.
pub(crate) fn kernel_offsets() -> Option<KernelOffsets> {
    let btf = match BtfOffsets::open(Path::new(probes::btf::VMLINUX_BTF)) {
        Ok(btf) => btf,
        Err(error) => {
            tracing::warn!(%error, "kernel BTF unavailable; probes that need offsets stay off");
            return None;
        }
    };
    let base = btf.kernel_offsets().unwrap_or_else(|error| {
        tracing::warn!(%error, "socket offsets unavailable; TCP state probes stay off");
        KernelOffsets::ZERO
    });
    let mut offsets = btf.file_offsets(base).unwrap_or_else(|error| {
        tracing::warn!(%error, "file offsets unavailable; file probes stay off");
        base
    });
    if preflight::ensure_tracefs().is_ok()
        && let Some((args, ret)) = probes::tracefs::syscall_layout(Path::new(preflight::TRACEFS))
    {
        offsets.syscall_args = args;
        offsets.syscall_ret = ret;
    } else {
        // Only the syscall tracepoint rows need the record layout (Needs::SyscallRecords).
        tracing::warn!("tracefs syscall formats unreadable; syscall file probes stay off");
    }
    Some(offsets)
}

/// Whether any rule matches file spans (`trace.has(file.*)` and the like).
fn uses_file_spans(rules: &RuleSet) -> bool {
    use crate::rules::{Family, SpanName};
    rules.rules.iter().any(|rule| {
        SpanName::ALL
            .into_iter()
            .any(|name| name.family() == Family::File && rule.matcher.spans.contains(name))
    })
}

/// Starts the agent; returns once it is observing (probes live, tenant cgroups registered).
pub async fn start(options: AgentOptions) -> Result<RunningAgent, AgentError> {
    preflight::require_root()?;
    let cgroup_root = preflight::cgroup2_mount()?;
    let metrics = Arc::new(Metrics::new());
    let listen = match options.listen {
        Some(addr) => Some(crate::metrics::server::spawn(addr, metrics.clone()).await?),
        None => None,
    };
    let offsets = kernel_offsets();
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
    let mut probes = probes::load(offsets, &cgroup_root, options.ring_bytes, &disabled)?;
    let live_hooks = probes.live_hooks();
    let map_err = |name| move |source| AgentError::Map { name, source };
    let ring =
        RingBuf::try_from(take_map(&mut probes.ebpf, MAP_EVENTS)?).map_err(map_err(MAP_EVENTS))?;
    let tenant_map = BpfHashMap::try_from(take_map(&mut probes.ebpf, MAP_TENANT_CGROUPS)?)
        .map_err(map_err(MAP_TENANT_CGROUPS))?;
    let losses = PerCpuArray::try_from(take_map(&mut probes.ebpf, MAP_LOSSES)?)
        .map_err(map_err(MAP_LOSSES))?;
    metrics.set_live_hooks(&live_hooks);
    let sink = Sinks::open(&options.feeds, &metrics)?;
    let attributor = Attributor {
        cgroups: CgroupRegistry::new(cgroup_root.clone()),
        processes: ProcessTable::default(),
    };
    let mut pipeline = Pipeline::new(
        options.rules,
        attributor,
        sink,
        tenant_map,
        losses,
        options.node,
        live_hooks.clone(),
        PipelineMetrics::new(metrics.clone()),
    );
    pipeline.rescan();

    let (tx, mut rx) = mpsc::channel::<Input>(1024);
    let reader_tx = tx.clone();
    let (reader_stop, reader_stop_rx) = tokio::sync::oneshot::channel();
    let reader_task = tokio::spawn(reader::run(
        ring,
        reader_tx,
        reader_stop_rx,
        metrics.clone(),
    ));
    crate::attribution::cgroups::spawn_watcher(cgroup_root, tx.clone(), options.rescan);
    let tick_tx = tx.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            if tick_tx.send(Input::Tick).await.is_err() {
                return;
            }
        }
    });
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ebpf = probes.ebpf;
    let task = tokio::spawn(async move {
        // Keeps the programs attached for as long as the pipeline runs.
        let _ebpf = ebpf;
        loop {
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => pipeline.handle(input),
                    None => break,
                },
                _ = &mut stop_rx => {
                    // Drain what is already queued, then flush.
                    while let Ok(input) = rx.try_recv() {
                        pipeline.handle(input);
                    }
                    break;
                }
            }
        }
        pipeline.finish();
        pipeline
    });
    if let Some(path) = &options.ready_file {
        let body = serde_json::json!({ "live_hooks": live_hooks, "listen": listen }).to_string();
        std::fs::write(path, body).map_err(|source| AgentError::Io {
            what: format!("cannot write ready file {}", path.display()),
            source,
        })?;
    }
    metrics.health.set_ready();
    tracing::info!(hooks = live_hooks.len(), "seam is observing");
    Ok(RunningAgent {
        inputs: tx,
        stop: stop_tx,
        task,
        reader: reader_task,
        reader_stop,
        probe_statuses: probes.statuses,
        listen,
    })
}

impl RunningAgent {
    /// A sender into the pipeline (e.g. for rules reloads).
    pub fn inputs(&self) -> mpsc::Sender<Input> {
        self.inputs.clone()
    }

    /// Drains the ring buffer one last time, stops the pipeline (which flushes unpaired
    /// connection ends), detaches the probes and returns the final stats.
    pub async fn stop(self) -> StatsReport {
        let _ = self.reader_stop.send(());
        if let Err(error) = self.reader.await {
            tracing::error!(%error, "ring buffer reader failed");
        }
        let _ = self.inputs.send(Input::Tick).await;
        let _ = self.stop.send(());
        match self.task.await {
            Ok(pipeline) => pipeline.stats.report(),
            Err(error) => {
                tracing::error!(%error, "pipeline task failed");
                crate::stats::Stats::default().report()
            }
        }
    }
}
