//! The figures that go through the kernel (see [`ring`], [`latency`], [`rss`]): each is
//! measured on its own and, if it fails, its row says why instead of failing the bench.

use std::path::Path;

use super::{cgroup::Scratch, latency, ring, rss};

#[derive(Debug)]
pub(crate) struct Figures {
    pub ring: Result<ring::Ring, String>,
    pub latency: Result<latency::Latency, String>,
    pub rss: Result<rss::Rss, String>,
}

impl Figures {
    pub(crate) fn skipped(why: &str) -> Self {
        Self {
            ring: Err(why.into()),
            latency: Err(why.into()),
            rss: Err(why.into()),
        }
    }

    pub(crate) fn measure(
        bin: &Path,
        tmp: &Path,
        mount: &Path,
        cgroup: &str,
        scratch: &mut Scratch,
    ) -> Self {
        let latency = note("violation latency", latency::measure(bin, tmp));
        let rss = note("agent RSS", rss::measure(bin, tmp, mount, scratch));
        let ring = note("kernel ring rate", ring::measure(bin, tmp, cgroup));
        Self { ring, latency, rss }
    }

    /// (figure, value, target, verdict) for docs/BENCHMARKS.md.
    pub(crate) fn rows(&self) -> Vec<(String, String, String, &'static str)> {
        fn row<T>(
            figure: String,
            target: &str,
            r: &Result<T, String>,
            value: impl Fn(&T) -> String,
            met: impl Fn(&T) -> bool,
        ) -> (String, String, String, &'static str) {
            match r {
                Ok(t) => (
                    figure,
                    value(t),
                    target.into(),
                    if met(t) { "met" } else { "missed" },
                ),
                Err(e) => (
                    figure,
                    format!("not measured: {}", e.replace('|', "/").replace('\n', " ")),
                    target.into(),
                    "not measured",
                ),
            }
        }
        vec![
            row(
                "pipeline through the kernel ring (TCP connections from a tenant, 4 events \
                 each), rate doubled until loss"
                    .into(),
                ">= 1,000,000 events/s, zero loss",
                &self.ring,
                ring::Ring::value,
                ring::Ring::met,
            ),
            row(
                format!(
                    "violation latency syscall -> feed, p50/p99 ({} connects {} ms apart, feed \
                     polled every 1 ms)",
                    latency::ATTEMPTS,
                    latency::GAP_MS
                ),
                "p99 < 10 ms",
                &self.latency,
                latency::Latency::value,
                latency::Latency::met,
            ),
            row(
                "agent RSS at 10/100/1000 tenant cgroups, 10,000 connections (peak = VmHWM)".into(),
                "< 64 MiB",
                &self.rss,
                rss::Rss::value,
                rss::Rss::met,
            ),
        ]
    }

    pub(crate) fn json(&self) -> String {
        fn part<T>(r: &Result<T, String>, json: impl Fn(&T) -> String) -> String {
            r.as_ref().map_or_else(
                |e| format!("{{\"not_measured\": {}}}", crate::util::json_str(e)),
                json,
            )
        }
        let verdict = |r: Result<bool, &String>| match r {
            Ok(true) => "\"met\"",
            Ok(false) => "\"missed\"",
            Err(_) => "\"not measured\"",
        };
        format!(
            "{{\"ring\": {}, \"ring_verdict\": {}, \"latency\": {}, \"latency_verdict\": {}, \
             \"rss\": {}, \"rss_verdict\": {}}}",
            part(&self.ring, ring::Ring::json),
            verdict(self.ring.as_ref().map(ring::Ring::met)),
            part(&self.latency, latency::Latency::json),
            verdict(self.latency.as_ref().map(latency::Latency::met)),
            part(&self.rss, rss::Rss::json),
            verdict(self.rss.as_ref().map(rss::Rss::met)),
        )
    }
}

fn note<T>(what: &str, r: anyhow::Result<T>) -> Result<T, String> {
    r.map_err(|e| {
        eprintln!("xtask: warning: {what} not measured: {e:#}");
        format!("{e:#}")
    })
}
