//! Evidence Seam could not keep, as one typed record: the kernel's ring, a tenant's budget, a
//! sink, the exporter, the store. Every part that loses something reports it this way.
use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeStruct};

use crate::model::{
    clock::UnixNanos,
    spans::TenantName,
    vocab::{DropReason, LossSource, PodSource, ProbeFamily, Signal, StoreLoss},
};

/// A feed sink: the `sink` label of the feed metrics, and the first half of a `feed` loss
/// record's `probe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SinkId {
    /// JSON lines on stdout.
    Stdout,
    /// The feed file (`--feed-file`).
    File,
    /// The n-th `--webhook` (from 0).
    Webhook(usize),
}

impl fmt::Display for SinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::File => f.write_str("file"),
            Self::Webhook(n) => write!(f, "webhook-{n}"),
        }
    }
}

/// What lost evidence: one variant per [`LossSource`] that reports losses, each with what
/// names the loser. Written as a loss record's `probe` (and the `probe` label of
/// `seam_lost_total`) by [`fmt::Display`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum LossSubject {
    /// The ring buffer was full for this probe family's events (`ring_buffer`).
    Probe(ProbeFamily),
    /// This tenant went over its kernel event budget (`tenant_flood`).
    Tenant(TenantName),
    /// Open connection spans were ended early (`span_evicted`): `connection`.
    Connections,
    /// The OTLP exporter dropped records of this signal (`otlp`).
    Signal(Signal),
    /// A feed sink dropped records for a reason (`feed`): `<sink>/<reason>`.
    Sink { sink: SinkId, reason: DropReason },
    /// The sealed history lost records for a reason (`store`).
    Store(StoreLoss),
    /// Container cgroups stayed unattributed; this source did not name their pods
    /// (`pod_identity`).
    Runtime(PodSource),
}

impl LossSubject {
    /// Where the evidence was lost.
    pub(crate) fn source(&self) -> LossSource {
        match self {
            Self::Probe(_) => LossSource::RingBuffer,
            Self::Tenant(_) => LossSource::TenantFlood,
            Self::Connections => LossSource::SpanEvicted,
            Self::Signal(_) => LossSource::Otlp,
            Self::Sink { .. } => LossSource::Feed,
            Self::Store(_) => LossSource::Store,
            Self::Runtime(_) => LossSource::PodIdentity,
        }
    }
}

impl fmt::Display for LossSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Probe(family) => family.fmt(f),
            Self::Tenant(tenant) => tenant.fmt(f),
            Self::Connections => f.write_str("connection"),
            Self::Signal(signal) => signal.fmt(f),
            Self::Sink { sink, reason } => write!(f, "{sink}/{reason}"),
            Self::Store(reason) => reason.fmt(f),
            Self::Runtime(source) => source.fmt(f),
        }
    }
}

impl Serialize for LossSubject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Evidence Seam could not keep: what, how much, when. Never silent.
///
/// In the feed: `{"kind":"loss","time","node","source","probe","lost","lost_total","message"}`,
/// `source` and `probe` both from [`Loss::subject`] (so they cannot disagree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loss {
    pub time: UnixNanos,
    pub node: String,
    /// What lost records (the feed's `source` and `probe`).
    pub subject: LossSubject,
    /// Lost since the previous loss record of this subject.
    pub lost: u64,
    /// Lost since the agent started.
    pub lost_total: u64,
    pub message: String,
}

impl Loss {
    /// Where the evidence was lost.
    pub(crate) fn source(&self) -> LossSource {
        self.subject.source()
    }
}

impl Serialize for Loss {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut record = serializer.serialize_struct("Loss", 8)?;
        // Tells loss records from violations in the feed.
        record.serialize_field("kind", "loss")?;
        record.serialize_field("time", &self.time)?;
        record.serialize_field("node", &self.node)?;
        record.serialize_field("source", &self.source())?;
        record.serialize_field("probe", &self.subject)?;
        record.serialize_field("lost", &self.lost)?;
        record.serialize_field("lost_total", &self.lost_total)?;
        record.serialize_field("message", &self.message)?;
        record.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_record_reads_as_it_did_when_probe_was_a_string() {
        let loss = |subject| Loss {
            time: UnixNanos(1_000_000_000),
            node: "n".into(),
            subject,
            lost: 2,
            lost_total: 5,
            message: "m".into(),
        };
        let sink = LossSubject::Sink {
            sink: SinkId::Webhook(3),
            reason: DropReason::RetriesExhausted,
        };
        let time = UnixNanos(1_000_000_000).rfc3339();
        assert_eq!(
            serde_json::to_string(&loss(sink)).unwrap(),
            format!(
                "{{\"kind\":\"loss\",\"time\":\"{time}\",\"node\":\"n\",\"source\":\"feed\",\
                 \"probe\":\"webhook-3/retries_exhausted\",\"lost\":2,\"lost_total\":5,\
                 \"message\":\"m\"}}"
            )
        );
        for (subject, source, probe) in [
            (
                LossSubject::Probe(ProbeFamily::SockAddr),
                "ring_buffer",
                "sock_addr",
            ),
            (
                LossSubject::Tenant(TenantName::new("(other tenants)")),
                "tenant_flood",
                "(other tenants)",
            ),
            (LossSubject::Connections, "span_evicted", "connection"),
            (LossSubject::Signal(Signal::Logs), "otlp", "logs"),
            (
                LossSubject::Sink {
                    sink: SinkId::Stdout,
                    reason: DropReason::WriteError,
                },
                "feed",
                "stdout/write_error",
            ),
            (LossSubject::Store(StoreLoss::NoKey), "store", "no_key"),
            (
                LossSubject::Runtime(PodSource::KubernetesApi),
                "pod_identity",
                "kubernetes-api",
            ),
        ] {
            let json = serde_json::to_value(loss(subject)).unwrap();
            assert_eq!(
                (json["source"].as_str(), json["probe"].as_str()),
                (Some(source), Some(probe))
            );
        }
    }
}
