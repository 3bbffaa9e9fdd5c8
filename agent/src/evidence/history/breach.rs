//! The breach scope `seam replay` prints (and `seam validate` judges): violations found in the
//! history, the tenant pairs they cross, their times, counts per rule, pair and tier, the
//! exact trace ids, and every gap in the evidence. Memory is bounded: beyond
//! [`Limits::violations`] the output holds a count and the earliest violations as a sample,
//! beyond [`Limits::trace_ids`] the trace ids stop (said in the output); `--violations-file`
//! streams every violation.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    sync::{Arc, Mutex},
};

use serde::Serialize;

use super::{
    record::{GapEntry, LossEntry},
    replay::{Replayed, Visit},
};
use crate::{
    detect::Violation,
    evidence::{keys::Scope, store::ReadIssue},
    model::{
        clock::UnixNanos,
        spans::{Span, TraceId},
    },
};

/// How much of a huge breach is kept in memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Violations listed in full; past it, the earliest ones as a sample.
    pub violations: usize,
    /// Distinct trace ids listed; past it, they stop (and the output says so).
    pub trace_ids: usize,
    /// Loss and gap records listed; past it, counted.
    pub gaps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            violations: 1000,
            trace_ids: 100_000,
            gaps: 10_000,
        }
    }
}

/// How each violation is also written as it is found.
pub(crate) enum Stream {
    /// One JSON object per line (`--violations-file`).
    JsonLines(Box<dyn Write + Send>),
    /// One readable line each (`seam validate`).
    Text(Box<dyn Write + Send>),
}

/// Counts of one rule or pair.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Tally {
    pub count: u64,
    pub first: Option<UnixNanos>,
    pub last: Option<UnixNanos>,
}

impl Tally {
    fn add(&mut self, time: UnixNanos) {
        self.count += 1;
        self.first = Some(self.first.map_or(time, |f| f.min(time)));
        self.last = Some(self.last.map_or(time, |l| l.max(time)));
    }

    fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// A tenant pair: the tenant an access should have stayed in, the one it reached.
pub(crate) type Pair = (String, String);

pub(crate) fn tenant_label(t: Option<&crate::model::spans::TenantName>) -> String {
    t.map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

pub(crate) fn tier_label(t: Option<crate::model::vocab::Tier>) -> &'static str {
    t.map_or("unclassified", |t| t.as_str())
}

/// Gathers a breach scope (one per replay thread, merged).
pub(crate) struct Breach {
    limits: Limits,
    stream: Option<Arc<Mutex<Stream>>>,
    /// Distinct spans evaluated (operations validated).
    pub operations: u64,
    pub violations: Tally,
    pub by_rule: BTreeMap<String, Tally>,
    pub by_pair: BTreeMap<Pair, BTreeMap<String, Tally>>,
    pub by_tier: BTreeMap<&'static str, u64>,
    /// The earliest violations (all of them while within the limit).
    pub sample: Vec<Violation>,
    pub trace_ids: BTreeSet<TraceId>,
    pub trace_ids_complete: bool,
    pub losses: Vec<LossEntry>,
    pub gaps: Vec<GapEntry>,
    pub gaps_omitted: u64,
}

impl Breach {
    pub(crate) fn new(limits: Limits, stream: Option<Arc<Mutex<Stream>>>) -> Self {
        Self {
            limits,
            stream,
            operations: 0,
            violations: Tally::default(),
            by_rule: BTreeMap::new(),
            by_pair: BTreeMap::new(),
            by_tier: BTreeMap::new(),
            sample: Vec::new(),
            trace_ids: BTreeSet::new(),
            trace_ids_complete: true,
            losses: Vec::new(),
            gaps: Vec::new(),
            gaps_omitted: 0,
        }
    }

    fn keep_sample(&mut self) {
        if self.sample.len() > 2 * self.limits.violations.max(1) {
            self.trim_sample();
        }
    }

    fn trim_sample(&mut self) {
        self.sample.sort_by_key(|v| (v.time, v.trace_id, v.span_id));
        self.sample.truncate(self.limits.violations);
    }

    fn add_trace(&mut self, id: TraceId) {
        if !self.trace_ids_complete {
            return;
        }
        self.trace_ids.insert(id);
        if self.trace_ids.len() > self.limits.trace_ids {
            self.trace_ids_complete = false;
            let last = *self.trace_ids.iter().next_back().expect("not empty");
            self.trace_ids.remove(&last);
        }
    }
}

fn write_stream(stream: &Mutex<Stream>, v: &Violation) {
    let mut stream = stream.lock().expect("stream lock");
    let written = match &mut *stream {
        Stream::JsonLines(out) => serde_json::to_string(v)
            .map_err(std::io::Error::other)
            .and_then(|line| writeln!(out, "{line}")),
        Stream::Text(out) => writeln!(
            out,
            "{} {} {} {} -> {} [{}] trace {}: {}",
            v.time,
            v.severity,
            v.rule_id,
            tenant_label(v.intended_tenant.as_ref()),
            tenant_label(v.actual_tenant.as_ref()),
            tier_label(v.tier),
            v.trace_id,
            v.message
        ),
    };
    if let Err(error) = written {
        tracing::warn!(%error, "cannot write a violation");
    }
}

impl Visit for Breach {
    fn span(&mut self, _scope: &Scope, _span: &Span, first: bool) {
        if first {
            self.operations += 1;
        }
    }

    fn violation(&mut self, v: Violation, _span: &Span) {
        if let Some(stream) = &self.stream {
            write_stream(stream, &v);
        }
        self.violations.add(v.time);
        self.by_rule
            .entry(v.rule_id.clone())
            .or_default()
            .add(v.time);
        let pair = (
            tenant_label(v.intended_tenant.as_ref()),
            tenant_label(v.actual_tenant.as_ref()),
        );
        self.by_pair
            .entry(pair)
            .or_default()
            .entry(v.rule_id.clone())
            .or_default()
            .add(v.time);
        *self.by_tier.entry(tier_label(v.tier)).or_default() += 1;
        self.add_trace(v.trace_id);
        self.sample.push(v);
        self.keep_sample();
    }

    fn loss(&mut self, loss: &LossEntry) {
        if self.losses.len() + self.gaps.len() < self.limits.gaps {
            self.losses.push(loss.clone());
        } else {
            self.gaps_omitted += 1;
        }
    }

    fn gap(&mut self, gap: &GapEntry) {
        if self.losses.len() + self.gaps.len() < self.limits.gaps {
            self.gaps.push(gap.clone());
        } else {
            self.gaps_omitted += 1;
        }
    }

    fn merge(&mut self, other: Self) {
        self.operations += other.operations;
        self.violations.merge(&other.violations);
        for (rule, tally) in other.by_rule {
            self.by_rule.entry(rule).or_default().merge(&tally);
        }
        for (pair, rules) in other.by_pair {
            let mine = self.by_pair.entry(pair).or_default();
            for (rule, tally) in rules {
                mine.entry(rule).or_default().merge(&tally);
            }
        }
        for (tier, n) in other.by_tier {
            *self.by_tier.entry(tier).or_default() += n;
        }
        self.sample.extend(other.sample);
        self.trim_sample();
        self.trace_ids_complete &= other.trace_ids_complete;
        for id in other.trace_ids {
            self.add_trace(id);
        }
        self.losses.extend(other.losses);
        self.gaps.extend(other.gaps);
        self.gaps_omitted += other.gaps_omitted;
        let limit = self.limits.gaps;
        if self.losses.len() + self.gaps.len() > limit {
            let over = self.losses.len() + self.gaps.len() - limit;
            self.gaps_omitted += over as u64;
            self.losses.truncate(self.losses.len().saturating_sub(over));
        }
        self.losses.sort_by_key(|l| l.time);
        self.gaps.sort_by_key(|g| g.from_ns);
    }
}

/// One tenant pair's violations in the output.
#[derive(Debug, Serialize)]
pub(crate) struct PairScope {
    pub from: String,
    pub to: String,
    pub count: u64,
    pub first: Option<UnixNanos>,
    pub last: Option<UnixNanos>,
    pub by_rule: BTreeMap<String, u64>,
}

/// What `seam replay` prints.
#[derive(Debug, Serialize)]
pub(crate) struct BreachScope {
    pub operations: u64,
    pub violations_total: u64,
    pub first: Option<UnixNanos>,
    pub last: Option<UnixNanos>,
    /// Every violation, or (`violations_complete: false`) the earliest `violations_limit`.
    pub violations: Vec<Violation>,
    pub violations_complete: bool,
    pub violations_limit: usize,
    pub tenant_pairs: Vec<PairScope>,
    pub by_rule: BTreeMap<String, Tally>,
    pub by_tier: BTreeMap<&'static str, u64>,
    pub trace_ids: Vec<TraceId>,
    pub trace_ids_complete: bool,
    /// Evidence the agent lost while writing this history (loss records).
    pub losses: Vec<LossEntry>,
    /// Records the store could not write (disk full, write error, no key).
    pub store_gaps: Vec<GapEntry>,
    /// Loss and gap records beyond the listing limit.
    pub gaps_omitted: u64,
    /// Problems reading the history (damage, tampering, missing keys), with file and offset.
    pub read_issues: Vec<ReadIssue>,
    pub undecodable_records: u64,
    pub undecodable_samples: Vec<String>,
    pub read: ReadTotals,
}

/// How much was read.
#[derive(Debug, Serialize)]
pub(crate) struct ReadTotals {
    pub segments: u64,
    pub frames: u64,
    pub frames_skipped: u64,
    pub records: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    /// Distinct spans re-evaluated per second.
    pub spans_per_s: f64,
    /// CPU time the process used (user and system, every thread): on a shared machine, spans
    /// per CPU-second times the cores is what the cores alone would do.
    pub cpu_s: f64,
}

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

impl BreachScope {
    pub(crate) fn new(mut breach: Breach, replayed: Replayed, elapsed_s: f64) -> Self {
        breach.trim_sample();
        let read = &replayed.read;
        Self {
            operations: breach.operations,
            violations_total: breach.violations.count,
            first: breach.violations.first,
            last: breach.violations.last,
            violations_complete: breach.violations.count <= breach.limits.violations as u64,
            violations_limit: breach.limits.violations,
            violations: breach.sample,
            tenant_pairs: breach
                .by_pair
                .into_iter()
                .map(|((from, to), rules)| {
                    let mut all = Tally::default();
                    rules.values().for_each(|t| all.merge(t));
                    PairScope {
                        from,
                        to,
                        count: all.count,
                        first: all.first,
                        last: all.last,
                        by_rule: rules.into_iter().map(|(r, t)| (r, t.count)).collect(),
                    }
                })
                .collect(),
            by_rule: breach.by_rule,
            by_tier: breach.by_tier,
            trace_ids: breach.trace_ids.into_iter().collect(),
            trace_ids_complete: breach.trace_ids_complete,
            losses: breach.losses,
            store_gaps: breach.gaps,
            gaps_omitted: breach.gaps_omitted,
            read_issues: read.issues.clone(),
            undecodable_records: replayed.undecodable,
            undecodable_samples: replayed.undecodable_samples,
            read: ReadTotals {
                segments: read.segments,
                frames: read.frames,
                frames_skipped: read.frames_skipped,
                records: read.records,
                elapsed_s,
                records_per_s: read.records as f64 / elapsed_s.max(1e-9),
                spans_per_s: breach.operations as f64 / elapsed_s.max(1e-9),
                cpu_s: cpu_seconds(),
            },
        }
    }
}
