//! The pipeline's handle on the metrics: counter handles cached per label so the hot path is
//! one atomic add (no registry lock once a label has been seen).
use std::{collections::HashMap, sync::Arc, time::Duration};

use prometheus_client::metrics::counter::Counter;

use super::{KindLabel, LossLabels, Metrics, ProbeLabel};
use crate::model::loss::LossSubject;

/// What the pipeline records.
#[derive(Debug)]
pub(crate) struct PipelineMetrics {
    shared: Arc<Metrics>,
    events: HashMap<&'static str, Counter>,
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
            events: HashMap::new(),
        }
    }

    /// One kernel event of `kind`.
    pub(crate) fn event(&mut self, kind: &'static str) {
        self.events
            .entry(kind)
            .or_insert_with(|| {
                self.shared.events.get_or_create_owned(&KindLabel {
                    kind: kind.to_owned(),
                })
            })
            .inc();
    }

    /// Repeated opens the kernel counted, and the silences set since the last call.
    pub(crate) fn file_counts(
        &self,
        counts: &[(crate::kernel::events::silence::CountLabel, u64)],
        new_silences: u64,
    ) {
        for (label, count) in counts {
            self.shared
                .file_opens_counted
                .get_or_create(&super::CountedLabels {
                    tenant: label.tenant.clone(),
                    owner: label.owner.clone(),
                    op: label.class.to_owned(),
                })
                .inc_by(*count);
        }
        self.shared.file_silences.inc_by(new_silences);
    }

    pub(crate) fn decode_error(&self) {
        self.shared.decode_errors.inc();
    }

    pub(crate) fn span(&self) {
        self.shared.spans.inc();
    }

    /// Evidence lost: ring-buffer losses also count in `seam_events_lost_total{probe}`.
    pub(crate) fn lost(&self, subject: &LossSubject, lost: u64) {
        if let LossSubject::Probe(family) = subject {
            self.shared
                .events_lost
                .get_or_create(&ProbeLabel {
                    probe: family.as_str().to_owned(),
                })
                .inc_by(lost);
        }
        self.shared
            .lost
            .get_or_create(&LossLabels {
                source: subject.source().as_str().to_owned(),
                probe: subject.to_string(),
            })
            .inc_by(lost);
    }

    /// One application span joined with `outcome`.
    pub(crate) fn app_span(&self, outcome: crate::assemble::JoinOutcome) {
        self.shared
            .app_spans
            .get_or_create(&super::OutcomeLabel {
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// Open connection spans (and unpaired ends) and known processes.
    pub(crate) fn open_spans(&self, connections: usize, processes: usize) {
        let set = |kind: &str, n: usize| {
            self.shared
                .open_spans
                .get_or_create(&KindLabel {
                    kind: kind.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("connection", connections);
        set("process", processes);
    }

    /// Time spent evaluating the rules for one span.
    pub(crate) fn evaluation(&self, took: Duration) {
        self.shared.rule_evaluation.observe(took.as_secs_f64());
    }

    pub(crate) fn tenant_cgroups(&self, n: usize) {
        self.shared
            .tenant_cgroups
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The pipeline is alive (called on every tick).
    pub(crate) fn heartbeat(&self) {
        self.shared.health.pipeline_beat();
    }
}
