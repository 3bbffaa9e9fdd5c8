//! `seam workload bench otlp-export`: the OTLP exporter's spans/s on one core to a local
//! receiver (OTLP/HTTP protobuf or OTLP/gRPC), and (`--stalled`) its memory against a receiver
//! that accepts connections and never answers. The spans are the pipeline's own: generated
//! probe records run through a synthetic node with `--feed-spans`, read back from the feed.
//! Prints one JSON line.
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::{Response, body::Bytes, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message as _;

use super::{node::Node, records::Generator};
use crate::{
    kernel::events::decode,
    metrics::Metrics,
    model::{
        spans::Span,
        vocab::{DropReason, Signal},
    },
    output::otlp::{Exporter, Item, OtlpSettings, config::Protocol},
    pipeline::input::Input,
};

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Rules directories loaded with the bench's tenants (e.g. the shipped rules).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// Spans to export (rounded up to whole batches).
    #[arg(long, default_value_t = 400_000)]
    spans: u64,
    #[arg(long, value_enum, default_value_t = Protocol::HttpProtobuf)]
    protocol: Protocol,
    /// Spans per export request (the agent's default).
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Items the export queue holds (the agent's default).
    #[arg(long, default_value_t = 8192)]
    queue: usize,
    /// Requests in flight at once (the agent's default).
    #[arg(long, default_value_t = crate::output::otlp::config::DEFAULT_IN_FLIGHT)]
    in_flight: usize,
    /// Against a receiver that never answers: offer --spans without waiting and report memory.
    #[arg(long)]
    stalled: bool,
}

/// Spans the pipeline ends for generated records: connections, file accesses, processes.
fn span_pool(rules: &[PathBuf]) -> Result<Vec<Span>> {
    let mut node = Node::new("otlp-export", rules, 4, true)?;
    let mut generator = Generator::new(node.tenants.clone(), 20);
    let mut records = generator.execs();
    for _ in 0..5_000 {
        records.extend(generator.connection());
        records.push(generator.open());
        records.push(generator.open());
    }
    for chunk in records.chunks(4096) {
        let batch = chunk.iter().map(|r| decode(r, true)).collect();
        node.pipeline.handle(Input::Kernel(batch));
    }
    let _ = node.pipeline.finish(Instant::now());
    let text = std::fs::read_to_string(&node.feed).context("reading the bench feed")?;
    let spans: Vec<Span> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "span")
        .filter_map(|r| serde_json::from_value(r["span"].clone()).ok())
        .collect();
    if spans.is_empty() {
        bail!("the pipeline ended no spans to export");
    }
    Ok(spans)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// This process's resident set, and its peak, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What the local receiver got.
#[derive(Default)]
struct Received {
    spans: AtomicU64,
    bytes: AtomicU64,
}

impl Received {
    fn count(&self, request: &ExportTraceServiceRequest, bytes: usize) {
        let n: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(n as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

struct GrpcReceiver(Arc<Received>);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.0.count(&request, request.encoded_len());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A receiver on its own thread that decodes every request (so what arrived is counted, not
/// assumed) and answers 200 / OK.
fn start_receiver(protocol: Protocol, received: Arc<Received>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the receiver")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("otlp-receiver".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                match protocol {
                    Protocol::Grpc => {
                        let _ = tonic::transport::Server::builder()
                            .add_service(
                                TraceServiceServer::new(GrpcReceiver(received))
                                    .max_decoding_message_size(64 << 20),
                            )
                            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(
                                listener,
                            ))
                            .await;
                    }
                    Protocol::HttpProtobuf => loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let received = received.clone();
                        tokio::spawn(async move {
                            let service = service_fn(
                                move |request: hyper::Request<hyper::body::Incoming>| {
                                    let received = received.clone();
                                    async move {
                                        let body: Bytes = request
                                            .into_body()
                                            .collect()
                                            .await
                                            .map(http_body_util::Collected::to_bytes)
                                            .unwrap_or_default();
                                        let status = match ExportTraceServiceRequest::decode(
                                            body.as_ref(),
                                        ) {
                                            Ok(r) => {
                                                received.count(&r, body.len());
                                                200
                                            }
                                            Err(_) => 400,
                                        };
                                        let answer =
                                            ExportTraceServiceResponse::default().encode_to_vec();
                                        Response::builder()
                                            .status(status)
                                            .header("content-type", "application/x-protobuf")
                                            .body(Full::new(Bytes::from(answer)))
                                    }
                                },
                            );
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                        });
                    },
                }
            });
        })
        .context("starting the receiver thread")?;
    Ok(addr)
}

fn exporter_settings(args: &ExportArgs, addr: SocketAddr, timeout_ms: u64) -> OtlpSettings {
    OtlpSettings {
        endpoint: Some(format!("http://{addr}")),
        protocol: Some(args.protocol.to_string()),
        timeout_ms: Some(timeout_ms),
        queue: args.queue,
        batch: args.batch,
        in_flight: args.in_flight,
        attempts: 6,
        ..OtlpSettings::default()
    }
}

fn resource() -> opentelemetry_proto::tonic::resource::v1::Resource {
    crate::output::otlp::map::resource("seam", "bench", &std::collections::BTreeMap::new())
}

#[allow(clippy::print_stdout)]
pub(crate) fn export(args: &ExportArgs) -> Result<()> {
    if args.batch == 0 || args.queue == 0 {
        bail!("--batch and --queue must be at least 1");
    }
    let pool = span_pool(&args.rules)?;
    if args.stalled {
        return stalled(args, &pool);
    }
    let batch = args.batch as u64;
    // Whole batches: a partial last batch would wait out the exporter's linger.
    let spans = args.spans.div_ceil(batch) * batch;
    let received = Arc::new(Received::default());
    let addr = start_receiver(args.protocol, received.clone())?;
    let config = exporter_settings(args, addr, 10_000)
        .resolve()?
        .context("no OTLP endpoint")?;
    let metrics = Metrics::new();
    // One thread: the export task, its client and the hand-over all run here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (elapsed, cpu, dropped) = runtime.block_on(async {
        let exporter = Exporter::start(&config, resource(), &metrics)?;
        let cpu0 = thread_cpu();
        let start = Instant::now();
        for i in 0..spans {
            let span = &pool[(i % pool.len() as u64) as usize];
            exporter
                .send_waiting(Item::Span(Box::new(span.clone())))
                .await;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while received.spans.load(Ordering::Relaxed) < spans && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = start.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu0);
        exporter.stop(Instant::now() + Duration::from_secs(5));
        let dropped = exporter.join().await;
        anyhow::Ok((elapsed, cpu, dropped[0].1))
    })?;
    let got = received.spans.load(Ordering::Relaxed);
    if got < spans {
        bail!("the receiver got {got} of {spans} spans ({dropped} dropped)");
    }
    println!(
        "{}",
        serde_json::json!({
            "protocol": args.protocol.to_string(),
            "spans": spans,
            "received": got,
            "dropped": dropped,
            "batch": args.batch,
            "in_flight": args.in_flight,
            "elapsed_ns": elapsed.as_nanos() as u64,
            "spans_per_sec": spans as f64 / elapsed.as_secs_f64(),
            "cpu_s": cpu.as_secs_f64(),
            "spans_per_cpu_s": spans as f64 / cpu.as_secs_f64().max(1e-9),
            "wire_bytes_per_span": received.bytes.load(Ordering::Relaxed) as f64 / got.max(1) as f64,
            "distinct_spans": pool.len(),
        })
    );
    Ok(())
}

/// A receiver that accepts connections and never reads or answers.
fn mute_receiver() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the receiver")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("otlp-mute".into())
        .spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        })?;
    Ok(addr)
}

/// Offers `--spans` spans as fast as the pipeline would, against a stalled receiver: the queue
/// fills, the rest is dropped (counted), and memory stays where the queue bounds it.
#[allow(clippy::print_stdout)]
fn stalled(args: &ExportArgs, pool: &[Span]) -> Result<()> {
    let addr = mute_receiver()?;
    let config = exporter_settings(args, addr, 60_000)
        .resolve()?
        .context("no OTLP endpoint")?;
    let metrics = Metrics::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (before, _) = rss_kib();
    let tenth = (args.spans / 10).max(1);
    let (at_tenth, at_end, peak) = runtime.block_on(async {
        let exporter = Exporter::start(&config, resource(), &metrics)?;
        let mut at_tenth = 0;
        for i in 0..args.spans {
            let span = &pool[(i % pool.len() as u64) as usize];
            exporter.send(Item::Span(Box::new(span.clone())));
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
            if i + 1 == tenth {
                at_tenth = rss_kib().0;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (at_end, peak) = rss_kib();
        exporter.stop(Instant::now() + Duration::from_millis(200));
        let _ = exporter.join().await;
        anyhow::Ok((at_tenth, at_end, peak))
    })?;
    let dropped = |reason| metrics.output.otlp_dropped(Signal::Traces, reason).get();
    println!(
        "{}",
        serde_json::json!({
            "protocol": args.protocol.to_string(),
            "offered": args.spans,
            "queue": args.queue,
            "batch": args.batch,
            "in_flight": args.in_flight,
            "dropped_queue_full": dropped(DropReason::QueueFull),
            "dropped_shutdown": dropped(DropReason::Shutdown),
            "rss_kib_before": before,
            "rss_kib_after_tenth": at_tenth,
            "rss_kib_after_all": at_end,
            "rss_kib_peak": peak,
            "growth_kib": at_end.saturating_sub(before),
            "growth_kib_last_nine_tenths": at_end.saturating_sub(at_tenth),
        })
    );
    Ok(())
}
