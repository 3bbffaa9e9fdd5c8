//! Violation latency, syscall -> feed: a client in tenant A connects once to each of
//! [`ATTEMPTS`] listeners of tenant B (distinct ports, so every violation is told apart by its
//! target port and none is folded: the agent runs with `--aggregate-window 0`), noting
//! CLOCK_REALTIME just before each connect(). A thread polls the agent's feed file every
//! [`POLL`] and notes when each violation line appeared; latency = appeared - syscall.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};

use super::{
    BENCH_CGROUP, READY_TIMEOUT, TENANTS, json_number, procs::Proc, start_agent_with, stop_agent,
};
use crate::util;

/// Connections, one per listener port.
pub(crate) const ATTEMPTS: u32 = 200;
/// Pause between two connects.
pub(crate) const GAP_MS: u64 = 5;
/// How often the feed file is polled (the resolution of the figure).
const POLL: Duration = Duration::from_millis(1);
/// How long to wait for the last violations after the client is done.
const DRAIN: Duration = Duration::from_secs(5);

pub(crate) const TARGET_P99_MS: f64 = 10.0;

#[derive(Debug, Clone, Default)]
pub(crate) struct Latency {
    /// ms from connect() to the line in the feed, one per matched attempt.
    pub ms: Vec<f64>,
    pub attempts: usize,
}

impl Latency {
    pub(crate) fn percentile(&self, p: f64) -> Option<f64> {
        let mut v = self.ms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }

    pub(crate) fn value(&self) -> String {
        match (self.percentile(50.0), self.percentile(99.0)) {
            (Some(p50), Some(p99)) => format!(
                "p50 {p50:.2} ms, p99 {p99:.2} ms ({} of {} attempts seen)",
                self.ms.len(),
                self.attempts
            ),
            _ => format!("none of {} attempts seen in the feed", self.attempts),
        }
    }

    /// Met when every attempt was seen and p99 is under the target.
    pub(crate) fn met(&self) -> bool {
        self.ms.len() == self.attempts && self.percentile(99.0).is_some_and(|p| p < TARGET_P99_MS)
    }

    pub(crate) fn json(&self) -> String {
        let n = |x: Option<f64>| x.map_or_else(|| "null".into(), |x| format!("{x:.3}"));
        format!(
            "{{\"attempts\": {}, \"seen\": {}, \"p50_ms\": {}, \"p99_ms\": {}, \"max_ms\": {}, \
             \"gap_ms\": {GAP_MS}, \"poll_ms\": {}}}",
            self.attempts,
            self.ms.len(),
            n(self.percentile(50.0)),
            n(self.percentile(99.0)),
            n(self.percentile(100.0)),
            POLL.as_millis()
        )
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Polls `feed` until `stop`; returns (target port, ns when its line was first read) for each
/// network violation.
fn tail(feed: &Path, stop: &AtomicBool) -> Vec<(u16, u64)> {
    let mut seen = Vec::new();
    let mut offset = 0u64;
    let mut partial = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut f) = fs::File::open(feed)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut chunk = String::new();
            if let Ok(n) = f.read_to_string(&mut chunk) {
                let at = now_ns();
                offset += n as u64;
                partial.push_str(&chunk);
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    if let Some(port) = network_target_port(&line) {
                        seen.push((port, at));
                    }
                }
            }
        }
        thread::sleep(POLL);
    }
    seen
}

fn network_target_port(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["kind"] != "network" {
        return None;
    }
    u16::try_from(v["target"]["port"].as_u64()?).ok()
}

pub(crate) fn measure(bin: &Path, tmp: &Path) -> Result<Latency> {
    let feed = tmp.join("latency-feed.jsonl");
    let ports = tmp.join("latency-ports");
    for stale in [&feed, &ports] {
        let _ = fs::remove_file(stale);
    }
    let (a, b) = (
        format!("{BENCH_CGROUP}/{}", TENANTS[0]),
        format!("{BENCH_CGROUP}/{}", TENANTS[1]),
    );
    let extra = [
        "--feed-file".as_ref(),
        feed.as_os_str(),
        "--aggregate-window".as_ref(),
        "0".as_ref(),
        "--quiet".as_ref(),
    ];
    let agent = start_agent_with(bin, tmp, &tmp.join("rules"), &extra)?;
    let mut cmd = Command::new(bin);
    cmd.args(["workload", "--cgroup", &b, "bench", "listeners", "--count"])
        .arg(ATTEMPTS.to_string())
        .arg("--ports-file")
        .arg(&ports);
    let listeners = Proc::spawn(cmd, "listeners", tmp, false)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ports.exists() {
        util::check_interrupted()?;
        if Instant::now() > deadline {
            bail!("the listeners did not write {}", ports.display());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tailer = {
        let (feed, stop) = (feed.clone(), Arc::clone(&stop));
        thread::spawn(move || tail(&feed, &stop))
    };
    let mut cmd = Command::new(bin);
    cmd.args([
        "workload",
        "--cgroup",
        &a,
        "bench",
        "timed-connect",
        "--ports-file",
    ])
    .arg(&ports)
    .arg("--gap-ms")
    .arg(GAP_MS.to_string());
    let out = util::output(&mut cmd, "the timed client failed");
    let attempts: Vec<(u16, u64)> = out
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let port = u16::try_from(json_number(l, "port")? as u64).ok()?;
            Some((port, json_number(l, "t_ns")? as u64))
        })
        .collect();
    // Wait for the stragglers, then stop the tail.
    let drain = Instant::now() + DRAIN;
    while Instant::now() < drain && out.is_ok() {
        let lines = fs::read_to_string(&feed).unwrap_or_default();
        if lines
            .lines()
            .filter(|l| l.contains("\"kind\":\"network\""))
            .count()
            >= attempts.len()
        {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let seen = tailer
        .join()
        .map_err(|_| anyhow::anyhow!("the feed tail panicked"))?;
    drop(listeners);
    stop_agent(agent, tmp);
    out.context("timed connects")?;
    let ms = attempts
        .iter()
        .filter_map(|(port, t)| {
            let (_, at) = seen.iter().find(|(p, _)| p == port)?;
            Some(at.saturating_sub(*t) as f64 / 1e6)
        })
        .collect();
    Ok(Latency {
        ms,
        attempts: attempts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_every_attempt_must_be_seen() {
        let l = Latency {
            ms: (1..=100).map(f64::from).collect(),
            attempts: 100,
        };
        assert_eq!(l.percentile(50.0), Some(50.0));
        assert_eq!(l.percentile(99.0), Some(99.0));
        assert!(!l.met(), "p99 99 ms");
        let quick = Latency {
            ms: vec![1.0, 2.0],
            attempts: 3,
        };
        assert!(!quick.met(), "an attempt never seen is a miss");
        assert_eq!(
            network_target_port(r#"{"kind":"network","target":{"port":8080}}"#),
            Some(8080)
        );
        assert_eq!(network_target_port(r#"{"kind":"file"}"#), None);
    }
}
