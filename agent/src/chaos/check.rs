//! Did the running agent report each attempt? Matched in its feed by the attempt's process and
//! target; the result as a table or JSON.
use std::{fmt::Write as _, path::Path};

use serde::Serialize;
use serde_json::Value;

use super::plan::{Attempt, Expect};

/// What became of one attempt.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Outcome {
    #[serde(flatten)]
    pub attempt: Attempt,
    /// The attempting process (0 when it could not run).
    pub pid: u32,
    /// Why it could not run, if it could not.
    pub error: Option<String>,
    /// The rule of the first violation that reported it.
    pub seen_by: Option<String>,
}

impl Outcome {
    /// Ran and was reported.
    pub(crate) fn passed(&self) -> bool {
        self.seen_by.is_some()
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub from: String,
    pub to: String,
    pub attempts: usize,
    pub seen: usize,
    pub passed: bool,
    pub outcomes: Vec<Outcome>,
    /// What was not attempted, and why.
    pub skipped: Vec<String>,
}

/// Whether the violation `v` reports `outcome`'s attempt.
fn reports(v: &Value, outcome: &Outcome) -> bool {
    if v["rule_id"].as_str().is_none()
        || v["caller"]["pid"].as_u64() != Some(u64::from(outcome.pid))
    {
        return false;
    }
    match &outcome.attempt.expect {
        Expect::Network { transport, port } => {
            v["target"]["port"].as_u64() == Some(u64::from(*port))
                && v["target"]["protocol"] == transport.as_str()
        }
        Expect::File { path, op } => {
            v["target"]["path"].as_str() == path.to_str() && v["target"]["op"] == op.as_str()
        }
    }
}

/// Marks the outcomes the feed at `feed` reports; returns how many are seen.
pub(crate) fn match_feed(feed: &Path, outcomes: &mut [Outcome]) -> usize {
    let text = std::fs::read_to_string(feed).unwrap_or_default();
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for outcome in outcomes
        .iter_mut()
        .filter(|o| o.seen_by.is_none() && o.pid != 0)
    {
        if let Some(v) = records.iter().find(|v| reports(v, outcome)) {
            outcome.seen_by = v["rule_id"].as_str().map(str::to_owned);
        }
    }
    outcomes.iter().filter(|o| o.passed()).count()
}

/// The report as a text table.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "seam chaos: {} -> {}: {} of {} attempts reported{}",
        report.from,
        report.to,
        report.seen,
        report.attempts,
        if report.passed { "" } else { " — FAILED" }
    );
    let _ = writeln!(
        out,
        "{:<22} {:<8} {:<6} rule / how",
        "attempt", "pid", "seen"
    );
    for o in &report.outcomes {
        let seen = if o.passed() { "yes" } else { "NO" };
        let detail = match (&o.error, &o.seen_by) {
            (Some(e), _) => format!("could not run: {e}"),
            (None, Some(rule)) => format!("{rule} ({})", o.attempt.how),
            (None, None) => format!("unseen: {}", o.attempt.how),
        };
        let _ = writeln!(
            out,
            "{:<22} {:<8} {:<6} {detail}",
            o.attempt.id, o.pid, seen
        );
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped: {s}");
    }
    out
}
