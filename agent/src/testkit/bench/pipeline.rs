//! `seam workload bench pipeline`: the agent's user-space stages on one thread, fed records as
//! the probes write them: decode, attribute, spans, rules, feed. Records are generated up
//! front, so only the agent's work is timed. Prints one JSON line.
use std::{path::PathBuf, time::Instant};

use anyhow::Result;

use super::{node::Node, records::Generator};
use crate::{kernel::events::decode, pipeline::input::Input};

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

#[allow(clippy::print_stdout)]
pub(crate) fn run(args: &PipelineArgs) -> Result<()> {
    let mut node = Node::new("pipeline", &args.rules, args.tenants, false)?;
    let feed = node.feed.clone();
    let pipeline = &mut node.pipeline;

    // Records first: generating them is not the agent's work.
    let mut generator = Generator::new(node.tenants.clone(), args.cross);
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
