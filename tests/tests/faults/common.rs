//! What the fault tests share: connecting from a cgroup, reading spans and violations out of
//! the feed, parsing its times, and checking attribution.
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use seam_integration_tests::{Agent, Cgroups, Workload};
use serde_json::Value;

/// One `tcp-connect` from `cgroup` as `comm`; returns its pid once it finished.
pub fn connect(cgroup: &str, comm: &str, addr: &str) -> u32 {
    let client = Workload::start(Some(cgroup), comm, &["tcp-connect", "--addr", addr]);
    let pid = client.pid();
    client.finish();
    pid
}

/// `127.0.0.1:<port>`.
pub fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Network violations in `feed`.
pub fn network(feed: &[Value]) -> Vec<&Value> {
    feed.iter().filter(|r| r["kind"] == "network").collect()
}

/// Spans in `feed` (`--feed-spans`).
pub fn spans(feed: &[Value]) -> Vec<&Value> {
    feed.iter()
        .filter(|r| r["kind"] == "span")
        .map(|r| &r["span"])
        .collect()
}

/// Loss records in `feed`.
pub fn losses(feed: &[Value]) -> Vec<&Value> {
    feed.iter().filter(|r| r["kind"] == "loss").collect()
}

/// Violations a record stands for (an aggregate stands for `aggregate.count`).
pub fn weight(v: &Value) -> u64 {
    v["aggregate"]["count"].as_u64().unwrap_or(1)
}

/// The connection span whose server port is `port`.
pub fn connection_to(feed: &[Value], port: u16) -> Vec<&Value> {
    spans(feed)
        .into_iter()
        .filter(|s| {
            s["body"]["connection"]["server"]["addr"]
                .as_str()
                .is_some_and(|a| a.ends_with(&format!(":{port}")))
        })
        .collect()
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time as the agent writes it
/// (`2024-05-01T12:00:00.123456789Z`, fraction optional).
pub fn unix_ns(original: &str) -> i128 {
    let bad = || -> ! { panic!("not an RFC 3339 UTC time: {original:?}") };
    let text = original.strip_suffix('Z').unwrap_or_else(|| bad());
    let (date, time) = text.split_once('T').unwrap_or_else(|| bad());
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| bad());
    let mut d = date.split('-').map(num);
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(num);
    let (hh, mm, ss) = (t.next().unwrap(), t.next().unwrap(), t.next().unwrap());
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let nanos = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}")[..9]
            .parse::<i128>()
            .unwrap_or_else(|_| bad())
    };
    i128::from(secs) * 1_000_000_000 + nanos
}

/// `end - start` of a span, in nanoseconds (panics if it has no end).
pub fn duration_ns(span: &Value) -> i128 {
    let start = unix_ns(span["start"].as_str().expect("span start"));
    let end = unix_ns(
        span["end"]
            .as_str()
            .unwrap_or_else(|| panic!("span without end: {span:#}")),
    );
    end - start
}

/// Asserts that `v` was raised from a cgroup of the tenant its path says: `caller` is
/// `<base>/<dir>[/...]` and `owners` maps `<dir>` to its tenant (an unlisted dir belongs to
/// no tenant, so a violation from it is misattributed).
pub fn assert_attributed(v: &Value, cgroups: &Cgroups, owners: &[(&str, &str)]) {
    let path = v["caller"]["cgroup_path"].as_str().unwrap_or_default();
    let rel = path
        .strip_prefix(&format!("{}/", cgroups.base))
        .unwrap_or_else(|| panic!("violation from outside the test's cgroups: {v:#}"));
    let dir = rel.split('/').next().unwrap_or_default();
    let owner = owners
        .iter()
        .find(|(d, _)| *d == dir)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("violation from {rel}, which no tenant owns: {v:#}"));
    assert_eq!(v["caller"]["tenant"], owner, "{v:#}");
    assert_eq!(v["intended_tenant"], owner, "{v:#}");
}

/// A path in the temp dir for a `--hold-file` (removed on drop).
pub struct HoldFile(pub PathBuf);

impl HoldFile {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("seam-faults-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }

    /// Lets the workloads holding on it go.
    pub fn release(&self) {
        std::fs::write(&self.0, b"go").expect("write hold file");
    }
}

impl Drop for HoldFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Polls `value` until it stays the same for `quiet`; panics after `limit`.
pub fn wait_stable<T: PartialEq + std::fmt::Debug>(
    agent: &Agent,
    what: &str,
    quiet: Duration,
    limit: Duration,
    value: impl Fn(&Agent) -> T,
) -> T {
    let deadline = Instant::now() + limit;
    let mut last = value(agent);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = value(agent);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never settled (last {last:?}); log:\n{}",
            agent.log()
        );
    }
}

/// The cross-tenant rule, and `tenants` (`name`, its cgroups relative to the mount).
pub fn rules(tenants: &[(&str, Vec<String>)]) -> String {
    let mut out = String::new();
    for (name, dirs) in tenants {
        let dirs: Vec<String> = dirs.iter().map(|d| format!("\"{d}\"")).collect();
        out.push_str(&format!(
            "[[tenant]]\nname = \"{name}\"\ncgroups = [{}]\n\n",
            dirs.join(", ")
        ));
    }
    out.push_str(CROSS_TENANT);
    out
}

pub const CROSS_TENANT: &str = r#"
[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant's process connected to another tenant's endpoint"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)"
"#;

/// How often the agent logged registering (or, `registered` false, unregistering) tenant
/// cgroup `rel`.
pub fn registrations(agent: &Agent, rel: &str, registered: bool) -> usize {
    let what = if registered {
        "registered"
    } else {
        "unregistered"
    };
    agent
        .log()
        .matches(&format!("tenant cgroup {what} cgroup=\"{rel}\" "))
        .count()
}
