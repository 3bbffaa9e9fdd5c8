//! Label values are typed: a closed vocabulary is an enum (from [`crate::model::vocab`], or
//! one a part's metrics define with the same macro), written as the feed writes it.
use crate::model::{
    loss::{LossSubject, SinkId},
    vocab::{
        AccessClass, DropReason, EventKind, JoinOutcome, LossSource, ProbeFamily, ProbeState,
        Severity, Signal,
    },
};

/// Label values written as they display (escaped like any label value).
macro_rules! label_values {
    ($($ty:ty),* $(,)?) => {$(
        impl ::prometheus_client::encoding::EncodeLabelValue for $ty {
            fn encode(
                &self,
                encoder: &mut ::prometheus_client::encoding::LabelValueEncoder,
            ) -> ::std::fmt::Result {
                ::std::fmt::Write::write_fmt(encoder, format_args!("{self}"))
            }
        }
    )*};
}
pub(crate) use label_values;

label_values!(
    AccessClass,
    DropReason,
    EventKind,
    JoinOutcome,
    LossSource,
    LossSubject,
    ProbeFamily,
    ProbeState,
    Severity,
    Signal,
    SinkId,
);

#[cfg(test)]
mod tests {
    use prometheus_client::{
        encoding::EncodeLabelSet,
        metrics::{counter::Counter, family::Family},
        registry::Registry,
    };

    use super::*;
    use crate::model::spans::TenantName;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        source: LossSource,
        probe: LossSubject,
    }

    #[test]
    fn typed_values_are_written_as_the_feed_writes_them_and_escaped() {
        let mut registry = Registry::default();
        let family = Family::<Labels, Counter>::default();
        registry.register("x", "x", family.clone());
        let subject = LossSubject::Tenant(TenantName::new("a \"b\""));
        family
            .get_or_create(&Labels {
                source: subject.source(),
                probe: subject,
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("x_total{source=\"tenant_flood\",probe=\"a \\\"b\\\"\"} 1"),
            "{text}"
        );
    }
}
