//! The output's families: what each feed sink queued, delivered and dropped, the violations
//! counted as they pass to the sinks, and what OTLP export sent and dropped.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::model::{
    loss::SinkId,
    vocab::{DropReason, Severity, Signal},
};

/// Labels of the feed sinks' metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkLabel {
    pub sink: SinkId,
}

/// Labels of `seam_feed_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DropLabels {
    pub sink: SinkId,
    pub reason: DropReason,
}

/// Labels of `seam_violations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ViolationLabels {
    pub rule: String,
    pub severity: Severity,
    pub from_tenant: String,
    pub to_tenant: String,
}

/// Labels of `seam_otlp_exported_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalLabel {
    pub signal: Signal,
}

/// Labels of `seam_otlp_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SignalDropLabels {
    pub signal: Signal,
    pub reason: DropReason,
}

/// The output's families.
#[derive(Debug, Clone)]
pub(crate) struct OutputMetrics {
    feed_queue_depth: Family<SinkLabel, Gauge>,
    feed_dropped: Family<DropLabels, Counter>,
    feed_delivered: Family<SinkLabel, Counter>,
    feed_delivery_failures: Family<SinkLabel, Counter>,
    violations: Family<ViolationLabels, Counter>,
    violations_folded: Counter,
    otlp_exported: Family<SignalLabel, Counter>,
    otlp_dropped: Family<SignalDropLabels, Counter>,
}

impl OutputMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let feed_queue_depth = Family::<SinkLabel, Gauge>::default();
        registry.register(
            "feed_queue_depth",
            "Records waiting in a sink's queue",
            feed_queue_depth.clone(),
        );
        let feed_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "feed_dropped",
            "Feed records a sink dropped, by reason",
            feed_dropped.clone(),
        );
        let feed_delivered = Family::<SinkLabel, Counter>::default();
        registry.register(
            "feed_delivered",
            "Feed records a sink delivered",
            feed_delivered.clone(),
        );
        let feed_delivery_failures = Family::<SinkLabel, Counter>::default();
        registry.register(
            "feed_delivery_failures",
            "Failed delivery attempts (each retry counts)",
            feed_delivery_failures.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "violations",
            "Violations detected (including those folded by aggregation)",
            violations.clone(),
        );
        let violations_folded = Counter::default();
        registry.register(
            "violations_folded",
            "Violations folded into aggregate records instead of being emitted one by one",
            violations_folded.clone(),
        );
        let otlp_exported = Family::<SignalLabel, Counter>::default();
        registry.register(
            "otlp_exported",
            "Spans (traces) and log records (logs) an OTLP receiver accepted",
            otlp_exported.clone(),
        );
        let otlp_dropped = Family::<SignalDropLabels, Counter>::default();
        registry.register(
            "otlp_dropped",
            "Spans and log records OTLP export dropped, by reason (queue_full, \
             retries_exhausted, rejected, shutdown)",
            otlp_dropped.clone(),
        );
        Self {
            feed_queue_depth,
            feed_dropped,
            feed_delivered,
            feed_delivery_failures,
            violations,
            violations_folded,
            otlp_exported,
            otlp_dropped,
        }
    }

    /// The counters of sink `name`, created (at zero) for every drop reason.
    pub(crate) fn sink(&self, name: SinkId) -> SinkMetrics {
        let sink = SinkLabel { sink: name };
        let dropped = |i: usize| {
            self.feed_dropped.get_or_create_owned(&DropLabels {
                sink: name,
                reason: DropReason::ALL[i],
            })
        };
        SinkMetrics {
            name,
            queue_depth: self.feed_queue_depth.get_or_create_owned(&sink),
            delivered: self.feed_delivered.get_or_create_owned(&sink),
            failures: self.feed_delivery_failures.get_or_create_owned(&sink),
            dropped: std::array::from_fn(dropped),
            loss_records_dropped: Default::default(),
        }
    }

    /// The violation counters.
    pub(crate) fn violations(&self) -> ViolationCounters {
        ViolationCounters {
            by_rule: self.violations.clone(),
            folded: self.violations_folded.clone(),
        }
    }

    /// The exported counter of OTLP `signal`.
    pub(crate) fn otlp_exported(&self, signal: Signal) -> Counter {
        self.otlp_exported
            .get_or_create_owned(&SignalLabel { signal })
    }

    /// The dropped counter of OTLP `signal` for `reason` (created at zero).
    pub(crate) fn otlp_dropped(&self, signal: Signal, reason: DropReason) -> Counter {
        self.otlp_dropped
            .get_or_create_owned(&SignalDropLabels { signal, reason })
    }
}

/// Violations as they pass to the sinks: by rule, severity and tenants, and those folded.
#[derive(Clone, Debug, Default)]
pub(crate) struct ViolationCounters {
    by_rule: Family<ViolationLabels, Counter>,
    /// Violations folded into aggregate records.
    pub folded: Counter,
}

impl ViolationCounters {
    /// One violation of `rule` from tenant `from` to tenant `to` (empty: none).
    pub(crate) fn count(&self, rule: &str, severity: Severity, from: &str, to: &str) {
        self.by_rule
            .get_or_create(&ViolationLabels {
                rule: rule.to_owned(),
                severity,
                from_tenant: from.to_owned(),
                to_tenant: to.to_owned(),
            })
            .inc();
    }
}

/// One sink's counters (handles onto the registry's atomics; [`Default`] gives detached ones
/// for tests).
#[derive(Clone, Debug)]
pub(crate) struct SinkMetrics {
    pub name: SinkId,
    pub queue_depth: Gauge,
    pub delivered: Counter,
    pub failures: Counter,
    /// By reason, in [`DropReason::ALL`] order.
    dropped: [Counter; DropReason::ALL.len()],
    /// The part of `dropped` that were loss records themselves (not exported on their own).
    loss_records_dropped: [Counter; DropReason::ALL.len()],
}

impl Default for SinkMetrics {
    /// Detached counters of a sink named `stdout`.
    fn default() -> Self {
        Self {
            name: SinkId::Stdout,
            queue_depth: Gauge::default(),
            delivered: Counter::default(),
            failures: Counter::default(),
            dropped: Default::default(),
            loss_records_dropped: Default::default(),
        }
    }
}

impl SinkMetrics {
    pub(crate) fn dropped(&self, reason: DropReason) -> &Counter {
        // ALL lists the variants in declaration order.
        &self.dropped[reason as usize]
    }

    /// Counts `n` records dropped for `reason`, `loss` of which were loss records; returns the
    /// sink's total for that reason. Every drop is in `seam_feed_dropped_total`, but only the
    /// records other than loss records are reported again as losses
    /// ([`SinkMetrics::evidence_dropped`]): a loss record that cannot be delivered must not
    /// breed another, forever, while the sink is down.
    pub(crate) fn drop_records(&self, reason: DropReason, n: u64, loss: u64) -> u64 {
        self.loss_records_dropped[reason as usize].inc_by(loss.min(n));
        self.dropped(reason).inc_by(n) + n
    }

    /// Records other than loss records dropped for `reason` so far.
    pub(crate) fn evidence_dropped(&self, reason: DropReason) -> u64 {
        let i = reason as usize;
        self.dropped[i]
            .get()
            .saturating_sub(self.loss_records_dropped[i].get())
    }

    /// Drops by reason label, zeros left out.
    pub(crate) fn dropped_by_reason(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.dropped(*r).get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
