//! Folding of repeated identical violations so a noisy pair cannot flood the feed.
//!
//! Two violations are identical when they share the [`Key`]: the rule, both tenants, the
//! caller's comm and cgroup and the target (every target field except the target process). The
//! first of a kind is emitted at once and opens a window; identical ones inside the window are
//! only counted; when the window closes, one aggregate record (the last folded violation plus
//! `"aggregate": {"count", "first_seen", "last_seen", "window_s"}`) is emitted if anything was
//! folded. The next identical violation opens a new window.
use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Duration};

use crate::{
    detect::{Aggregate, Target, Violation},
    model::{
        clock::UnixNanos,
        spans::TenantName,
        vocab::{FileOp, Outcome, PathConfidence, PathRole, Transport},
    },
    policy::lang::Family,
};

/// Most distinct keys tracked at once; past it, violations are emitted unfolded (memory stays
/// bounded whatever the traffic).
const MAX_KEYS: usize = 65_536;

/// What makes two violations the same, from their fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    kind: Family,
    rule_id: String,
    intended: Option<TenantName>,
    actual: Option<TenantName>,
    caller_comm: Option<Arc<str>>,
    caller_cgroup: Option<(u64, Arc<str>)>,
    target: TargetKey,
}

/// The target, without the target process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TargetKey {
    Network(Option<TenantName>, IpAddr, u16, Transport),
    File {
        tenant: Option<TenantName>,
        path: String,
        op: FileOp,
        outcome: Outcome,
        confidence: PathConfidence,
        truncated: bool,
        role: Option<PathRole>,
    },
    Process(Option<Arc<str>>),
    App(Option<TenantName>, Option<String>, Option<String>, String),
}

impl Key {
    /// The key of `v`.
    pub(crate) fn of(v: &Violation) -> Self {
        let target = match &v.target {
            Target::Network {
                tenant,
                addr,
                port,
                protocol,
                ..
            } => TargetKey::Network(tenant.clone(), *addr, *port, *protocol),
            Target::File {
                tenant,
                path,
                op,
                outcome,
                path_confidence,
                path_truncated,
                role,
            } => TargetKey::File {
                tenant: tenant.clone(),
                path: path.clone(),
                op: *op,
                outcome: *outcome,
                confidence: *path_confidence,
                truncated: *path_truncated,
                role: *role,
            },
            Target::Process { exe, .. } => TargetKey::Process(exe.clone()),
            Target::App {
                tenant,
                declared_tenant,
                service,
                span_name,
                ..
            } => TargetKey::App(
                tenant.clone(),
                declared_tenant.clone(),
                service.clone(),
                span_name.clone(),
            ),
        };
        Self {
            kind: v.kind,
            rule_id: v.rule_id.clone(),
            intended: v.intended_tenant.clone(),
            actual: v.actual_tenant.clone(),
            caller_comm: v.caller.as_ref().map(|c| c.comm.clone()),
            caller_cgroup: v
                .caller
                .as_ref()
                .map(|c| (c.cgroup_id, c.cgroup_path.clone())),
            target,
        }
    }
}

/// One open window.
#[derive(Debug)]
struct Window {
    opened_ns: u64,
    count: u64,
    first_seen: UnixNanos,
    last_seen: UnixNanos,
    last: Option<Violation>,
}

/// What [`Aggregator::offer`] decided.
#[derive(Debug, PartialEq)]
pub(crate) enum Offer {
    /// Emit the violation now, after `closed` (the aggregate of an earlier window of the same
    /// key that was over but not yet expired).
    Emit { closed: Option<Box<Violation>> },
    /// Counted in an open window; not emitted now.
    Folded,
}

/// Folds identical violations within a window.
#[derive(Debug)]
pub(crate) struct Aggregator {
    window_ns: u64,
    open: HashMap<Key, Window>,
    /// Violations folded so far (not emitted individually).
    pub folded: u64,
}

impl Aggregator {
    /// `window` zero disables folding.
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            open: HashMap::new(),
            folded: 0,
        }
    }

    /// What to do with `violation`, seen at monotonic `now_ns`.
    pub(crate) fn offer(&mut self, violation: &Violation, now_ns: u64) -> Offer {
        if self.window_ns == 0 {
            return Offer::Emit { closed: None };
        }
        let key = Key::of(violation);
        if let Some(window) = self.open.get_mut(&key)
            && now_ns.saturating_sub(window.opened_ns) < self.window_ns
        {
            // The earliest and latest times folded, not the first and last to arrive: a wall
            // clock stepped back inside the window must not make it run backwards.
            if window.count == 0 {
                window.first_seen = violation.time;
                window.last_seen = violation.time;
            }
            window.count += 1;
            window.first_seen = window.first_seen.min(violation.time);
            window.last_seen = window.last_seen.max(violation.time);
            window.last = Some(violation.clone());
            self.folded += 1;
            return Offer::Folded;
        }
        // New key, or its window is over (closed on the next tick; emit what it folded first).
        if self.open.len() >= MAX_KEYS && !self.open.contains_key(&key) {
            return Offer::Emit { closed: None };
        }
        let closed = self
            .open
            .remove(&key)
            .and_then(|w| self.close(w))
            .map(Box::new);
        self.open.insert(
            key,
            Window {
                opened_ns: now_ns,
                count: 0,
                first_seen: violation.time,
                last_seen: violation.time,
                last: None,
            },
        );
        Offer::Emit { closed }
    }

    fn close(&self, window: Window) -> Option<Violation> {
        let mut record = window.last?;
        record.aggregate = Some(Aggregate {
            count: window.count,
            first_seen: window.first_seen,
            last_seen: window.last_seen,
            window_s: self.window_ns as f64 / 1e9,
        });
        Some(record)
    }

    /// Closes the windows that are over at `now_ns`; returns their aggregate records.
    pub(crate) fn expire(&mut self, now_ns: u64) -> Vec<Violation> {
        let window_ns = self.window_ns;
        let over: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, w)| now_ns.saturating_sub(w.opened_ns) >= window_ns)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in over {
            if let Some(window) = self.open.remove(&key) {
                out.extend(self.close(window));
            }
        }
        out
    }

    /// Closes every window (at shutdown).
    pub(crate) fn flush(&mut self) -> Vec<Violation> {
        let windows: Vec<Window> = self.open.drain().map(|(_, w)| w).collect();
        windows.into_iter().filter_map(|w| self.close(w)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::violation::fixture as violation;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_of_100_gives_one_now_and_one_aggregate_of_99() {
        let mut agg = Aggregator::new(Duration::from_secs(10));
        let mut emitted = Vec::new();
        for i in 0..100u16 {
            let v = violation(u32::from(i), 5432, "client", i64::from(i));
            match agg.offer(&v, u64::from(i) * 1_000_000) {
                Offer::Emit { closed } => {
                    emitted.extend(closed.map(|b| *b));
                    emitted.push(v);
                }
                Offer::Folded => {}
            }
        }
        assert_eq!(emitted.len(), 1, "only the first is emitted at once");
        assert!(emitted[0].aggregate.is_none());
        assert!(agg.expire(9 * SEC).is_empty(), "window still open");
        let aggregates = agg.expire(10 * SEC);
        assert_eq!(aggregates.len(), 1);
        let a = aggregates[0].aggregate.as_ref().unwrap();
        assert_eq!(a.count, 99);
        assert_eq!((a.first_seen, a.last_seen), (UnixNanos(1), UnixNanos(99)));
        assert_eq!(a.window_s, 10.0);
        assert_eq!(
            aggregates[0].signal_id, "id-99",
            "the last folded violation"
        );
        assert_eq!(agg.folded, 99);
        assert!(agg.expire(100 * SEC).is_empty(), "closed once");
        let json = serde_json::to_value(&aggregates[0]).unwrap();
        assert_eq!(json["aggregate"]["count"], 99);
    }

    #[test]
    fn a_clock_stepped_back_inside_the_window_does_not_make_it_run_backwards() {
        let mut agg = Aggregator::new(Duration::from_secs(10));
        agg.offer(&violation(1, 5432, "client", 1_000 * SEC as i64), 0);
        agg.offer(&violation(2, 5432, "client", 1_001 * SEC as i64), SEC);
        // Stepped back ten minutes.
        agg.offer(&violation(3, 5432, "client", 402 * SEC as i64), 2 * SEC);
        let aggregates = agg.expire(10 * SEC);
        let a = aggregates[0].aggregate.as_ref().unwrap();
        assert_eq!(a.count, 2);
        assert_eq!(
            (a.first_seen, a.last_seen),
            (UnixNanos(402 * SEC as i64), UnixNanos(1_001 * SEC as i64))
        );
    }

    #[test]
    fn different_keys_are_not_merged() {
        let mut agg = Aggregator::new(Duration::from_secs(10));
        let base = || violation(1, 5432, "client", 0);
        let mut variants = vec![
            base(),
            violation(2, 5433, "client", 0), // other target port
            violation(3, 5432, "other", 0),  // other comm
        ];
        let mut v = base();
        v.actual_tenant = Some(TenantName::new("c"));
        variants.push(v);
        let mut v = base();
        v.rule_id = "other-rule".into();
        variants.push(v);
        let mut v = base();
        if let Some(c) = &mut v.caller {
            c.cgroup_id = 8;
        }
        variants.push(v);
        let mut v = base();
        if let Target::Network { protocol, .. } = &mut v.target {
            *protocol = Transport::Udp;
        }
        variants.push(v);
        for v in &variants {
            assert_eq!(agg.offer(v, 0), Offer::Emit { closed: None }, "{v:?}");
        }
        // Same key except the caller's pid: folded.
        assert_eq!(
            agg.offer(&violation(99, 5432, "client", 0), 1),
            Offer::Folded
        );
        assert_eq!(agg.expire(10 * SEC).len(), 1, "only the folded key reports");
    }

    #[test]
    fn window_expiry_reopens_and_late_arrival_closes_first() {
        let mut agg = Aggregator::new(Duration::from_secs(2));
        assert!(matches!(
            agg.offer(&violation(1, 80, "c", 1), 0),
            Offer::Emit { .. }
        ));
        assert_eq!(agg.offer(&violation(2, 80, "c", 2), SEC), Offer::Folded);
        // Past the window without a tick in between: the aggregate comes first, then this one.
        match agg.offer(&violation(3, 80, "c", 3), 3 * SEC) {
            Offer::Emit {
                closed: Some(aggregate),
            } => {
                let a = aggregate.aggregate.as_ref().unwrap();
                assert_eq!((a.count, a.last_seen), (1, UnixNanos(2)));
            }
            other => panic!("expected emit after the aggregate, got {other:?}"),
        }
        // A window with nothing folded closes silently.
        assert!(agg.expire(10 * SEC).is_empty());
        // After expiry the next one is emitted at once again.
        assert!(matches!(
            agg.offer(&violation(4, 80, "c", 4), 11 * SEC),
            Offer::Emit { .. }
        ));
        assert_eq!(
            agg.offer(&violation(5, 80, "c", 5), 11 * SEC),
            Offer::Folded
        );
        let flushed = agg.flush();
        assert_eq!(flushed.len(), 1, "shutdown flushes open windows");
        assert_eq!(flushed[0].aggregate.as_ref().unwrap().count, 1);
    }

    #[test]
    fn zero_window_never_folds() {
        let mut agg = Aggregator::new(Duration::ZERO);
        for t in 0..5 {
            assert!(matches!(
                agg.offer(&violation(1, 80, "c", 0), t),
                Offer::Emit { .. }
            ));
        }
        assert!(agg.flush().is_empty());
    }
}
