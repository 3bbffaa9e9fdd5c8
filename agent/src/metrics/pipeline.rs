//! The pipeline's families: evidence lost (every source), open spans, spans evaluated and how
//! long their rules took, tenant cgroups, and how application spans were joined. The pipeline
//! updates them through its [`super::PipelineMetrics`] handle.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::labels::label_values;
use crate::model::{
    loss::LossSubject,
    vocab::{JoinOutcome, LossSource, vocabulary},
};

vocabulary! {
    /// What an open span is (the `kind` label of `seam_open_spans`).
    OpenSpanKind {
        /// Connections waiting to close (and unpaired ends).
        Connection = "connection",
        /// Running processes.
        Process = "process",
    }
}
label_values!(OpenSpanKind);

/// Labels of `seam_lost_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LossLabels {
    pub source: LossSource,
    pub probe: LossSubject,
}

/// Labels of `seam_open_spans`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OpenLabel {
    pub kind: OpenSpanKind,
}

/// Labels of `seam_app_spans_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: JoinOutcome,
}

/// The pipeline's families.
#[derive(Debug, Clone)]
pub(crate) struct PipelineFamilies {
    pub(super) lost: Family<LossLabels, Counter>,
    pub(super) open_spans: Family<OpenLabel, Gauge>,
    pub(super) spans: Counter,
    pub(super) rule_evaluation: Histogram,
    pub(super) tenant_cgroups: Gauge,
    app_spans: Family<OutcomeLabel, Counter>,
}

impl PipelineFamilies {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let lost = Family::<LossLabels, Counter>::default();
        registry.register(
            "lost",
            "Evidence Seam could not keep, by source (ring_buffer, span_evicted, feed, otlp, \
             store) and probe or part",
            lost.clone(),
        );
        let open_spans = Family::<OpenLabel, Gauge>::default();
        registry.register(
            "open_spans",
            "Spans open now (connections waiting to close, running processes)",
            open_spans.clone(),
        );
        let spans = Counter::default();
        registry.register(
            "spans",
            "Spans (connections and file accesses) evaluated",
            spans.clone(),
        );
        // 1 us .. ~4 s.
        let rule_evaluation = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        registry.register(
            "rule_evaluation_seconds",
            "Time spent evaluating the rules for one span",
            rule_evaluation.clone(),
        );
        let tenant_cgroups = Gauge::default();
        registry.register(
            "tenant_cgroups",
            "Cgroups currently attributed to a tenant",
            tenant_cgroups.clone(),
        );
        let app_spans = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "app_spans",
            "Application spans by join outcome (joined: matched to a kernel connection; \
             process: only the sender's process known; unmatched)",
            app_spans.clone(),
        );
        Self {
            lost,
            open_spans,
            spans,
            rule_evaluation,
            tenant_cgroups,
            app_spans,
        }
    }

    /// The counter of application spans joined with `outcome`.
    pub(crate) fn app_spans(&self, outcome: JoinOutcome) -> Counter {
        self.app_spans
            .get_or_create_owned(&OutcomeLabel { outcome })
    }
}
