//! The bench's results: medians, ratios against the baseline, the human summary and the JSON
//! written to `target/bench/latest.json` (hand-written; xtask has no JSON dependency).

use std::{
    fs,
    time::{SystemTime, UNIX_EPOCH},
};

use super::{Mode, PEER_PROGRAM, WORKLOADS};
use crate::util;

pub struct Report {
    pub iterations: u32,
    pub rounds: usize,
    /// (index into WORKLOADS, mode, ns/iter samples).
    pub samples: Vec<(usize, Mode, Vec<f64>)>,
    pub stats: Vec<String>,
    pub peer_note: Option<&'static str>,
    pub peer_output: String,
}

impl Report {
    fn median(&self, workload: usize, mode: Mode) -> Option<f64> {
        let (_, _, v) = self
            .samples
            .iter()
            .find(|(w, m, _)| *w == workload && *m == mode)?;
        median(v)
    }

    fn ratio(&self, workload: usize, mode: Mode) -> Option<f64> {
        Some(self.median(workload, mode)? / self.median(workload, Mode::Baseline)?)
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "bench: {} rounds (iterations scale from {}), medians:\n",
            self.rounds, self.iterations
        );
        for (w, mode, _) in &self.samples {
            let (w, mode) = (*w, *mode);
            let median = self.median(w, mode).unwrap_or(f64::NAN);
            s.push_str(&format!(
                "  {:<36} {:<9} {median:>10.0} ns/iter",
                WORKLOADS[w].name,
                mode.label()
            ));
            if mode != Mode::Baseline
                && let Some(r) = self.ratio(w, mode)
            {
                s.push_str(&format!(
                    "   ratio {r:.3} ({:+.1}% vs baseline)",
                    (r - 1.0) * 100.0
                ));
            }
            s.push('\n');
        }
        if let Some(note) = self.peer_note {
            s.push_str(&format!("  bpftrace  {note}\n"));
        } else if !self.peer_output.is_empty() {
            s.push_str(&format!(
                "bpftrace output (last round):\n{}\n",
                self.peer_output
            ));
        }
        let last = self.stats.last().map_or("null", String::as_str);
        s.push_str(&format!("agent stats (last round): {last}"));
        s
    }

    pub fn json(&self) -> String {
        let num = |x: Option<f64>| match x {
            Some(x) if x.is_finite() => format!("{x:.3}"),
            _ => "null".into(),
        };
        let raw_or_str = |t: &str| {
            let t = t.trim();
            if (t.starts_with('{') && t.ends_with('}')) || t == "null" {
                t.to_owned()
            } else {
                util::json_str(t)
            }
        };
        let mut modes = Vec::new();
        for (w, mode, v) in &self.samples {
            let samples: Vec<String> = v.iter().map(|x| num(Some(*x))).collect();
            modes.push(format!(
                "{}: {{\"median_ns_per_iter\": {}, \"ratio\": {}, \"samples_ns_per_iter\": [{}]}}",
                util::json_str(&format!("{} / {}", WORKLOADS[*w].name, mode.label())),
                num(self.median(*w, *mode)),
                num(self.ratio(*w, *mode)),
                samples.join(", ")
            ));
        }
        let stats: Vec<String> = self.stats.iter().map(|s| raw_or_str(s)).collect();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let peer = match self.peer_note {
            Some(note) => util::json_str(note),
            None => format!(
                "{{\"tool\": \"bpftrace\", \"program\": {}, \"output\": {}}}",
                util::json_str(PEER_PROGRAM),
                util::json_str(&self.peer_output)
            ),
        };
        format!(
            "{{\n  \"timestamp_unix\": {timestamp},\n  \"kernel\": {},\n  \"workload\": \
             \"tcp-loop, openat, getppid\",\n  \"iterations\": {},\n  \"rounds\": {},\n  \"modes\": {{\n    {}\n  \
             }},\n  \"seam_ratio\": {},\n  \"peer\": {peer},\n  \"agent_stats\": [{}]\n}}\n",
            util::json_str(kernel.trim()),
            self.iterations,
            self.rounds,
            modes.join(",\n    "),
            num(self.ratio(0, Mode::Seam)),
            stats.join(", ")
        )
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
