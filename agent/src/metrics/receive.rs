//! The OTLP receiver's families: spans received, and requests (or spans) refused, by why.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::labels::label_values;
use crate::model::vocab::vocabulary;

vocabulary! {
    /// What went wrong with a request (the `reason` label of `seam_otlp_receive_errors_total`).
    RequestError {
        /// Not a valid protobuf `ExportTraceServiceRequest`.
        Malformed = "malformed",
        /// Larger than `--otlp-receive-max-bytes`.
        TooLarge = "too_large",
        /// A content type or encoding Seam does not read.
        Unsupported = "unsupported",
        /// The pipeline's queue is full: the client should retry.
        Busy = "busy",
        /// Spans refused one by one (bad ids or times), answered as a partial success.
        RefusedSpans = "refused_spans",
    }
}
label_values!(RequestError);

/// Labels of `seam_otlp_receive_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub reason: RequestError,
}

/// The receiver's families.
#[derive(Debug, Clone)]
pub(crate) struct ReceiveMetrics {
    received: Counter,
    errors: Family<ReasonLabel, Counter>,
}

impl ReceiveMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let received = Counter::default();
        registry.register(
            "otlp_received_spans",
            "Application spans received over OTLP and handed to the join",
            received.clone(),
        );
        let errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "otlp_receive_errors",
            "OTLP requests (or spans) the receiver refused, by reason (malformed, too_large, \
             unsupported, busy, refused_spans)",
            errors.clone(),
        );
        Self { received, errors }
    }

    /// The counter of spans received.
    pub(crate) fn received(&self) -> Counter {
        self.received.clone()
    }

    /// The error counter for `reason` (created at zero).
    pub(crate) fn error(&self, reason: RequestError) -> Counter {
        self.errors.get_or_create_owned(&ReasonLabel { reason })
    }
}
