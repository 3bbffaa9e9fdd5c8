//! The pipeline's handle on the metrics: counter handles cached per label so the hot path is
//! one atomic add (no registry lock once a label has been seen).
use std::{collections::HashMap, sync::Arc, time::Duration};

use prometheus_client::metrics::counter::Counter;

use super::{KindLabel, Metrics, ProbeLabel};

/// What the pipeline records.
#[derive(Debug)]
pub struct PipelineMetrics {
    shared: Arc<Metrics>,
    events: HashMap<&'static str, Counter>,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self::new(Arc::new(Metrics::new()))
    }
}

impl PipelineMetrics {
    pub fn new(shared: Arc<Metrics>) -> Self {
        Self {
            shared,
            events: HashMap::new(),
        }
    }

    pub fn shared(&self) -> &Arc<Metrics> {
        &self.shared
    }

    /// One kernel event of `kind`.
    pub fn event(&mut self, kind: &'static str) {
        self.events
            .entry(kind)
            .or_insert_with(|| {
                self.shared.events.get_or_create_owned(&KindLabel {
                    kind: kind.to_owned(),
                })
            })
            .inc();
    }

    pub fn decode_error(&self) {
        self.shared.decode_errors.inc();
    }

    pub fn span(&self) {
        self.shared.spans.inc();
    }

    pub fn lost(&self, probe: &str, lost: u64) {
        self.shared
            .events_lost
            .get_or_create(&ProbeLabel {
                probe: probe.to_owned(),
            })
            .inc_by(lost);
    }

    /// Time spent evaluating the rules for one span.
    pub fn evaluation(&self, took: Duration) {
        self.shared.rule_evaluation.observe(took.as_secs_f64());
    }

    pub fn tenant_cgroups(&self, n: usize) {
        self.shared
            .tenant_cgroups
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The pipeline is alive (called on every tick).
    pub fn heartbeat(&self) {
        self.shared.health.pipeline_beat();
    }
}
