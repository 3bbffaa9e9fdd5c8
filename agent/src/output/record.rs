//! The records sinks receive, typed: violations, spans and losses. Sinks serialize them
//! (JSON lines, webhooks) or map them (OTLP) from their fields; nothing downstream digs in
//! a `serde_json::Value`.
use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::{
    detect::Violation,
    kernel::fingerprint::Fingerprint,
    model::{clock::UnixNanos, spans::Span, vocab::LossSource},
};

/// Evidence Seam could not keep: what, how much, when. Never silent.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Loss {
    /// Always `"loss"` (tells loss records from violations in the feed).
    pub kind: LossTag,
    pub time: UnixNanos,
    pub node: String,
    pub source: LossSource,
    /// The probe family (ring buffer losses), sink or other part that lost records.
    pub probe: String,
    /// Lost since the previous loss record of this source and probe.
    pub lost: u64,
    /// Lost since the agent started.
    pub lost_total: u64,
    pub message: String,
}

/// The constant `kind` of a [`Loss`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LossTag;

impl Serialize for LossTag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("loss")
    }
}

/// The first record of a run: when it started and what this node's kernel lets it see (the
/// `seam fingerprint` report for the probe rows this run loaded), so a feed says which
/// guarantees held while it was written and `seam fleet-check` can read it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Start {
    pub time: UnixNanos,
    pub fingerprint: Fingerprint,
}

/// One feed record.
#[derive(Clone, Debug)]
pub(crate) enum Record {
    /// The run's first record.
    Start(Box<Start>),
    Violation(Box<Violation>),
    /// An ended span (only when the feed carries spans: `--feed-spans`).
    Span(Box<Span>),
    Loss(Loss),
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::Violation(v) => v.serialize(serializer),
            Record::Loss(l) => l.serialize(serializer),
            Record::Start(s) => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("kind", "start")?;
                map.serialize_entry("time", &s.time)?;
                map.serialize_entry("fingerprint", &s.fingerprint)?;
                map.end()
            }
            Record::Span(s) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("kind", "span")?;
                map.serialize_entry("span", s)?;
                map.end()
            }
        }
    }
}
