//! `seam workload bench otlp-receive`: application spans received and joined to the kernel's
//! view on one thread. A synthetic node first sees `--connections` TCP connections (probe
//! records through the pipeline); then OTLP requests, encoded up front as an application's
//! SDK would send them, are decoded (protobuf, then Seam's checks) and joined: each a client
//! span of one of those connections, from the process that made it, one in `--mismatch`
//! declaring a tenant other than its process's. Prints one JSON line.
use std::{path::PathBuf, time::Instant};

use anyhow::{Result, bail};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind},
};
use prost::Message as _;

use super::{
    node::Node,
    records::{ConnectionMeta, Generator},
};
use crate::{
    kernel::events::decode,
    model::{clock::WallClock, vocab::JoinOutcome},
    pipeline::input::Input,
};

#[derive(Debug, clap::Args)]
pub(crate) struct ReceiveArgs {
    /// Rules directories loaded with the bench's tenants (e.g. the shipped rules).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// Application spans received.
    #[arg(long, default_value_t = 200_000)]
    spans: u64,
    /// Spans per OTLP request.
    #[arg(long, default_value_t = 512)]
    per_request: usize,
    /// Kernel connections seen before the application spans arrive (what joins search).
    #[arg(long, default_value_t = 10_000)]
    connections: u64,
    /// One span in this many declares a tenant other than its process's (a violation).
    #[arg(long, default_value_t = 20)]
    mismatch: u64,
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// The client span application `i` sent for connection `c`.
fn app_span(i: u64, c: &ConnectionMeta, clock: &WallClock, declared: usize) -> Span {
    let start = clock.unix(c.start_ns).as_u64();
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(i + 1).to_be_bytes());
    trace_id[15] = 1;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (i + 1).to_be_bytes().to_vec(),
        name: "SELECT orders".to_owned(),
        kind: SpanKind::Client as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        attributes: vec![
            kv("server.address", Value::StringValue("127.0.0.1".into())),
            kv("server.port", Value::IntValue(i64::from(c.server_port))),
            kv("process.pid", Value::IntValue(i64::from(c.client_pid))),
            kv("tenant.id", Value::StringValue(format!("t{declared}"))),
            kv("db.system", Value::StringValue("postgresql".into())),
        ],
        ..Span::default()
    }
}

#[allow(clippy::print_stdout)]
pub(crate) fn run(args: &ReceiveArgs) -> Result<()> {
    if args.per_request == 0 || args.connections == 0 {
        bail!("--per-request and --connections must be at least 1");
    }
    let mut node = Node::new("otlp-receive", &args.rules, 4, false)?;
    let tenants = node.tenants.len();
    // Live times, so the join's windows apply as they would on a running node.
    let mut generator =
        Generator::new(node.tenants.clone(), 20).starting_at(crate::model::clock::boot_ns());
    let mut records = generator.execs();
    let mut connections = Vec::new();
    for _ in 0..args.connections {
        records.extend(generator.connection());
        connections.extend(generator.last_connection());
    }
    for chunk in records.chunks(4096) {
        let batch = chunk.iter().map(|r| decode(r, true)).collect();
        node.pipeline.handle(Input::Kernel(batch));
    }

    // Requests first: building them is the application's work.
    let clock = WallClock::now();
    let mismatch = args.mismatch.max(1);
    let mut bodies = Vec::new();
    let mut i = 0u64;
    while i < args.spans {
        let n = (args.per_request as u64).min(args.spans - i);
        let spans = (i..i + n)
            .map(|i| {
                let c = &connections[(i % connections.len() as u64) as usize];
                let declared = if i % mismatch == mismatch - 1 {
                    (c.client_tenant + 1) % tenants
                } else {
                    c.client_tenant
                };
                app_span(i, c, &clock, declared)
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("orders".into()))],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        bodies.push(request.encode_to_vec());
        i += n;
    }
    let bytes: usize = bodies.iter().map(Vec::len).sum();

    let violations_before = node.pipeline.stats.report().counters.violations;
    let decode_start = Instant::now();
    let mut decoded = 0usize;
    for body in &bodies {
        if let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) {
            decoded += crate::receive::decode::decode(request, "tenant.id", None)
                .0
                .len();
        }
    }
    let decode_elapsed = decode_start.elapsed();

    let start = Instant::now();
    for body in &bodies {
        let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) else {
            bail!("an encoded request did not decode");
        };
        let (spans, _) = crate::receive::decode::decode(request, "tenant.id", None);
        node.pipeline.handle(Input::App(spans));
    }
    let elapsed = start.elapsed();
    let outcome = |o| node.metrics.pipeline.app_spans(o).get();
    let (joined, process, unmatched) = (
        outcome(JoinOutcome::Joined),
        outcome(JoinOutcome::Process),
        outcome(JoinOutcome::Unmatched),
    );
    let violations = node.pipeline.stats.report().counters.violations - violations_before;
    let _ = node.pipeline.finish(Instant::now());
    println!(
        "{}",
        serde_json::json!({
            "spans": args.spans,
            "decoded": decoded,
            "per_request": args.per_request,
            "kernel_connections": connections.len(),
            "elapsed_ns": elapsed.as_nanos() as u64,
            "spans_per_sec": args.spans as f64 / elapsed.as_secs_f64(),
            "decode_spans_per_sec": decoded as f64 / decode_elapsed.as_secs_f64(),
            "request_bytes_per_span": bytes as f64 / args.spans.max(1) as f64,
            "joined": joined,
            "process_only": process,
            "unmatched": unmatched,
            "still_waiting": args.spans.saturating_sub(joined + process + unmatched),
            "violations": violations,
        })
    );
    Ok(())
}
