//! Folding of repeated identical violations so a noisy pair cannot flood the feed.
//!
//! Two violations are identical when they share the rule, both tenants, the caller's comm and
//! cgroup and the target (tenant, address, port, protocol; every `target` field except the
//! target process). The first of a kind is emitted at once and opens a window; identical ones
//! inside the window are only counted; when the window closes, one aggregate record (the last
//! folded violation plus `"aggregate": {"count", "first_seen", "last_seen", "window_s"}`) is
//! emitted if anything was folded. The next identical violation opens a new window.
use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};

/// Most distinct keys tracked at once; past it, violations are emitted unfolded (memory stays
/// bounded whatever the traffic).
const MAX_KEYS: usize = 65_536;

/// One open window.
#[derive(Debug)]
struct Window {
    opened_ns: u64,
    count: u64,
    first_seen: Value,
    last_seen: Value,
    last: Option<Value>,
}

/// What [`Aggregator::offer`] decided.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Emit the record now, after `closed` (the aggregate of an earlier window of the same key
    /// that was over but not yet expired).
    Emit { closed: Option<Value> },
    /// Counted in an open window; not emitted now.
    Folded,
}

/// Folds identical violations within a window.
#[derive(Debug)]
pub struct Aggregator {
    window_ns: u64,
    open: HashMap<String, Window>,
    /// Violations folded so far (not emitted individually).
    pub folded: u64,
}

/// The aggregation key of a violation record, or None for records never folded.
pub fn key(record: &Value) -> Option<String> {
    let rule = record.get("rule_id")?;
    let mut target = record.get("target").cloned().unwrap_or(Value::Null);
    if let Some(target) = target.as_object_mut() {
        target.remove("process");
    }
    let caller = record.get("caller");
    let field = |v: Option<&Value>, name: &str| v.and_then(|v| v.get(name)).cloned();
    Some(
        json!([
            record.get("kind"),
            rule,
            record.get("intended_tenant"),
            record.get("actual_tenant"),
            field(caller, "comm"),
            field(caller, "cgroup_id"),
            field(caller, "cgroup_path"),
            target,
        ])
        .to_string(),
    )
}

impl Aggregator {
    /// `window` zero disables folding.
    pub fn new(window: Duration) -> Self {
        Self {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            open: HashMap::new(),
            folded: 0,
        }
    }

    /// What to do with `record`, seen at monotonic `now_ns`.
    pub fn offer(&mut self, record: &Value, now_ns: u64) -> Offer {
        if self.window_ns == 0 {
            return Offer::Emit { closed: None };
        }
        let Some(key) = key(record) else {
            return Offer::Emit { closed: None };
        };
        let time = record.get("time").cloned().unwrap_or(Value::Null);
        if let Some(window) = self.open.get_mut(&key)
            && now_ns.saturating_sub(window.opened_ns) < self.window_ns
        {
            if window.count == 0 {
                window.first_seen = time.clone();
            }
            window.count += 1;
            window.last_seen = time;
            window.last = Some(record.clone());
            self.folded += 1;
            return Offer::Folded;
        }
        // New key, or its window is over (closed on the next tick; emit what it folded first).
        if self.open.len() >= MAX_KEYS && !self.open.contains_key(&key) {
            return Offer::Emit { closed: None };
        }
        let closed = self.open.remove(&key).and_then(|w| self.close(w));
        self.open.insert(
            key,
            Window {
                opened_ns: now_ns,
                count: 0,
                first_seen: time.clone(),
                last_seen: time,
                last: None,
            },
        );
        Offer::Emit { closed }
    }

    fn close(&self, window: Window) -> Option<Value> {
        let mut record = window.last?;
        if let Some(object) = record.as_object_mut() {
            object.insert(
                "aggregate".into(),
                json!({
                    "count": window.count,
                    "first_seen": window.first_seen,
                    "last_seen": window.last_seen,
                    "window_s": self.window_ns as f64 / 1e9,
                }),
            );
        }
        Some(record)
    }

    /// Closes the windows that are over at `now_ns`; returns their aggregate records.
    pub fn expire(&mut self, now_ns: u64) -> Vec<Value> {
        let window_ns = self.window_ns;
        let over: Vec<String> = self
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
    pub fn flush(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        let windows: Vec<Window> = self.open.drain().map(|(_, w)| w).collect();
        for window in windows {
            out.extend(self.close(window));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn violation(caller_port: u16, target_port: u16, comm: &str, time: &str) -> Value {
        json!({
            "signal_id": format!("id-{caller_port}"),
            "rule_id": "cross-tenant-network",
            "kind": "network",
            "time": time,
            "intended_tenant": "a",
            "actual_tenant": "b",
            "caller": {"tenant": "a", "pid": 1000 + caller_port, "comm": comm, "cgroup_id": 7,
                       "cgroup_path": "t/a"},
            "target": {"tenant": "b", "addr": "127.0.0.1", "port": target_port, "protocol": "tcp",
                       "process": {"pid": caller_port}},
        })
    }

    #[test]
    fn burst_of_100_gives_one_now_and_one_aggregate_of_99() {
        let mut agg = Aggregator::new(Duration::from_secs(10));
        let mut emitted = Vec::new();
        for i in 0..100u16 {
            let v = violation(i, 5432, "client", &format!("t{i}"));
            match agg.offer(&v, u64::from(i) * 1_000_000) {
                Offer::Emit { closed } => {
                    emitted.extend(closed);
                    emitted.push(v);
                }
                Offer::Folded => {}
            }
        }
        assert_eq!(emitted.len(), 1, "only the first is emitted at once");
        assert!(emitted[0].get("aggregate").is_none());
        assert!(agg.expire(9 * SEC).is_empty(), "window still open");
        let aggregates = agg.expire(10 * SEC);
        assert_eq!(aggregates.len(), 1);
        let a = &aggregates[0]["aggregate"];
        assert_eq!(a["count"], 99);
        assert_eq!(a["first_seen"], "t1");
        assert_eq!(a["last_seen"], "t99");
        assert_eq!(a["window_s"], 10.0);
        assert_eq!(
            aggregates[0]["signal_id"], "id-99",
            "the last folded violation"
        );
        assert_eq!(agg.folded, 99);
        assert!(agg.expire(100 * SEC).is_empty(), "closed once");
    }

    #[test]
    fn different_keys_are_not_merged() {
        let mut agg = Aggregator::new(Duration::from_secs(10));
        let variants = [
            violation(1, 5432, "client", "t"),
            violation(2, 5433, "client", "t"), // other target port
            violation(3, 5432, "other", "t"),  // other comm
            {
                let mut v = violation(4, 5432, "client", "t");
                v["actual_tenant"] = json!("c");
                v["target"]["tenant"] = json!("c");
                v
            },
            {
                let mut v = violation(5, 5432, "client", "t");
                v["rule_id"] = json!("other-rule");
                v
            },
            {
                let mut v = violation(6, 5432, "client", "t");
                v["caller"]["cgroup_id"] = json!(8);
                v
            },
            {
                let mut v = violation(7, 5432, "client", "t");
                v["target"]["protocol"] = json!("udp");
                v
            },
        ];
        for v in &variants {
            assert_eq!(agg.offer(v, 0), Offer::Emit { closed: None }, "{v}");
        }
        // Same key except the caller's pid and port-derived fields: folded.
        assert_eq!(
            agg.offer(&violation(99, 5432, "client", "t"), 1),
            Offer::Folded
        );
        assert_eq!(agg.expire(10 * SEC).len(), 1, "only the folded key reports");
    }

    #[test]
    fn window_expiry_reopens_and_late_arrival_closes_first() {
        let mut agg = Aggregator::new(Duration::from_secs(2));
        assert!(matches!(
            agg.offer(&violation(1, 80, "c", "t1"), 0),
            Offer::Emit { .. }
        ));
        assert_eq!(agg.offer(&violation(2, 80, "c", "t2"), SEC), Offer::Folded);
        // Past the window without a tick in between: the aggregate comes first, then this one.
        match agg.offer(&violation(3, 80, "c", "t3"), 3 * SEC) {
            Offer::Emit {
                closed: Some(aggregate),
            } => {
                assert_eq!(aggregate["aggregate"]["count"], 1);
                assert_eq!(aggregate["aggregate"]["last_seen"], "t2");
            }
            other => panic!("expected emit after the aggregate, got {other:?}"),
        }
        // A window with nothing folded closes silently.
        assert!(agg.expire(10 * SEC).is_empty());
        // After expiry the next one is emitted at once again.
        assert!(matches!(
            agg.offer(&violation(4, 80, "c", "t4"), 11 * SEC),
            Offer::Emit { .. }
        ));
        assert_eq!(
            agg.offer(&violation(5, 80, "c", "t5"), 11 * SEC),
            Offer::Folded
        );
        let flushed = agg.flush();
        assert_eq!(flushed.len(), 1, "shutdown flushes open windows");
        assert_eq!(flushed[0]["aggregate"]["count"], 1);
    }

    #[test]
    fn zero_window_and_records_without_rule_are_never_folded() {
        let mut agg = Aggregator::new(Duration::ZERO);
        for t in 0..5 {
            assert!(matches!(
                agg.offer(&violation(1, 80, "c", "t"), t),
                Offer::Emit { .. }
            ));
        }
        let mut agg = Aggregator::new(Duration::from_secs(5));
        let loss = json!({"kind": "loss", "probe": "network", "lost": 3});
        for t in 0..5 {
            assert!(matches!(agg.offer(&loss, t), Offer::Emit { .. }));
        }
        assert!(agg.flush().is_empty());
    }
}
