//! The pipeline's handle on the metrics: counter handles cached per label so the hot path is
//! one atomic add (no registry lock once a label has been seen).
use std::{sync::Arc, time::Duration};

use prometheus_client::metrics::counter::Counter;

use super::{
    Metrics,
    kernel::{KindLabel, ProbeLabel},
    pipeline::{LossLabels, OpenLabel, OpenSpanKind},
};
use crate::model::{
    loss::LossSubject,
    vocab::{AccessClass, EventKind, JoinOutcome},
};

/// What the pipeline records.
#[derive(Debug)]
pub(crate) struct PipelineMetrics {
    shared: Arc<Metrics>,
    /// By kind, in [`EventKind::ALL`] order; created when a kind is first seen (kinds never
    /// seen are not exported).
    events: [Option<Counter>; EventKind::ALL.len()],
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self::new(Arc::new(Metrics::new()))
    }
}

impl PipelineMetrics {
    pub(crate) fn new(shared: Arc<Metrics>) -> Self {
        Self {
            shared,
            events: std::array::from_fn(|_| None),
        }
    }

    /// One kernel event of `kind`.
    pub(crate) fn event(&mut self, kind: EventKind) {
        // ALL lists the variants in declaration order.
        self.events[kind as usize]
            .get_or_insert_with(|| {
                self.shared
                    .kernel
                    .events
                    .get_or_create_owned(&KindLabel { kind })
            })
            .inc();
    }

    /// `count` repeated opens the kernel counted (instead of sending them) of class `op` by
    /// `tenant`, of files `owner` owns.
    pub(crate) fn file_opens_counted(
        &self,
        tenant: &str,
        owner: &str,
        op: AccessClass,
        count: u64,
    ) {
        self.shared
            .kernel
            .file_opens_counted(tenant, owner, op, count);
    }

    /// `n` more (cgroup, directory, class) keys silenced.
    pub(crate) fn file_silences(&self, n: u64) {
        self.shared.kernel.file_silences.inc_by(n);
    }

    pub(crate) fn decode_error(&self) {
        self.shared.kernel.decode_errors.inc();
    }

    pub(crate) fn span(&self) {
        self.shared.pipeline.spans.inc();
    }

    /// Evidence lost: ring-buffer losses also count in `seam_events_lost_total{probe}`.
    pub(crate) fn lost(&self, subject: &LossSubject, lost: u64) {
        if let LossSubject::Probe(probe) = subject {
            self.shared
                .kernel
                .events_lost
                .get_or_create(&ProbeLabel { probe: *probe })
                .inc_by(lost);
        }
        self.shared
            .pipeline
            .lost
            .get_or_create(&LossLabels {
                source: subject.source(),
                probe: subject.clone(),
            })
            .inc_by(lost);
    }

    /// One application span joined with `outcome`.
    pub(crate) fn app_span(&self, outcome: JoinOutcome) {
        self.shared.pipeline.app_spans(outcome).inc();
    }

    /// Open connection spans (and unpaired ends) and known processes.
    pub(crate) fn open_spans(&self, connections: usize, processes: usize) {
        let set = |kind, n: usize| {
            self.shared
                .pipeline
                .open_spans
                .get_or_create(&OpenLabel { kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set(OpenSpanKind::Connection, connections);
        set(OpenSpanKind::Process, processes);
    }

    /// Time spent evaluating the rules for one span.
    pub(crate) fn evaluation(&self, took: Duration) {
        self.shared
            .pipeline
            .rule_evaluation
            .observe(took.as_secs_f64());
    }

    pub(crate) fn tenant_cgroups(&self, n: usize) {
        self.shared
            .pipeline
            .tenant_cgroups
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The pipeline is alive (called on every tick).
    pub(crate) fn heartbeat(&self) {
        self.shared.health.pipeline_beat();
    }
}
