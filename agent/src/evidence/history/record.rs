//! The records of the sealed history, one encoding: a version byte ([`FORMAT_VERSION`]), then
//! an [`Envelope`] in postcard (a compact, non-self-describing serde format: varints, no field
//! names). Spans avoid serde features such formats cannot read back (`crate::model::spans`), so the
//! span written is the span read.
use serde::{Deserialize, Serialize};

use crate::{
    evidence::{
        keys::Scope,
        store::{Gap, GapReason},
    },
    model::{
        clock::UnixNanos,
        loss::Loss,
        spans::Span,
        vocab::{LossSource, RunPhase},
    },
};

/// The first byte of every record. A reader refuses other versions (with this error) rather
/// than misread them.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// The record has no bytes.
    #[error("empty history record; the store holds a record Seam never writes")]
    Empty,
    /// Written by another version of the format.
    #[error(
        "history record format version {found}, this Seam reads version {FORMAT_VERSION}; read it with the Seam version that wrote it"
    )]
    Version { found: u8 },
    /// The bytes do not decode (an authentic frame, so a writer bug or a format change).
    #[error("undecodable history record: {0}; report it with the Seam version that wrote it")]
    Decode(#[source] postcard::Error),
}

/// A record and how many scopes it was written to (a crossing is kept in the history of each
/// tenant involved; a reader of several scopes keeps one copy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub copies: u8,
    pub entry: Entry,
}

/// What the history holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Entry {
    /// A span that ended.
    Span(Box<Span>),
    /// Evidence the agent lost (ring buffer, evicted spans, export, the store's queue).
    Loss(LossEntry),
    /// Records the store could not write (disk full, write error, no key).
    Gap(GapEntry),
    /// A mark in the agent's life: start, alive, rules reloaded, stop.
    Run(RunEntry),
}

/// [`Entry`] by reference, for writing without a copy (same variants, same order: the same
/// bytes).
#[derive(Serialize)]
enum EntryRef<'a> {
    Span(&'a Span),
    Loss(&'a LossEntry),
    Gap(&'a GapEntry),
    Run(&'a RunEntry),
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    copies: u8,
    entry: EntryRef<'a>,
}

/// Which kind of entry a record holds, read without decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Span,
    Loss,
    Gap,
    Run,
}

/// A loss record as the feed had it (`probe` is the subject as the feed writes it: the
/// history's format predates the typed [`crate::model::loss::LossSubject`], and keeps reading
/// what older agents wrote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LossEntry {
    pub time: UnixNanos,
    pub node: String,
    pub source: LossSource,
    pub probe: String,
    pub lost: u64,
    pub lost_total: u64,
    pub message: String,
}

impl From<&Loss> for LossEntry {
    fn from(l: &Loss) -> Self {
        Self {
            time: l.time,
            node: l.node.clone(),
            source: l.source(),
            probe: l.subject.to_string(),
            lost: l.lost,
            lost_total: l.lost_total,
            message: l.message.clone(),
        }
    }
}

/// A store gap: records of one history (`tenant`, or the node's when None) that never reached
/// the disk, why, how many, and their times (Unix ns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GapEntry {
    pub tenant: Option<String>,
    pub reason: GapReason,
    pub records: u64,
    pub from_ns: u64,
    pub to_ns: u64,
    pub started_ns: u64,
    pub updated_ns: u64,
}

impl From<&Gap> for GapEntry {
    fn from(g: &Gap) -> Self {
        Self {
            tenant: match &g.scope {
                Scope::Node => None,
                Scope::Tenant(name) => Some(name.clone()),
            },
            reason: g.reason,
            records: g.records,
            from_ns: g.from_ns,
            to_ns: g.to_ns,
            started_ns: g.started_ns,
            updated_ns: g.updated_ns,
        }
    }
}

/// Totals of one agent run, in its stop record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunTotals {
    pub events: u64,
    pub spans_ended: u64,
    pub violations: u64,
    /// Kernel events lost (ring buffer full).
    pub events_lost: u64,
    /// History records the store could not keep (gaps and a full queue).
    pub records_lost: u64,
}

/// A mark in one agent run's life, kept in the node's history, so a report can show when the
/// agent ran (and so its downtime), with which hooks and which rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunEntry {
    pub phase: RunPhase,
    /// Random, one per agent start (hex).
    pub run_id: String,
    pub time: UnixNanos,
    pub node: String,
    /// Seam's version.
    pub version: String,
    pub live_hooks: Vec<String>,
    /// SHA-256 of the rules files in force (names and contents, as `seam fingerprint`).
    pub rules_sha256: Option<String>,
    /// Set in the stop record.
    pub totals: Option<RunTotals>,
}

/// Encodes a span record into `out` (cleared first).
pub(crate) fn encode_span(out: &mut Vec<u8>, copies: u8, span: &Span) {
    encode(out, copies, EntryRef::Span(span));
}

/// Encodes a loss record into `out`.
pub(crate) fn encode_loss(out: &mut Vec<u8>, loss: &LossEntry) {
    encode(out, 1, EntryRef::Loss(loss));
}

/// Encodes a store gap record into `out`.
pub(crate) fn encode_gap(out: &mut Vec<u8>, gap: &GapEntry) {
    encode(out, 1, EntryRef::Gap(gap));
}

/// Encodes a run record into `out`.
pub(crate) fn encode_run(out: &mut Vec<u8>, run: &RunEntry) {
    encode(out, 1, EntryRef::Run(run));
}

fn encode(out: &mut Vec<u8>, copies: u8, entry: EntryRef<'_>) {
    out.clear();
    out.push(FORMAT_VERSION);
    let envelope = EnvelopeRef { copies, entry };
    // Writing to a Vec cannot fail, and every type here serializes.
    let written = postcard::to_io(&envelope, &mut *out);
    debug_assert!(written.is_ok(), "history records always serialize");
}

/// Decodes a record.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope, RecordError> {
    match bytes.split_first() {
        None => Err(RecordError::Empty),
        Some((&FORMAT_VERSION, rest)) => postcard::from_bytes(rest).map_err(RecordError::Decode),
        Some((&found, _)) => Err(RecordError::Version { found }),
    }
}

/// The kind of entry a record holds, from its first bytes (version, copies, variant), without
/// decoding the rest; None when they are not a record of this version.
pub(crate) fn peek_kind(bytes: &[u8]) -> Option<EntryKind> {
    match bytes {
        [FORMAT_VERSION, _copies, variant, ..] => match variant {
            0 => Some(EntryKind::Span),
            1 => Some(EntryKind::Loss),
            2 => Some(EntryKind::Gap),
            3 => Some(EntryKind::Run),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        fixtures,
        vocab::{FileOp, Tier},
    };

    fn round_trip(copies: u8, entry: Entry) {
        let mut out = Vec::new();
        match &entry {
            Entry::Span(s) => encode_span(&mut out, copies, s),
            Entry::Loss(l) => encode_loss(&mut out, l),
            Entry::Gap(g) => encode_gap(&mut out, g),
            Entry::Run(r) => encode_run(&mut out, r),
        }
        let kind = match &entry {
            Entry::Span(_) => EntryKind::Span,
            Entry::Loss(_) => EntryKind::Loss,
            Entry::Gap(_) => EntryKind::Gap,
            Entry::Run(_) => EntryKind::Run,
        };
        assert_eq!(peek_kind(&out), Some(kind));
        let back = decode(&out).unwrap();
        assert_eq!(back, Envelope { copies, entry });
    }

    #[test]
    fn every_entry_round_trips() {
        let mut file = fixtures::file(
            Some(fixtures::tenant("a")),
            "/srv/b/pii",
            FileOp::Read,
            Some(fixtures::tenant("b")),
        );
        if let crate::model::spans::SpanBody::File(f) = &mut file.body {
            f.tier = Some(Tier::Regulated);
        }
        round_trip(2, Entry::Span(Box::new(file)));
        let tcp = fixtures::tcp(
            Some(fixtures::tenant("a")),
            Some(fixtures::tenant("b")),
            5432,
        );
        round_trip(2, Entry::Span(Box::new(tcp)));
        round_trip(
            1,
            Entry::Loss(LossEntry {
                time: UnixNanos(5),
                node: "n".into(),
                source: LossSource::RingBuffer,
                probe: "connect".into(),
                lost: 3,
                lost_total: 9,
                message: "lost".into(),
            }),
        );
        round_trip(
            1,
            Entry::Gap(GapEntry {
                tenant: Some("a".into()),
                reason: GapReason::DiskFull,
                records: 4,
                from_ns: 1,
                to_ns: 2,
                started_ns: 3,
                updated_ns: 4,
            }),
        );
        round_trip(
            1,
            Entry::Run(RunEntry {
                phase: RunPhase::Stop,
                run_id: "ab".into(),
                time: UnixNanos(7),
                node: "n".into(),
                version: "0.1.0".into(),
                live_hooks: vec!["cgroup/connect4".into()],
                rules_sha256: Some("00".into()),
                totals: Some(RunTotals {
                    spans_ended: 3,
                    ..RunTotals::default()
                }),
            }),
        );
    }

    #[test]
    fn other_versions_and_garbage_are_errors_not_panics() {
        assert!(matches!(decode(&[]), Err(RecordError::Empty)));
        assert!(matches!(
            decode(&[9, 1, 0]),
            Err(RecordError::Version { found: 9 })
        ));
        assert!(matches!(
            decode(&[FORMAT_VERSION, 1, 0, 0xff]),
            Err(RecordError::Decode(_))
        ));
        assert_eq!(peek_kind(&[FORMAT_VERSION, 1, 7]), None);
    }
}
