//! The records sinks receive, typed: violations, spans and losses. Sinks serialize them
//! (JSON lines, webhooks) or map them (OTLP) from their fields; nothing downstream digs in
//! a `serde_json::Value`.
use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::{clock::UnixNanos, detect::Violation, spans::Span, vocab::LossSource};

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

/// One feed record.
#[derive(Clone, Debug)]
pub(crate) enum Record {
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
            Record::Span(s) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("kind", "span")?;
                map.serialize_entry("span", s)?;
                map.end()
            }
        }
    }
}
