//! The records sinks receive, typed: violations, spans and losses. Sinks serialize them
//! (JSON lines, webhooks) or map them (OTLP) from their fields; nothing downstream digs in
//! a `serde_json::Value`.
use serde::{Serialize, Serializer, ser::SerializeMap};

pub(crate) use crate::model::loss::Loss;
use crate::{
    detect::Violation,
    kernel::fingerprint::Fingerprint,
    model::{clock::UnixNanos, spans::Span},
};

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
