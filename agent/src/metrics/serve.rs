//! Seam's own listeners: requests refused for a missing or wrong bearer token.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::labels::label_values;
use crate::model::vocab::vocabulary;

vocabulary! {
    /// One of Seam's own listeners (the `listener` label).
    Listener {
        /// `--listen`: metrics and health.
        Metrics = "metrics",
        /// `--otlp-receive-http`.
        OtlpHttp = "otlp_http",
        /// `--otlp-receive-grpc`.
        OtlpGrpc = "otlp_grpc",
    }
}
label_values!(Listener);

/// Labels of `seam_listener_unauthorized_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ListenerLabel {
    pub listener: Listener,
}

/// The listeners' family.
#[derive(Debug, Clone)]
pub(crate) struct ListenerMetrics {
    unauthorized: Family<ListenerLabel, Counter>,
}

impl ListenerMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let unauthorized = Family::<ListenerLabel, Counter>::default();
        registry.register(
            "listener_unauthorized",
            "Requests to Seam's own listeners refused for a missing or wrong bearer token, by \
             listener (metrics, otlp_http, otlp_grpc)",
            unauthorized.clone(),
        );
        Self { unauthorized }
    }

    /// The counter of requests `listener` refused for a bad token (created at zero).
    pub(crate) fn unauthorized(&self, listener: Listener) -> Counter {
        self.unauthorized
            .get_or_create_owned(&ListenerLabel { listener })
    }
}
