//! Starting and stopping the agent: preflight, BTF offsets, probes, the initial cgroup scan, the
//! reader, watcher and ticker tasks, and the pipeline loop. [`start`] reads as the outline; its
//! steps are in [`startup`].
pub(crate) mod host;
pub(crate) mod privileges;
pub(crate) mod reload;
mod startup;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    attribution::pods::{PodError, RuntimeConfig},
    daemon::host::HostError,
    evidence::history::{HistoryConfig, HistoryError},
    kernel::{
        preflight,
        preflight::PreflightError,
        probes::{ProbeError, maps},
    },
    metrics::{Metrics, PipelineMetrics},
    output::{
        SinkError, SinkOptions,
        otlp::{ExportError, OtlpConfig},
    },
    pipeline::{Pipeline, PipelineOptions, input::Input, totals::StatsReport},
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

/// Starts the agent; returns once it is observing (probes live, tenant cgroups registered).
pub(crate) async fn start(options: AgentOptions) -> Result<RunningAgent, AgentError> {
    preflight::require_root()?;
    let cgroup_root = match &options.cgroup_root {
        Some(root) => crate::daemon::host::cgroup_root(root)?,
        None => preflight::cgroup2_mount()?,
    };
    let metrics = Arc::new(Metrics::new());
    let listen = startup::serve_metrics(&options, &metrics).await?;
    let mut kernel = startup::attach_probes(&options, &cgroup_root, &metrics)?;
    let live_hooks = kernel.live_hooks;
    let sink = startup::open_sinks(&options, &metrics, kernel.fingerprint)?;
    let channels = startup::channels();
    let attributor =
        startup::attribution(&options, &cgroup_root, channels.cgroups.clone(), &metrics).await?;
    let receiving = match options.receive {
        Some(config) => crate::receive::spawn(config, channels.app, &metrics).await?,
        None => crate::receive::Bound::default(),
    };
    let own_ports = startup::own_ports(listen, &receiving);
    let history = startup::history(options.history, &options.node, &live_hooks, &options.rules)?;
    let mut pipeline = Pipeline::new(
        options.rules,
        attributor,
        sink,
        Box::new(kernel.filter),
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
    if kernel.silence {
        pipeline.set_silences(Box::new(maps::KernelSilenceMap::take(
            &mut kernel.probes.ebpf,
        )?));
    }
    pipeline.handle(Input::CgroupsChanged);

    let (reader_stop, reader) = startup::spawn_reader(kernel.source, channels.kernel, &metrics);
    crate::attribution::cgroups::spawn_watcher(cgroup_root, channels.cgroups, options.rescan);
    let (stop, task) =
        startup::spawn_pipeline(pipeline, channels.inlets, kernel.probes.ebpf, kernel.pinned);
    if let Some(path) = &options.ready_file {
        startup::write_ready_file(path, &live_hooks, listen, &receiving)?;
    }
    metrics.health.set_ready();
    tracing::info!(hooks = live_hooks.len(), "seam is observing");
    Ok(RunningAgent {
        rules: channels.rules,
        stop,
        task: Some(task),
        reader,
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
