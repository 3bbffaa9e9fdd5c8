//! Reading the sealed history back and re-evaluating it with the real detector.
//!
//! Two passes: the node's run records first (which node wrote when: violations name it), then
//! every record of the query, segment by segment on every thread ([`store::read_segment`]).
//! Segments are taken in batches of consecutive time windows, so memory is bounded by a batch,
//! not by the history:
//!
//! - **Copies.** A crossing is kept in both tenants' histories; a reader of both keeps the
//!   first copy it meets. Copies are sealed within about a second of each other, so they are
//!   in the same or neighbouring windows: a set of the ids of multi-copy spans is kept for the
//!   current batch and the window before it only.
//! - **Counting rules** (`trace.count`) need spans in time order: the spans they match are
//!   sorted by start within each batch and counted by one detector across batches. A span
//!   longer than a window is counted in the batch it ended in.
use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::record::{self, Entry, EntryKind, GapEntry, LossEntry, RunEntry};
use crate::{
    detect::{Detector, Violation},
    evidence::{
        keys::{Keyring, Scope},
        store,
        store::{Query, ReadReport, SegmentFile, StoreError},
    },
    model::spans::{Span, SpanId, TraceId},
    policy::RuleSet,
};

/// Undecodable records kept as examples (the rest are counted).
const DECODE_SAMPLES: usize = 10;

/// What to replay.
pub(crate) struct ReplaySpec<'a> {
    pub store: &'a Path,
    pub keyring: &'a Keyring,
    pub rules: &'a RuleSet,
    /// Only these tenants' histories (and the node's losses and marks); None: every scope.
    pub tenants: Option<BTreeSet<Scope>>,
    /// Records with `from_ns <= time < until_ns` (a span's time is its start).
    pub from_ns: u64,
    pub until_ns: u64,
    pub threads: usize,
}

/// Receives what a replay finds. One per thread; merged at the end.
pub(crate) trait Visit: Send + Sized {
    /// A span read from `scope`'s history; `first` for the first copy met (a crossing has
    /// one copy per tenant history read).
    fn span(&mut self, scope: &Scope, span: &Span, first: bool);
    /// A violation the rules find in `span` (first copies only).
    fn violation(&mut self, violation: Violation, span: &Span);
    fn loss(&mut self, loss: &LossEntry);
    fn gap(&mut self, gap: &GapEntry);
    fn merge(&mut self, other: Self);
}

/// What a replay read, besides what the visitor gathered.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Every run record, oldest first (whatever the time range).
    pub runs: Vec<RunEntry>,
    pub read: ReadReport,
    /// Records that could not be decoded, and a few of the errors.
    pub undecodable: u64,
    pub undecodable_samples: Vec<String>,
}

/// The node that wrote at `time_ns`: the latest run started by then (else the first run).
fn node_at(runs: &[RunEntry], time_ns: i64) -> String {
    runs.iter()
        .take_while(|r| r.time.0 <= time_ns)
        .last()
        .or(runs.first())
        .map_or_else(|| "unknown".to_owned(), |r| r.node.clone())
}

struct Decoding {
    undecodable: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Decoding {
    fn error(&self, scope: &Scope, error: &record::RecordError) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().expect("samples lock");
        if samples.len() < DECODE_SAMPLES {
            samples.push(format!("{scope}: {error}"));
        }
    }
}

/// Hashes span ids, which are random already: their first bytes are the hash.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

type IdSet = HashSet<(TraceId, SpanId), std::hash::BuildHasherDefault<IdHasher>>;

/// Ids of multi-copy spans met, by segment window.
#[derive(Default)]
struct Copies(BTreeMap<u64, IdSet>);

impl Copies {
    /// Whether this is the first copy met (and now remembered).
    fn first(&mut self, window: u64, id: (TraceId, SpanId)) -> bool {
        if self.0.values().any(|set| set.contains(&id)) {
            return false;
        }
        self.0.entry(window).or_default().insert(id)
    }

    /// Forgets every window before `keep`.
    fn keep_from(&mut self, keep: u64) {
        self.0 = self.0.split_off(&keep);
    }
}

/// Pass one: every run record of the node's history, oldest first.
fn runs(spec: &ReplaySpec<'_>) -> Result<Vec<RunEntry>, StoreError> {
    let runs = Mutex::new(Vec::new());
    store::replay(
        spec.store,
        spec.keyring,
        &Query::scopes([Scope::Node]),
        spec.threads,
        &|r| {
            if record::peek_kind(r.data) == Some(EntryKind::Run)
                && let Ok(record::Envelope {
                    entry: Entry::Run(run),
                    ..
                }) = record::decode(r.data)
            {
                runs.lock().expect("runs lock").push(run);
            }
        },
    )?;
    let mut runs = runs.into_inner().expect("runs lock");
    runs.sort_by(|a, b| (a.time, &a.run_id).cmp(&(b.time, &b.run_id)));
    Ok(runs)
}

/// Per-thread state.
struct Worker<'a, V> {
    visitor: V,
    detector: Detector,
    rules: &'a RuleSet,
    counting: &'a RuleSet,
    /// Spans counting rules match, for this batch.
    candidates: Vec<Span>,
    report: ReadReport,
}

/// Replays the history `spec` names: every span evaluated with the rules (once per span,
/// whatever its copies), handed to a visitor made by `visitor` from the run records (one per
/// thread), merged.
pub(crate) fn replay<V: Visit>(
    spec: &ReplaySpec<'_>,
    visitor: impl Fn(&[RunEntry]) -> V,
) -> Result<(V, Replayed), StoreError> {
    let runs = runs(spec)?;
    let mut query = match &spec.tenants {
        Some(tenants) => Query::scopes(tenants.iter().cloned().chain([Scope::Node])),
        None => Query::all(),
    };
    query = query.between(spec.from_ns, spec.until_ns);
    let mut stateless = spec.rules.clone();
    stateless.rules.retain(|r| r.count.is_none());
    let mut counting = spec.rules.clone();
    counting.rules.retain(|r| r.count.is_some());
    let mut count_detector = Detector::new(String::new());

    let mut files = store::segments(spec.store, &query)?;
    files.sort_by_key(|f| (f.window_start_ns().unwrap_or(0), f.path.clone()));
    let threads = spec.threads.max(1);
    let mut workers: Vec<Worker<'_, V>> = (0..threads)
        .map(|_| Worker {
            visitor: visitor(&runs),
            detector: Detector::new(String::new()),
            rules: &stateless,
            counting: &counting,
            candidates: Vec::new(),
            report: ReadReport::default(),
        })
        .collect();
    let decoding = Decoding {
        undecodable: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
    };
    let copies = Mutex::new(Copies::default());
    let filtered = spec.tenants.is_some();
    for batch in batches(&files, threads * 4) {
        let next = AtomicU64::new(0);
        std::thread::scope(|s| {
            for worker in &mut workers {
                let (next, copies, decoding, query, runs) =
                    (&next, &copies, &decoding, &query, &runs);
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(file) = batch.get(i) else { break };
                        let window = file.window_start_ns().unwrap_or(0);
                        let report = store::read_segment(file, spec.keyring, query, &mut |r| {
                            let envelope = match record::decode(r.data) {
                                Ok(envelope) => envelope,
                                Err(error) => return decoding.error(r.scope, &error),
                            };
                            match envelope.entry {
                                Entry::Span(span) => {
                                    if filtered && *r.scope == Scope::Node {
                                        return;
                                    }
                                    let first = envelope.copies <= 1
                                        || copies
                                            .lock()
                                            .expect("copies lock")
                                            .first(window, (span.trace_id, span.span_id));
                                    worker.span(r.scope, &span, first, runs);
                                }
                                Entry::Loss(loss) => worker.visitor.loss(&loss),
                                Entry::Gap(gap) => worker.visitor.gap(&gap),
                                Entry::Run(_) => {}
                            }
                        });
                        worker.report.merge(report);
                    }
                });
            }
        });
        // Counting rules: this batch's candidates in time order, through one detector.
        let mut candidates: Vec<Span> = workers
            .iter_mut()
            .flat_map(|w| std::mem::take(&mut w.candidates))
            .collect();
        candidates.sort_by(|a, b| {
            (a.start, a.trace_id, a.span_id).cmp(&(b.start, b.trace_id, b.span_id))
        });
        for span in &candidates {
            for mut v in count_detector.evaluate(span, &counting) {
                v.node = node_at(&runs, span.start.0);
                workers[0].visitor.violation(v, span);
            }
        }
        let last = batch
            .last()
            .and_then(SegmentFile::window_start_ns)
            .unwrap_or(0);
        copies.lock().expect("copies lock").keep_from(last);
    }
    let mut merged = workers.into_iter();
    let first = merged.next().expect("at least one worker");
    let (mut visitor, mut read) = (first.visitor, first.report);
    for worker in merged {
        visitor.merge(worker.visitor);
        read.merge(worker.report);
    }
    let samples = decoding.samples.into_inner().expect("samples lock");
    Ok((
        visitor,
        Replayed {
            runs,
            read,
            undecodable: decoding.undecodable.into_inner(),
            undecodable_samples: samples,
        },
    ))
}

impl<V: Visit> Worker<'_, V> {
    fn span(&mut self, scope: &Scope, span: &Span, first: bool, runs: &[RunEntry]) {
        self.visitor.span(scope, span, first);
        if !first {
            return;
        }
        for mut v in self.detector.evaluate(span, self.rules) {
            v.node = node_at(runs, span.start.0);
            self.visitor.violation(v, span);
        }
        if self.counting.rules.iter().any(|r| r.matcher.matches(span)) {
            self.candidates.push(span.clone());
        }
    }
}

/// Consecutive windows' segments, cut once a batch has `target` segments (never inside a
/// window).
fn batches(files: &[SegmentFile], target: usize) -> Vec<&[SegmentFile]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=files.len() {
        let window_ends =
            i == files.len() || files[i].window_start_ns() != files[i - 1].window_start_ns();
        if window_ends && (i - start >= target || i == files.len()) {
            out.push(&files[start..i]);
            start = i;
        }
    }
    out
}
