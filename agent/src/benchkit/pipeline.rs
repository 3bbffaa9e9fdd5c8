//! `seam workload bench pipeline`: the agent's user-space stages on one thread, fed records as
//! the probes write them: decode, attribute, spans, rules, feed. Records are generated up
//! front, so only the agent's work is timed. Prints one JSON line.
use std::{path::PathBuf, sync::Arc, time::Instant};

use anyhow::{Context as _, Result};
use seam_common::MAX_TENANT_CGROUPS;

use super::records::{Generator, Tenant};
use crate::{
    attribution::{Attributor, CgroupRegistry, LocalAddrs, ProcessTable, TenantFilter},
    config::RuleSet,
    events::decode,
    input::Input,
    metrics::{Metrics, PipelineMetrics},
    pipeline::{Pipeline, PipelineOptions},
    sinks::{SinkOptions, Sinks},
};

#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    /// Rules directories loaded with the bench's tenants (e.g. the shipped rules).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// Events to push through.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Tenants (each with a cgroup and a directory).
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// One connection and one file open in this many crosses tenants (a violation).
    #[arg(long, default_value_t = 20)]
    cross: u64,
    /// Records per batch (what the reader hands over at once).
    #[arg(long, default_value_t = 4096)]
    batch: usize,
}

/// The kernel filter, as nothing: the bench has no kernel.
struct NoFilter;

impl TenantFilter for NoFilter {
    fn watch(&mut self, _cgroup_id: u64, _tenant: &str) -> Result<(), String> {
        Ok(())
    }
    fn unwatch(&mut self, _cgroup_id: u64) {}
}

#[allow(clippy::print_stdout)]
pub(crate) fn run(args: &PipelineArgs) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("seam-pipeline-bench-{}", std::process::id()));
    let _cleanup = Cleanup(tmp.clone());
    let cgroups = tmp.join("cgroup");
    let procfs = tmp.join("proc");
    std::fs::create_dir_all(&procfs)?;
    let mut tenants = Vec::new();
    let mut toml = String::new();
    for i in 0..args.tenants.min(MAX_TENANT_CGROUPS as usize) {
        let dir = cgroups.join(format!("tenant-{i}"));
        std::fs::create_dir_all(&dir)?;
        let id = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dir)?);
        let path = format!("/bench/t{i}");
        toml.push_str(&format!(
            "[[tenant]]\nname = \"t{i}\"\ncgroups = [\"tenant-{i}\"]\npaths = [\"{path}\"]\n\n"
        ));
        tenants.push(Tenant {
            cgroup_id: id,
            dir: path,
        });
    }
    let rules_dir = tmp.join("rules");
    std::fs::create_dir_all(&rules_dir)?;
    std::fs::write(rules_dir.join("zz-bench-tenants.toml"), toml)?;
    let mut dirs = args.rules.clone();
    dirs.push(rules_dir);
    let rules = RuleSet::load_dirs(&dirs).map_err(|e| anyhow::anyhow!("{e}"))?;

    let metrics = Arc::new(Metrics::new());
    let feed = tmp.join("feed.jsonl");
    let sink = Sinks::open(
        &SinkOptions {
            stdout: false,
            feed_file: Some(feed.clone()),
            ..SinkOptions::default()
        },
        &metrics,
    )
    .context("feed")?;
    let attributor = Attributor {
        cgroups: CgroupRegistry::new(cgroups),
        processes: ProcessTable::new([0; 16], procfs),
        local: LocalAddrs::current(),
    };
    let mut pipeline = Pipeline::new(
        rules,
        attributor,
        sink,
        Box::new(NoFilter),
        PipelineOptions {
            node: "bench".into(),
            max_open_spans: 100_000,
            own_ports: Vec::new(),
            live_hooks: Vec::new(),
        },
        PipelineMetrics::new(metrics),
    );
    pipeline.handle(Input::CgroupsChanged);

    // Records first: generating them is not the agent's work.
    let mut generator = Generator::new(tenants, args.cross);
    let mut records = generator.execs();
    while (records.len() as u64) < args.events {
        records.extend(generator.connection());
        records.push(generator.open());
        records.push(generator.open());
        records.push(generator.open());
        records.push(generator.open());
    }
    records.truncate(args.events as usize);

    let decode_start = Instant::now();
    let mut decoded = 0u64;
    for record in &records {
        decoded += u64::from(decode(record, true).is_ok());
    }
    let decode_ns = decode_start.elapsed().as_nanos() as f64 / decoded.max(1) as f64;

    let start = Instant::now();
    for chunk in records.chunks(args.batch.max(1)) {
        let batch = chunk.iter().map(|r| decode(r, true)).collect();
        pipeline.handle(Input::Kernel(batch));
    }
    pipeline.handle(Input::Tick);
    let elapsed = start.elapsed();
    let _ = pipeline.finish(std::time::Instant::now());
    let stats = pipeline.stats.report();
    let events = stats.counters.events_total;
    let feed_lines = std::fs::read_to_string(&feed).map_or(0, |t| t.lines().count());
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "elapsed_ns": elapsed.as_nanos() as u64,
            "events_per_sec": events as f64 / elapsed.as_secs_f64(),
            "ns_per_event": elapsed.as_nanos() as f64 / events.max(1) as f64,
            "decode_ns_per_event": decode_ns,
            "spans": stats.counters.spans + stats.counters.file_spans,
            "violations": stats.counters.violations,
            "feed_lines": feed_lines,
            "decode_errors": stats.counters.decode_errors,
        })
    );
    Ok(())
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
