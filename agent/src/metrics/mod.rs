//! Prometheus metrics and health. A leaf: it imports only [`crate::model`], so every part can
//! hold a handle. The registry and health live here; each part's families live in a submodule
//! of their own ([`kernel`], [`pipeline`], [`output`], [`receive`], [`serve`], [`chaos`],
//! [`node`]), with typed label values ([`labels`]), and are updated through setters that take
//! plain values or model enums. Every metric is an atomic (or a mutex-guarded histogram) that
//! its part updates directly; scrapes only read. `crate::serve::metrics` serves the exposition.
pub(crate) mod chaos;
pub(crate) mod health;
pub(crate) mod kernel;
pub(crate) mod labels;
pub(crate) mod node;
pub(crate) mod output;
pub(crate) mod pipeline;
pub(crate) mod receive;
pub(crate) mod recorder;
pub(crate) mod serve;
#[cfg(test)]
mod tests;

pub(crate) use health::Health;
pub(crate) use output::SinkMetrics;
use prometheus_client::registry::Registry;
pub(crate) use recorder::PipelineMetrics;

/// The `reason` label of `seam_feed_dropped_total`.
pub(crate) use crate::model::vocab::DropReason;

/// Every metric the agent exports, by part, and the registry that encodes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub health: Health,
    pub kernel: kernel::KernelMetrics,
    pub pipeline: pipeline::PipelineFamilies,
    pub output: output::OutputMetrics,
    pub receive: receive::ReceiveMetrics,
    pub listeners: serve::ListenerMetrics,
    pub chaos: chaos::ChaosMetrics,
    /// Build, kernel, probe states, container runtime.
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
        Self {
            kernel: kernel::KernelMetrics::register(&mut registry),
            pipeline: pipeline::PipelineFamilies::register(&mut registry),
            output: output::OutputMetrics::register(&mut registry),
            receive: receive::ReceiveMetrics::register(&mut registry),
            listeners: serve::ListenerMetrics::register(&mut registry),
            chaos: chaos::ChaosMetrics::register(&mut registry),
            node: node::NodeMetrics::register(&mut registry),
            health: Health::default(),
            registry,
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
}
