//! The OTLP figures of `cargo xtask bench`: export spans/s on one thread to a local receiver
//! over OTLP/HTTP and OTLP/gRPC (`seam workload bench otlp-export`, the pipeline's own spans,
//! the agent's batch, queue and in-flight defaults), the exporter against a receiver that
//! accepts and never answers (memory held and what was dropped, `--stalled`), and application
//! spans received and joined on one thread (`seam workload bench otlp-receive`).
use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::util;

/// Export target: spans/s on one core.
const EXPORT_TARGET: f64 = 200_000.0;
/// Spans offered to the stalled receiver.
const STALLED_OFFERED: u64 = 1_000_000;
/// RSS growth between a tenth and all of the offered spans still counted as bounded.
const STALLED_SLACK_KIB: f64 = 8.0 * 1024.0;

/// One row: figure, value, target, verdict.
type Row = (String, String, String, &'static str);

pub struct Figures {
    rows: Vec<Row>,
    json: Vec<(String, Value)>,
}

fn run(bin: &Path, args: &[&str]) -> Result<Value> {
    let rules = util::workspace_root().join("rules/shipped");
    let mut cmd = Command::new(bin);
    cmd.args(["workload", "bench"])
        .args(args)
        .arg("--rules")
        .arg(&rules);
    let out = util::output(&mut cmd, &format!("seam workload bench {} failed", args[0]))?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the OTLP benchmark printed no JSON line")?;
    serde_json::from_str(line).context("the OTLP benchmark printed bad JSON")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn median_by(mut runs: Vec<Value>, key: &str) -> Option<Value> {
    runs.sort_by(|a, b| num(a, key).total_cmp(&num(b, key)));
    let mid = runs.len() / 2;
    runs.into_iter().nth(mid)
}

impl Figures {
    /// Runs every OTLP benchmark (`rounds` times each for the export rates; the median is
    /// kept). A benchmark that fails says so in its row.
    pub fn measure(bin: &Path, rounds: usize) -> Self {
        let mut figures = Self {
            rows: Vec::new(),
            json: Vec::new(),
        };
        for (protocol, label) in [
            ("http/protobuf", "OTLP/HTTP protobuf"),
            ("grpc", "OTLP/gRPC"),
        ] {
            let figure = format!(
                "OTLP export, {label}, on one thread to a local receiver (the pipeline's spans, \
                 batches of 512, 2 requests in flight)"
            );
            let target = ">= 200,000 spans/s per core".to_owned();
            let mut runs = Vec::new();
            let mut error = None;
            for round in 0..rounds {
                match run(bin, &["otlp-export", "--protocol", protocol]) {
                    Ok(v) => {
                        eprintln!(
                            "xtask: round {}/{rounds}: OTLP export {protocol} {:>10.0} spans/s",
                            round + 1,
                            num(&v, "spans_per_sec")
                        );
                        runs.push(v);
                    }
                    Err(e) => error = Some(format!("{e:#}")),
                }
            }
            match median_by(runs, "spans_per_sec") {
                Some(v) => {
                    let rate = num(&v, "spans_per_sec");
                    figures.rows.push((
                        figure,
                        format!(
                            "{rate:.0} spans/s ({:.0} per CPU-second of the exporter's thread, \
                             {:.0} bytes per span on the wire, {:.0} dropped)",
                            num(&v, "spans_per_cpu_s"),
                            num(&v, "wire_bytes_per_span"),
                            num(&v, "dropped")
                        ),
                        target,
                        if rate >= EXPORT_TARGET {
                            "met"
                        } else {
                            "missed"
                        },
                    ));
                    figures.json.push((format!("export_{protocol}"), v));
                }
                None => figures.rows.push((
                    figure,
                    format!("failed: {}", error.unwrap_or_default()),
                    target,
                    "not measured",
                )),
            }
        }
        figures.stalled(bin);
        figures.receive(bin);
        figures
    }

    fn stalled(&mut self, bin: &Path) {
        let figure = format!(
            "OTLP export to a receiver that accepts and never answers, {STALLED_OFFERED} spans \
             offered without waiting"
        );
        let target = "memory bounded; every span exported or counted as dropped".to_owned();
        let offered = STALLED_OFFERED.to_string();
        match run(bin, &["otlp-export", "--stalled", "--spans", &offered]) {
            Ok(v) => {
                let dropped = num(&v, "dropped_queue_full") + num(&v, "dropped_shutdown");
                let growth = num(&v, "growth_kib_last_nine_tenths");
                let bounded = growth <= STALLED_SLACK_KIB && dropped == STALLED_OFFERED as f64;
                self.rows.push((
                    figure,
                    format!(
                        "{:.0} spans held when stopped (the queue, {:.0}, and {:.0} batches of {:.0}); \
                         {:.0} dropped as queue full and {:.0} at shutdown, all counted; RSS \
                         {:.1} MiB after a tenth offered, {:.1} MiB after all (peak {:.1})",
                        num(&v, "dropped_shutdown"),
                        num(&v, "queue"),
                        num(&v, "in_flight") + 1.0,
                        num(&v, "batch"),
                        num(&v, "dropped_queue_full"),
                        num(&v, "dropped_shutdown"),
                        num(&v, "rss_kib_after_tenth") / 1024.0,
                        num(&v, "rss_kib_after_all") / 1024.0,
                        num(&v, "rss_kib_peak") / 1024.0,
                    ),
                    target,
                    if bounded { "met" } else { "missed" },
                ));
                self.json.push(("export_stalled".into(), v));
            }
            Err(e) => self
                .rows
                .push((figure, format!("failed: {e:#}"), target, "not measured")),
        }
    }

    fn receive(&mut self, bin: &Path) {
        let figure = "OTLP receive + join, one thread (protobuf decode, join of client spans \
                      to 10,000 kernel connections, shipped rules, feed)"
            .to_owned();
        let target = "none (reported)".to_owned();
        match run(bin, &["otlp-receive"]) {
            Ok(v) => {
                self.rows.push((
                    figure,
                    format!(
                        "{:.0} spans/s (decode alone {:.0} spans/s); {:.0} of {:.0} joined to \
                         their connection, {:.0} declared-vs-observed violations",
                        num(&v, "spans_per_sec"),
                        num(&v, "decode_spans_per_sec"),
                        num(&v, "joined"),
                        num(&v, "spans"),
                        num(&v, "violations"),
                    ),
                    target,
                    "-",
                ));
                self.json.push(("receive".into(), v));
            }
            Err(e) => self
                .rows
                .push((figure, format!("failed: {e:#}"), target, "not measured")),
        }
    }

    /// No figures (tests of the report).
    #[cfg(test)]
    pub fn none() -> Self {
        Self {
            rows: Vec::new(),
            json: Vec::new(),
        }
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The benchmarks' own JSON lines, by name.
    pub fn json(&self) -> String {
        let map: serde_json::Map<String, Value> = self.json.iter().cloned().collect();
        Value::Object(map).to_string()
    }
}
