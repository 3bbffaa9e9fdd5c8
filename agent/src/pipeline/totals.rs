//! Counters the agent reports at exit (and in `--stats-file`): events handled, losses, spans,
//! violations. Losses are never silent: they are logged as they happen and summed here.
use std::{
    collections::BTreeMap,
    ops::{Deref, DerefMut},
    time::Instant,
};

use serde::Serialize;

use crate::{
    kernel::events::silence::CountLabel,
    model::vocab::{EventKind, ProbeFamily},
    policy::lang::Family,
};

/// The running totals, as they also appear in the report.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Counters {
    pub events_total: u64,
    /// Events by kind (declared in name order: listed as when keyed by the names).
    pub events_by_kind: BTreeMap<EventKind, u64>,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Kernel-side losses (ring buffer full), by probe family.
    pub lost: BTreeMap<ProbeFamily, u64>,
    /// Connection spans (TCP connections, UDP flows) evaluated.
    pub spans: u64,
    /// File spans (one per path a file syscall touched) evaluated.
    pub file_spans: u64,
    /// Process execution spans evaluated.
    pub process_spans: u64,
    /// Application spans (OTLP) evaluated.
    pub app_spans: u64,
    /// Spans that ended (and went to export and history).
    pub spans_ended: u64,
    /// Open spans ended early because too many were open.
    pub spans_evicted: u64,
    pub violations: u64,
    pub feed_write_errors: u64,
    /// Feed records a sink dropped, by `sink/reason`.
    pub feed_dropped: BTreeMap<String, u64>,
    /// Violations folded into aggregate records.
    pub violations_folded: u64,
    pub live_hooks: Vec<String>,
    pub tenant_cgroups: usize,
    /// Repeated opens the kernel counted instead of sending (silenced once judged).
    pub file_opens_counted: u64,
    /// The same, by `caller tenant->owner tenant:class`.
    pub file_opens_counted_by: BTreeMap<CountLabel, u64>,
    /// (cgroup, directory, class) keys silenced.
    pub file_silences: u64,
    /// What the sealed history did (`--store`), at exit.
    pub history: Option<crate::evidence::history::HistoryStats>,
}

/// Running totals since start-up (derefs to [`Counters`]).
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    counters: Counters,
}

/// What `--stats-file` holds: the counters plus what derives from them.
#[derive(Debug, Serialize)]
pub(crate) struct StatsReport {
    pub uptime_s: f64,
    pub events_per_sec: f64,
    pub lost_total: u64,
    #[serde(flatten)]
    pub counters: Counters,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            counters: Counters::default(),
        }
    }
}

impl Deref for Stats {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

impl DerefMut for Stats {
    fn deref_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

impl Deref for StatsReport {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

impl Stats {
    /// One span of `family` evaluated.
    pub(crate) fn count_span(&mut self, family: Family) {
        match family {
            Family::Network => self.spans += 1,
            Family::File => self.file_spans += 1,
            Family::Process => self.process_spans += 1,
            Family::App => self.app_spans += 1,
            Family::Common => {}
        }
    }

    pub(crate) fn report(&self) -> StatsReport {
        let uptime_s = self.started.elapsed().as_secs_f64();
        StatsReport {
            uptime_s,
            events_per_sec: if uptime_s > 0.0 {
                self.events_total as f64 / uptime_s
            } else {
                0.0
            },
            lost_total: self.lost.values().sum(),
            counters: self.counters.clone(),
        }
    }
}
