//! Agent runs from the history's run marks, and the downtime between them: a run is known from
//! its start mark to its stop mark; one without a stop mark (a crash, a kill, power loss, or
//! still running) is known up to its last alive mark or last evidence.
use serde::Serialize;

use super::Period;
use crate::{
    evidence::history::record::RunEntry,
    model::{clock::UnixNanos, vocab::RunPhase},
};

/// Downtime shorter than this between two runs is a restart, not a gap.
const RESTART_NS: i64 = 5_000_000_000;
/// A run without a stop mark is alive this long after its last mark (marks come every minute).
const ALIVE_NS: i64 = 90_000_000_000;

/// One agent run as the history shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunSummary {
    pub run_id: String,
    pub node: String,
    pub version: String,
    pub started: UnixNanos,
    /// The stop mark's time; None when there is none.
    pub stopped: Option<UnixNanos>,
    /// The last moment the run is known to have been observing (its stop, else its last alive
    /// mark or record).
    pub last_seen: UnixNanos,
    pub live_hooks: Vec<String>,
    /// The rules in force: at start, then after each reload.
    pub rules_sha256: Vec<String>,
    pub totals: Option<crate::evidence::history::record::RunTotals>,
}

/// A stretch of the period with no agent observing.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Downtime {
    pub from: UnixNanos,
    pub until: UnixNanos,
    pub seconds: f64,
    pub reason: &'static str,
}

/// The start times of the runs (Unix ns), in the order [`summarize`] lists them.
pub(crate) fn starts(runs: &[RunEntry]) -> Vec<i64> {
    let mut starts: Vec<i64> = runs
        .iter()
        .filter(|r| r.phase == RunPhase::Start)
        .map(|r| r.time.0)
        .collect();
    starts.sort_unstable();
    starts
}

/// The runs of `marks` overlapping `period`, oldest first; `last_seen[i]` is the last record
/// time seen for the i-th run by start time.
pub(crate) fn summarize(marks: &[RunEntry], last_seen: &[i64], period: Period) -> Vec<RunSummary> {
    let mut runs: Vec<RunSummary> = marks
        .iter()
        .filter(|m| m.phase == RunPhase::Start)
        .map(|m| RunSummary {
            run_id: m.run_id.clone(),
            node: m.node.clone(),
            version: m.version.clone(),
            started: m.time,
            stopped: None,
            last_seen: m.time,
            live_hooks: m.live_hooks.clone(),
            rules_sha256: m.rules_sha256.iter().cloned().collect(),
            totals: None,
        })
        .collect();
    runs.sort_by_key(|r| r.started);
    for (run, seen) in runs.iter_mut().zip(last_seen) {
        run.last_seen = run.last_seen.max(UnixNanos(*seen));
    }
    for mark in marks {
        let Some(run) = runs.iter_mut().find(|r| r.run_id == mark.run_id) else {
            continue;
        };
        run.last_seen = run.last_seen.max(mark.time);
        match mark.phase {
            RunPhase::Stop => {
                run.stopped = Some(mark.time);
                run.totals.clone_from(&mark.totals);
            }
            RunPhase::RulesReloaded => {
                if let Some(hash) = &mark.rules_sha256 {
                    run.rules_sha256.push(hash.clone());
                }
            }
            RunPhase::Start | RunPhase::Alive => {}
        }
    }
    runs.retain(|r| r.last_seen >= period.from && r.started < period.until);
    runs
}

/// Where no agent observed within `period`: before the first run, between runs, after the
/// last one.
pub(crate) fn downtime(runs: &[RunSummary], period: Period) -> Vec<Downtime> {
    let mut out = Vec::new();
    let mut push = |from: UnixNanos, until: UnixNanos, reason, least: i64| {
        let (from, until) = (from.max(period.from), until.min(period.until));
        if until.0 - from.0 > least {
            out.push(Downtime {
                from,
                until,
                seconds: (until.0 - from.0) as f64 / 1e9,
                reason,
            });
        }
    };
    let Some(first) = runs.first() else {
        push(
            period.from,
            period.until,
            "no agent run recorded in the period",
            RESTART_NS,
        );
        return out;
    };
    push(
        period.from,
        first.started,
        "before the first agent run of the period",
        RESTART_NS,
    );
    for pair in runs.windows(2) {
        let (run, next) = (&pair[0], &pair[1]);
        let reason = if run.stopped.is_some() {
            "between an agent stop and the next start"
        } else {
            "an agent run ended without a stop mark (crash, kill or power loss) before the next start"
        };
        push(run.last_seen, next.started, reason, RESTART_NS);
    }
    if let Some(last) = runs.last() {
        let (reason, least) = if last.stopped.is_some() {
            ("after the last agent stop", RESTART_NS)
        } else {
            (
                "since the last sign of the last agent run (it ended without a stop mark)",
                ALIVE_NS,
            )
        };
        push(last.last_seen, period.until, reason, least);
    }
    out
}
