//! Prometheus metrics and health, served on one HTTP listener (`--listen`): `/metrics`,
//! `/healthz`, `/readyz`. Every metric is an atomic (or a mutex-guarded histogram) that the
//! pipeline, the reader and the sinks update directly; scrapes only read.
pub(crate) mod health;
pub(crate) mod node;
pub(crate) mod recorder;
#[cfg(test)]
mod tests;

pub(crate) use health::Health;
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
pub(crate) use recorder::PipelineMetrics;

use crate::model::loss::SinkId;
/// The `reason` label of `seam_feed_dropped_total`.
pub(crate) use crate::model::vocab::DropReason;

/// `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub kind: String,
}

/// Labels of `seam_file_opens_counted_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CountedLabels {
    pub tenant: String,
    pub owner: String,
    pub op: String,
}

/// `probe` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeLabel {
    pub probe: String,
}

/// Labels of `seam_violations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ViolationLabels {
    pub rule: String,
    pub severity: String,
    pub from_tenant: String,
    pub to_tenant: String,
}

/// Labels of `seam_lost_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LossLabels {
    pub source: String,
    pub probe: String,
}

/// Labels of `seam_otlp_exported_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    pub signal: String,
}

/// Labels of `seam_otlp_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalDropLabels {
    pub signal: String,
    pub reason: String,
}

/// `listener` label: which of Seam's own listeners.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: String,
}

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// `attempt` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabel {
    pub attempt: String,
}

/// `sink` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkLabel {
    pub sink: String,
}

/// Labels of `seam_feed_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DropLabels {
    pub sink: String,
    pub reason: String,
}

/// `hook` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HookLabel {
    pub hook: String,
}

/// Every metric the agent exports, and the registry that encodes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub events: Family<KindLabel, Counter>,
    pub events_lost: Family<ProbeLabel, Counter>,
    pub lost: Family<LossLabels, Counter>,
    pub open_spans: Family<KindLabel, Gauge>,
    pub decode_errors: Counter,
    pub spans: Counter,
    pub violations: Family<ViolationLabels, Counter>,
    pub violations_folded: Counter,
    pub rule_evaluation: Histogram,
    pub feed_queue_depth: Family<SinkLabel, Gauge>,
    pub feed_dropped: Family<DropLabels, Counter>,
    pub feed_delivered: Family<SinkLabel, Counter>,
    pub feed_delivery_failures: Family<SinkLabel, Counter>,
    pub hooks_live: Family<HookLabel, Gauge>,
    pub otlp_exported: Family<SignalLabel, Counter>,
    pub otlp_dropped: Family<SignalDropLabels, Counter>,
    pub otlp_received: Counter,
    pub otlp_receive_errors: Family<ReasonLabel, Counter>,
    pub app_spans: Family<OutcomeLabel, Counter>,
    pub chaos_seen: Family<AttemptLabel, Gauge>,
    pub chaos_runs: Family<OutcomeLabel, Counter>,
    pub chaos_last_run: Gauge,
    pub tenant_cgroups: Gauge,
    pub file_opens_counted: Family<CountedLabels, Counter>,
    pub file_silences: Counter,
    pub listener_unauthorized: Family<ListenerLabel, Counter>,
    pub health: Health,
    /// Build, probe states, container runtime.
    pub node: node::NodeMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("seam");
        let events = Family::<KindLabel, Counter>::default();
        registry.register("events", "Kernel events handled, by kind", events.clone());
        let events_lost = Family::<ProbeLabel, Counter>::default();
        registry.register(
            "events_lost",
            "Events the kernel could not hand over (ring buffer full), by probe family",
            events_lost.clone(),
        );
        let lost = Family::<LossLabels, Counter>::default();
        registry.register(
            "lost",
            "Evidence Seam could not keep, by source (ring_buffer, span_evicted, feed, otlp, \
             store) and probe or part",
            lost.clone(),
        );
        let open_spans = Family::<KindLabel, Gauge>::default();
        registry.register(
            "open_spans",
            "Spans open now (connections waiting to close, running processes)",
            open_spans.clone(),
        );
        let decode_errors = Counter::default();
        registry.register(
            "decode_errors",
            "Ring buffer records that could not be decoded",
            decode_errors.clone(),
        );
        let spans = Counter::default();
        registry.register(
            "spans",
            "Spans (connections and file accesses) evaluated",
            spans.clone(),
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
        // 1 us .. ~4 s.
        let rule_evaluation = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        registry.register(
            "rule_evaluation_seconds",
            "Time spent evaluating the rules for one span",
            rule_evaluation.clone(),
        );
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
        let hooks_live = Family::<HookLabel, Gauge>::default();
        registry.register(
            "hooks_live",
            "Kernel hooks attached (1 per live hook)",
            hooks_live.clone(),
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
        let otlp_received = Counter::default();
        registry.register(
            "otlp_received_spans",
            "Application spans received over OTLP and handed to the join",
            otlp_received.clone(),
        );
        let otlp_receive_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "otlp_receive_errors",
            "OTLP requests (or spans) the receiver refused, by reason (malformed, too_large, \
             unsupported, busy, refused_spans)",
            otlp_receive_errors.clone(),
        );
        let app_spans = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "app_spans",
            "Application spans by join outcome (joined: matched to a kernel connection; \
             process: only the sender's process known; unmatched)",
            app_spans.clone(),
        );
        let chaos_seen = Family::<AttemptLabel, Gauge>::default();
        registry.register(
            "chaos_attempt_seen",
            "seam chaos: 1 when the last run's attempt was reported by the agent, 0 when not",
            chaos_seen.clone(),
        );
        let chaos_runs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "chaos_runs",
            "seam chaos runs, by outcome (passed: every attempt reported)",
            chaos_runs.clone(),
        );
        let chaos_last_run = Gauge::default();
        registry.register(
            "chaos_last_run_timestamp_seconds",
            "When the last seam chaos run ended (Unix seconds)",
            chaos_last_run.clone(),
        );
        let tenant_cgroups = Gauge::default();
        registry.register(
            "tenant_cgroups",
            "Cgroups currently attributed to a tenant",
            tenant_cgroups.clone(),
        );
        let file_opens_counted = Family::<CountedLabels, Counter>::default();
        registry.register(
            "file_opens_counted",
            "Repeated opens the kernel counted instead of sending (silenced once judged), by \
             caller tenant, owner tenant of the file and op",
            file_opens_counted.clone(),
        );
        let file_silences = Counter::default();
        registry.register(
            "file_silences",
            "(cgroup, directory, access class) keys whose repeated opens were silenced",
            file_silences.clone(),
        );
        let listener_unauthorized = Family::<ListenerLabel, Counter>::default();
        registry.register(
            "listener_unauthorized",
            "Requests to Seam's own listeners refused for a missing or wrong bearer token, by \
             listener (metrics, otlp_http, otlp_grpc)",
            listener_unauthorized.clone(),
        );
        let node = node::NodeMetrics::register(&mut registry);
        Self {
            registry,
            node,
            file_opens_counted,
            file_silences,
            events,
            events_lost,
            lost,
            open_spans,
            decode_errors,
            spans,
            violations,
            violations_folded,
            rule_evaluation,
            feed_queue_depth,
            feed_dropped,
            feed_delivered,
            feed_delivery_failures,
            hooks_live,
            otlp_exported,
            otlp_dropped,
            otlp_received,
            otlp_receive_errors,
            app_spans,
            chaos_seen,
            chaos_runs,
            chaos_last_run,
            tenant_cgroups,
            listener_unauthorized,
            health: Health::default(),
        }
    }

    /// The exposition, OpenMetrics text format (which Prometheus scrapes natively).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }

    /// Marks `hooks` live.
    pub(crate) fn set_live_hooks(&self, hooks: &[String]) {
        for hook in hooks {
            self.hooks_live
                .get_or_create(&HookLabel { hook: hook.clone() })
                .set(1);
        }
    }

    /// The exported counter of OTLP `signal`.
    pub(crate) fn otlp_exported(&self, signal: &str) -> Counter {
        self.otlp_exported.get_or_create_owned(&SignalLabel {
            signal: signal.into(),
        })
    }

    /// The dropped counter of OTLP `signal` for `reason` (created at zero).
    pub(crate) fn otlp_dropped(&self, signal: &str, reason: &str) -> Counter {
        self.otlp_dropped.get_or_create_owned(&SignalDropLabels {
            signal: signal.into(),
            reason: reason.into(),
        })
    }

    /// The results of a `seam chaos` run: one gauge per attempt (1 seen, 0 unseen), the run's
    /// verdict and time.
    pub(crate) fn chaos(&self, attempts: &[(&str, bool)], passed: bool) {
        for (attempt, seen) in attempts {
            self.chaos_seen
                .get_or_create(&AttemptLabel {
                    attempt: (*attempt).to_owned(),
                })
                .set(i64::from(*seen));
        }
        self.chaos_runs
            .get_or_create(&OutcomeLabel {
                outcome: if passed { "passed" } else { "failed" }.to_owned(),
            })
            .inc();
        self.chaos_last_run
            .set(crate::model::clock::UnixNanos::now().0 / 1_000_000_000);
    }

    /// The counter of requests `listener` refused for a bad token (created at zero).
    pub(crate) fn unauthorized(&self, listener: &str) -> Counter {
        self.listener_unauthorized
            .get_or_create(&ListenerLabel {
                listener: listener.to_owned(),
            })
            .clone()
    }

    /// The OTLP receiver's error counter for `reason` (created at zero).
    pub(crate) fn otlp_receive_error(&self, reason: &str) -> Counter {
        self.otlp_receive_errors.get_or_create_owned(&ReasonLabel {
            reason: reason.into(),
        })
    }

    /// The counters of sink `name`, created (at zero) for every drop reason.
    pub(crate) fn sink(&self, name: SinkId) -> SinkMetrics {
        let sink = SinkLabel {
            sink: name.to_string(),
        };
        let dropped = |reason: &DropReason| {
            self.feed_dropped.get_or_create_owned(&DropLabels {
                sink: name.to_string(),
                reason: reason.as_str().into(),
            })
        };
        SinkMetrics {
            name,
            queue_depth: self.feed_queue_depth.get_or_create_owned(&sink),
            delivered: self.feed_delivered.get_or_create_owned(&sink),
            failures: self.feed_delivery_failures.get_or_create_owned(&sink),
            dropped: std::array::from_fn(|i| dropped(&DropReason::ALL[i])),
            loss_records_dropped: Default::default(),
        }
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
    dropped: [Counter; 5],
    /// The part of `dropped` that were loss records themselves (not exported on their own).
    loss_records_dropped: [Counter; 5],
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
