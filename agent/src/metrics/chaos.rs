//! `seam chaos`: whether each attempt of the last run was seen, runs by verdict, and when the
//! last one ended.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::labels::label_values;
use crate::model::vocab::vocabulary;

vocabulary! {
    /// A chaos run's verdict (the `outcome` label of `seam_chaos_runs_total`).
    ChaosOutcome {
        /// Every attempt was reported.
        Passed = "passed",
        /// At least one was not.
        Failed = "failed",
    }
}
label_values!(ChaosOutcome);

/// Labels of `seam_chaos_attempt_seen` (an attempt's id in the chaos plan).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttemptLabel {
    pub attempt: String,
}

/// Labels of `seam_chaos_runs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub outcome: ChaosOutcome,
}

/// The chaos families.
#[derive(Debug, Clone)]
pub(crate) struct ChaosMetrics {
    seen: Family<AttemptLabel, Gauge>,
    runs: Family<OutcomeLabel, Counter>,
    last_run: Gauge,
}

impl ChaosMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let seen = Family::<AttemptLabel, Gauge>::default();
        registry.register(
            "chaos_attempt_seen",
            "seam chaos: 1 when the last run's attempt was reported by the agent, 0 when not",
            seen.clone(),
        );
        let runs = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "chaos_runs",
            "seam chaos runs, by outcome (passed: every attempt reported)",
            runs.clone(),
        );
        let last_run = Gauge::default();
        registry.register(
            "chaos_last_run_timestamp_seconds",
            "When the last seam chaos run ended (Unix seconds)",
            last_run.clone(),
        );
        Self {
            seen,
            runs,
            last_run,
        }
    }

    /// The results of a `seam chaos` run: one gauge per attempt (1 seen, 0 unseen), the run's
    /// verdict and time.
    pub(crate) fn record(&self, attempts: &[(&str, bool)], passed: bool) {
        for (attempt, seen) in attempts {
            self.seen
                .get_or_create(&AttemptLabel {
                    attempt: (*attempt).to_owned(),
                })
                .set(i64::from(*seen));
        }
        let outcome = if passed {
            ChaosOutcome::Passed
        } else {
            ChaosOutcome::Failed
        };
        self.runs.get_or_create(&OutcomeLabel { outcome }).inc();
        self.last_run
            .set(crate::model::clock::UnixNanos::now().0 / 1_000_000_000);
    }
}
