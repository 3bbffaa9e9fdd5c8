//! Counters the agent reports at exit (and in `--stats-file`): events handled, losses, spans,
//! violations. Losses are never silent: they are logged as they happen and summed here.
use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

/// Running totals.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    pub events_total: u64,
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Kernel-side losses (ring buffer full), by probe family.
    pub lost: BTreeMap<&'static str, u64>,
    /// Connection spans (TCP connections, UDP flows).
    pub spans: u64,
    /// File spans (one per path a file syscall touched).
    pub file_spans: u64,
    pub violations: u64,
    pub feed_write_errors: u64,
    /// Feed records a sink dropped, by `sink/reason`.
    pub feed_dropped: BTreeMap<String, u64>,
    /// Violations folded into aggregate records.
    pub violations_folded: u64,
    pub live_hooks: Vec<String>,
    pub tenant_cgroups: usize,
}

/// What `--stats-file` holds.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub uptime_s: f64,
    pub events_total: u64,
    pub events_per_sec: f64,
    pub events_by_kind: BTreeMap<&'static str, u64>,
    pub decode_errors: u64,
    pub lost: BTreeMap<&'static str, u64>,
    pub lost_total: u64,
    /// Connection spans (TCP connections, UDP flows).
    pub spans: u64,
    /// File spans (one per path a file syscall touched).
    pub file_spans: u64,
    pub violations: u64,
    pub feed_write_errors: u64,
    pub feed_dropped: BTreeMap<String, u64>,
    pub violations_folded: u64,
    pub live_hooks: Vec<String>,
    pub tenant_cgroups: usize,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            events_total: 0,
            events_by_kind: BTreeMap::new(),
            decode_errors: 0,
            lost: BTreeMap::new(),
            spans: 0,
            file_spans: 0,
            violations: 0,
            feed_write_errors: 0,
            feed_dropped: BTreeMap::new(),
            violations_folded: 0,
            live_hooks: Vec::new(),
            tenant_cgroups: 0,
        }
    }
}

impl Stats {
    pub fn report(&self) -> StatsReport {
        let uptime_s = self.started.elapsed().as_secs_f64();
        StatsReport {
            uptime_s,
            events_total: self.events_total,
            events_per_sec: if uptime_s > 0.0 {
                self.events_total as f64 / uptime_s
            } else {
                0.0
            },
            events_by_kind: self.events_by_kind.clone(),
            decode_errors: self.decode_errors,
            lost: self.lost.clone(),
            lost_total: self.lost.values().sum(),
            spans: self.spans,
            file_spans: self.file_spans,
            violations: self.violations,
            feed_write_errors: self.feed_write_errors,
            feed_dropped: self.feed_dropped.clone(),
            violations_folded: self.violations_folded,
            live_hooks: self.live_hooks.clone(),
            tenant_cgroups: self.tenant_cgroups,
        }
    }
}
