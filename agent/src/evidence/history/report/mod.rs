//! `seam report`: what the history proves for a period. Operations validated per tenant and
//! tier, violations (re-evaluated with the rules given), key epochs used, hooks live per run,
//! and every gap in the evidence: lost events, store gaps, read issues and agent downtime
//! between runs. Rendered as JSON (this model), Markdown ([`markdown`]) and a self-contained
//! HTML page with inline SVG charts ([`html`]).
pub(crate) mod html;
pub(crate) mod markdown;
mod runs;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub(crate) use runs::{Downtime, RunSummary};
use serde::Serialize;

use super::{
    breach::{Breach, BreachScope, Limits, tenant_label, tier_label},
    record::{GapEntry, LossEntry, RunEntry},
    replay::{Replayed, Visit},
};
use crate::{
    detect::Violation,
    evidence::keys::{Scope, keyring::ScopeInfo},
    model::{
        clock::UnixNanos,
        spans::{Span, SpanBody},
    },
};

/// Buckets of the charts' time axis.
const BUCKETS: usize = 48;
/// Tenant pairs charted one by one; the others are summed as "other".
const CHART_PAIRS: usize = 8;

/// The period a report covers (Unix ns, `until` exclusive).
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Period {
    pub from: UnixNanos,
    pub until: UnixNanos,
}

/// Counts per time bucket of one tenant pair.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Series {
    pub operations: Vec<u64>,
    pub violations: Vec<u64>,
}

/// Operations and violations over time per tenant pair (`from -> to`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Timeline {
    pub start: UnixNanos,
    pub bucket_s: f64,
    pub pairs: BTreeMap<String, Series>,
}

impl Timeline {
    fn new(period: Period) -> Self {
        let span_ns = (period.until.0 - period.from.0).max(1_000_000_000);
        Self {
            start: period.from,
            bucket_s: span_ns as f64 / 1e9 / BUCKETS as f64,
            pairs: BTreeMap::new(),
        }
    }

    fn bucket(&self, time: UnixNanos) -> usize {
        let offset = (time.0 - self.start.0).max(0) as f64 / 1e9;
        ((offset / self.bucket_s) as usize).min(BUCKETS - 1)
    }

    fn series(&mut self, pair: String) -> &mut Series {
        self.pairs.entry(pair).or_insert_with(|| Series {
            operations: vec![0; BUCKETS],
            violations: vec![0; BUCKETS],
        })
    }

    fn merge(&mut self, other: Self) {
        for (pair, theirs) in other.pairs {
            let mine = self.series(pair);
            for (m, t) in mine.operations.iter_mut().zip(theirs.operations) {
                *m += t;
            }
            for (m, t) in mine.violations.iter_mut().zip(theirs.violations) {
                *m += t;
            }
        }
    }

    /// The busiest pairs one by one, the rest summed as `other`.
    fn top(mut self) -> Self {
        if self.pairs.len() <= CHART_PAIRS {
            return self;
        }
        let mut ranked: Vec<(String, Series)> =
            std::mem::take(&mut self.pairs).into_iter().collect();
        ranked.sort_by_key(|(_, s)| {
            std::cmp::Reverse(
                s.violations.iter().sum::<u64>() * 1_000_000 + s.operations.iter().sum::<u64>(),
            )
        });
        let rest = ranked.split_off(CHART_PAIRS - 1);
        self.pairs = ranked.into_iter().collect();
        let other = self.series("other".to_owned());
        for (_, s) in rest {
            for (m, t) in other.operations.iter_mut().zip(s.operations) {
                *m += t;
            }
            for (m, t) in other.violations.iter_mut().zip(s.violations) {
                *m += t;
            }
        }
        self
    }
}

/// The tenant pair of a span: who acted, whose resource it touched (`-` for none).
fn pair(span: &Span) -> String {
    let name = |t: Option<&crate::model::spans::TenantRef>| tenant_label(t.map(|t| &t.name));
    let (from, to) = match &span.body {
        SpanBody::Connection(c) => (
            name(c.client.tenant.as_ref()),
            name(c.server.tenant.as_ref()),
        ),
        SpanBody::File(f) => (name(f.process.tenant.as_ref()), name(f.owner.as_ref())),
        SpanBody::Process(p) => (name(p.process.tenant.as_ref()), "-".to_owned()),
        SpanBody::App(a) => (
            name(a.process.as_ref().and_then(|p| p.tenant.as_ref())),
            name(a.peer.as_ref().and_then(|p| p.tenant.as_ref())),
        ),
    };
    format!("{from} -> {to}")
}

/// Gathers a report (one per replay thread, merged).
pub(crate) struct Gather {
    breach: Breach,
    /// Operations in each history (a crossing counts in both), by tier.
    by_history: BTreeMap<String, BTreeMap<&'static str, u64>>,
    timeline: Timeline,
    /// Last evidence (Unix ns) of each run, by index in the run list.
    last_seen: Vec<i64>,
    run_starts: Vec<i64>,
}

impl Gather {
    pub(crate) fn new(runs: &[RunEntry], period: Period) -> Self {
        let run_starts = runs::starts(runs);
        Self {
            breach: Breach::new(Limits::default(), None),
            by_history: BTreeMap::new(),
            timeline: Timeline::new(period),
            last_seen: vec![i64::MIN; run_starts.len()],
            run_starts,
        }
    }

    fn seen(&mut self, time: UnixNanos) {
        let i = self.run_starts.partition_point(|&s| s <= time.0);
        if let Some(last) = i.checked_sub(1).and_then(|i| self.last_seen.get_mut(i)) {
            *last = (*last).max(time.0);
        }
    }
}

impl Visit for Gather {
    fn span(&mut self, scope: &Scope, span: &Span, first: bool) {
        let history = scope.tenant_name().unwrap_or("(node)").to_owned();
        *self
            .by_history
            .entry(history)
            .or_default()
            .entry(tier_label(span.tier()))
            .or_default() += 1;
        if first {
            self.seen(span.end.unwrap_or(span.start));
            let bucket = self.timeline.bucket(span.start);
            self.timeline.series(pair(span)).operations[bucket] += 1;
        }
        self.breach.span(scope, span, first);
    }

    fn violation(&mut self, violation: Violation, span: &Span) {
        let bucket = self.timeline.bucket(violation.time);
        self.timeline.series(pair(span)).violations[bucket] += 1;
        self.breach.violation(violation, span);
    }

    fn loss(&mut self, loss: &LossEntry) {
        self.seen(loss.time);
        self.breach.loss(loss);
    }

    fn gap(&mut self, gap: &GapEntry) {
        self.breach.gap(gap);
    }

    fn merge(&mut self, other: Self) {
        self.breach.merge(other.breach);
        for (history, tiers) in other.by_history {
            let mine = self.by_history.entry(history).or_default();
            for (tier, n) in tiers {
                *mine.entry(tier).or_default() += n;
            }
        }
        self.timeline.merge(other.timeline);
        for (m, t) in self.last_seen.iter_mut().zip(other.last_seen) {
            *m = (*m).max(t);
        }
    }
}

/// Operations kept in one history.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryOps {
    /// The tenant whose history it is (`(node)`: the node's).
    pub history: String,
    pub total: u64,
    pub by_tier: BTreeMap<&'static str, u64>,
}

/// One key epoch whose segments were read, and what became of its key.
#[derive(Debug, Serialize)]
pub(crate) struct EpochUsed {
    pub history: String,
    pub epoch: u32,
    /// `active`, `readable`, `retired`, `shredded`, or `unknown` (not in the keyring).
    pub state: String,
}

/// Everything missing from the evidence of the period.
#[derive(Debug, Serialize)]
pub(crate) struct Gaps {
    pub downtime: Vec<Downtime>,
    pub losses: Vec<LossEntry>,
    pub store_gaps: Vec<GapEntry>,
    pub omitted: u64,
    pub read_issues: Vec<crate::evidence::store::ReadIssue>,
    pub undecodable_records: u64,
}

/// What `seam report` says.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub period: Period,
    pub generated: UnixNanos,
    pub store: String,
    /// SHA-256 of the rules the history was evaluated with.
    pub rules_sha256: Option<String>,
    /// Distinct operations (spans) validated.
    pub operations: u64,
    pub operations_by_history: Vec<HistoryOps>,
    /// The breach scope: violations, pairs, rules, tiers, trace ids.
    pub violations: BreachScope,
    pub timeline: Timeline,
    pub runs: Vec<RunSummary>,
    /// Every hook live in some run of the period.
    pub hooks_live: Vec<String>,
    pub key_epochs: Vec<EpochUsed>,
    pub gaps: Gaps,
}

impl Report {
    /// Assembles the report from what the replay gathered.
    pub(crate) fn new(
        gather: Gather,
        replayed: Replayed,
        period: Period,
        keys: &[ScopeInfo],
        store: String,
        rules_sha256: Option<String>,
        elapsed_s: f64,
    ) -> Self {
        let runs = runs::summarize(&replayed.runs, &gather.last_seen, period);
        let downtime = runs::downtime(&runs, period);
        let mut hooks_live: Vec<String> = runs
            .iter()
            .flat_map(|r| r.live_hooks.iter().cloned())
            .collect();
        hooks_live.sort();
        hooks_live.dedup();
        let key_epochs = replayed
            .read
            .epochs
            .iter()
            .map(|(scope, epoch)| EpochUsed {
                history: scope.tenant_name().unwrap_or("(node)").to_owned(),
                epoch: *epoch,
                state: keys
                    .iter()
                    .find(|k| k.scope == *scope)
                    .and_then(|k| k.epochs.iter().find(|e| e.epoch == *epoch))
                    .map_or("unknown", |e| e.state.as_str())
                    .to_owned(),
            })
            .collect();
        let operations_by_history = gather
            .by_history
            .into_iter()
            .map(|(history, by_tier)| HistoryOps {
                history,
                total: by_tier.values().sum(),
                by_tier,
            })
            .collect();
        let violations = BreachScope::new(gather.breach, replayed, elapsed_s);
        let gaps = Gaps {
            downtime,
            losses: violations.losses.clone(),
            store_gaps: violations.store_gaps.clone(),
            omitted: violations.gaps_omitted,
            read_issues: violations.read_issues.clone(),
            undecodable_records: violations.undecodable_records,
        };
        Self {
            period,
            generated: UnixNanos::now(),
            store,
            rules_sha256,
            operations: violations.operations,
            operations_by_history,
            timeline: gather.timeline.top(),
            violations,
            runs,
            hooks_live,
            key_epochs,
            gaps,
        }
    }
}
