//! OTLP export: ended spans as traces, violations and loss reports as log records, to an
//! OpenTelemetry Collector (or anything that speaks OTLP/HTTP protobuf or OTLP/gRPC).
//!
//! The pipeline hands items over without waiting ([`Exporter::send`]); a task batches them
//! (up to `batch` items or 200 ms), maps them to protobuf ([`map`]), encodes each batch once
//! and sends it ([`client`]), up to `in_flight` requests at a time, retrying with exponential
//! backoff and jitter what the receiver says to retry. The queue is bounded, so a stalled
//! receiver costs bounded memory (the queue, plus `in_flight` encoded batches): what does not
//! fit, what the receiver refuses and what is still unsent at shutdown is counted per signal
//! and reason, in metrics and, through the pipeline, as loss records in the feed.
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod map;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::{logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans},
};
use prometheus_client::metrics::counter::Counter;
use tokio::{
    sync::{mpsc, watch},
    task::{JoinHandle, JoinSet},
};

pub(crate) use self::config::{OtlpConfig, OtlpSettings};
use self::{
    client::{ClientError, OtlpClient, Outcome, Payload},
    config::Protocol,
};
/// The two OTLP signals Seam sends.
pub(crate) use crate::model::vocab::Signal;
use crate::{
    detect::Violation,
    metrics::Metrics,
    model::{clock::UnixNanos, spans::Span},
    output::{Loss, backoff::Backoff},
};

/// What the exporter takes.
#[derive(Debug)]
pub(crate) enum Item {
    Span(Box<Span>),
    Violation(Box<Violation>),
    Loss(Loss),
}

/// Why items were dropped (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The queue was full (the receiver is slower than Seam, or down).
    QueueFull,
    /// Every attempt failed with a retryable error.
    RetriesExhausted,
    /// The receiver refused them (a client error, or a partial success).
    Rejected,
    /// Still queued or in flight when the agent stopped and the grace period ran out.
    Shutdown,
}

impl DropReason {
    const ALL: [DropReason; 4] = [
        Self::QueueFull,
        Self::RetriesExhausted,
        Self::Rejected,
        Self::Shutdown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
        }
    }

    /// The same reason as the feed sinks name it (the `reason` label).
    fn label(self) -> crate::model::vocab::DropReason {
        use crate::model::vocab::DropReason as Feed;
        match self {
            Self::QueueFull => Feed::QueueFull,
            Self::RetriesExhausted => Feed::RetriesExhausted,
            Self::Rejected => Feed::Rejected,
            Self::Shutdown => Feed::Shutdown,
        }
    }
}

/// Counters shared by the exporter's handle and task.
#[derive(Debug)]
struct Counts {
    exported: [Counter; 2],
    dropped: [[Counter; 4]; 2],
    /// Dropped totals per signal, for loss reports.
    dropped_total: [AtomicU64; 2],
}

impl Counts {
    fn new(metrics: &Metrics) -> Self {
        let signals = [Signal::Traces, Signal::Logs];
        Self {
            exported: signals.map(|s| metrics.output.otlp_exported(s)),
            dropped: signals
                .map(|s| DropReason::ALL.map(|r| metrics.output.otlp_dropped(s, r.label()))),
            dropped_total: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn index(signal: Signal) -> usize {
        match signal {
            Signal::Traces => 0,
            Signal::Logs => 1,
        }
    }

    /// Counts `n` items of `signal` dropped for `reason`, `loss` of them loss records. Every
    /// drop is in the metric; only the others are reported again as losses, so that a loss
    /// record the receiver never gets does not breed another, forever, while it is down.
    fn lose(&self, signal: Signal, reason: DropReason, n: u64, loss: u64) {
        if n == 0 {
            return;
        }
        let i = Self::index(signal);
        self.dropped[i][reason as usize].inc_by(n);
        self.dropped_total[i].fetch_add(n.saturating_sub(loss), Ordering::Relaxed);
        tracing::warn!(
            signal = signal.as_str(),
            reason = reason.as_str(),
            dropped = n,
            "OTLP export dropped records"
        );
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The pipeline's handle on the export task.
pub(crate) struct Exporter {
    tx: mpsc::Sender<Item>,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
    /// The shutdown deadline, once the agent stops.
    stop: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
}

/// How long the task waits for more items before sending a partial batch.
const LINGER: Duration = Duration::from_millis(200);

impl Exporter {
    /// Starts the export task for `config`, with `resource` on every request.
    pub(crate) fn start(
        config: &OtlpConfig,
        resource: Resource,
        metrics: &Metrics,
    ) -> Result<Self, ExportError> {
        let client = OtlpClient::new(config)?;
        let (tx, rx) = mpsc::channel(config.queue);
        let counts = Arc::new(Counts::new(metrics));
        let (stop, stop_rx) = tokio::sync::watch::channel(None);
        tracing::info!(
            protocol = %config.protocol,
            traces = %redact(&config.traces, config.protocol),
            "exporting spans and violations over OTLP"
        );
        let worker = Worker {
            client: Arc::new(client),
            resource,
            batch: config.batch,
            attempts: config.attempts,
            in_flight: JoinSet::new(),
            max_in_flight: config.in_flight.max(1),
            counts: counts.clone(),
            rx,
            stop: stop_rx,
        };
        Ok(Self {
            tx,
            counts,
            task: tokio::spawn(worker.run()),
            stop,
        })
    }

    /// Queues `item` without waiting; a full queue drops it (counted).
    pub(crate) fn send(&self, item: Item) {
        let signal = match item {
            Item::Span(_) => Signal::Traces,
            Item::Violation(_) | Item::Loss(_) => Signal::Logs,
        };
        let loss = u64::from(matches!(item, Item::Loss(_)));
        if self.tx.try_send(item).is_err() {
            self.counts.lose(signal, DropReason::QueueFull, 1, loss);
        }
    }

    /// Queues `item`, waiting for room (the benchmark of the export task's throughput; the
    /// pipeline never waits, see [`Exporter::send`]).
    pub(crate) async fn send_waiting(&self, item: Item) {
        let _ = self.tx.send(item).await;
    }

    /// Records dropped so far, per signal.
    pub(crate) fn dropped(&self) -> [(Signal, u64); 2] {
        [Signal::Traces, Signal::Logs].map(|s| {
            (
                s,
                self.counts.dropped_total[Counts::index(s)].load(Ordering::Relaxed),
            )
        })
    }

    /// Starts shutting down: what is queued, and the batch in flight, are sent until
    /// `deadline`; what is left then is counted as dropped. Returns at once; see
    /// [`Exporter::join`].
    pub(crate) fn stop(&self, deadline: std::time::Instant) {
        let _ = self
            .stop
            .send(Some(tokio::time::Instant::from_std(deadline)));
    }

    /// Waits for the export task to end (after [`Exporter::stop`]); returns the records
    /// dropped in all, per signal.
    pub(crate) async fn join(self) -> [(Signal, u64); 2] {
        let counts = self.counts.clone();
        drop(self.tx);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "OTLP export task failed");
        }
        [Signal::Traces, Signal::Logs].map(|s| {
            (
                s,
                counts.dropped_total[Counts::index(s)].load(Ordering::Relaxed),
            )
        })
    }
}

/// The URL without its path and query (which may carry tokens).
fn redact(url: &str, protocol: Protocol) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let host_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    match protocol {
        Protocol::Grpc => url[..host_end].to_owned(),
        Protocol::HttpProtobuf => format!("{}/...", &url[..host_end]),
    }
}

struct Worker {
    client: Arc<OtlpClient>,
    resource: Resource,
    batch: usize,
    attempts: u32,
    /// Requests being delivered (each with its retries), at most `max_in_flight`.
    in_flight: JoinSet<()>,
    max_in_flight: usize,
    counts: Arc<Counts>,
    rx: mpsc::Receiver<Item>,
    stop: watch::Receiver<Option<tokio::time::Instant>>,
}

/// A batch being filled.
#[derive(Default)]
struct Batch {
    spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    logs: Vec<LogRecord>,
    /// How many of `logs` are loss records.
    loss_logs: u64,
}

/// Resolves once shutdown has started and its deadline has passed.
async fn past_deadline(stop: &mut watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        let deadline = *stop.borrow();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        if stop.changed().await.is_err() {
            // The handle is gone without a deadline: nothing will ever cut delivery short.
            std::future::pending::<()>().await;
        }
    }
}

impl Worker {
    async fn run(mut self) {
        let mut batch = Batch::default();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if self.stop.borrow().is_some() {
                break;
            }
            let linger = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(item) => {
                        self.add(&mut batch, item);
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                        if batch.spans.len() >= self.batch || batch.logs.len() >= self.batch {
                            self.flush(&mut batch).await;
                            deadline = None;
                        }
                    }
                    None => break,
                },
                () = linger => {
                    self.flush(&mut batch).await;
                    deadline = None;
                }
                _ = self.stop.changed() => {}
            }
        }
        // Shutdown: send what is left until the deadline (every attempt watches it), count
        // the rest.
        while let Ok(item) = self.rx.try_recv() {
            self.add(&mut batch, item);
        }
        let left = batch.spans.len() + batch.logs.len();
        if left > 0 {
            self.flush(&mut batch).await;
        }
        while self.in_flight.join_next().await.is_some() {}
    }

    fn add(&self, batch: &mut Batch, item: Item) {
        let now = UnixNanos::now().as_u64();
        match item {
            Item::Span(s) => batch.spans.push(map::span(&s)),
            Item::Violation(v) => batch.logs.push(map::violation(&v, now)),
            Item::Loss(l) => {
                batch.logs.push(map::loss(&l, now));
                batch.loss_logs += 1;
            }
        }
    }

    /// Sends both signals' batches (each with its retries, cut short by the shutdown deadline).
    async fn flush(&mut self, batch: &mut Batch) {
        if !batch.spans.is_empty() {
            let n = batch.spans.len() as u64;
            let payload = Payload::traces(&ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(self.resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(map::scope()),
                        spans: std::mem::take(&mut batch.spans),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            });
            self.dispatch(Signal::Traces, payload, n, 0).await;
        }
        if !batch.logs.is_empty() {
            let n = batch.logs.len() as u64;
            let loss = std::mem::take(&mut batch.loss_logs);
            let payload = Payload::logs(&ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(self.resource.clone()),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(map::scope()),
                        log_records: std::mem::take(&mut batch.logs),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            });
            self.dispatch(Signal::Logs, payload, n, loss).await;
        }
    }

    /// Starts delivering a batch once fewer than `max_in_flight` are in flight.
    async fn dispatch(&mut self, signal: Signal, payload: Payload, n: u64, loss: u64) {
        while self.in_flight.try_join_next().is_some() {}
        while self.in_flight.len() >= self.max_in_flight {
            self.in_flight.join_next().await;
        }
        let delivery = Delivery {
            client: self.client.clone(),
            counts: self.counts.clone(),
            stop: self.stop.clone(),
            attempts: self.attempts,
        };
        self.in_flight
            .spawn(delivery.deliver(signal, payload, n, loss));
    }
}

/// What one batch's delivery needs.
struct Delivery {
    client: Arc<OtlpClient>,
    counts: Arc<Counts>,
    stop: watch::Receiver<Option<tokio::time::Instant>>,
    attempts: u32,
}

impl Delivery {
    /// Delivers `n` items (`loss` of them loss records), retrying what the receiver says to
    /// retry; an attempt or a pause in progress when the shutdown deadline passes ends there
    /// (a receiver that hangs cannot hold the agent's stop).
    async fn deliver(mut self, signal: Signal, payload: Payload, n: u64, loss: u64) {
        let backoff = Backoff::default();
        for attempt in 0..self.attempts {
            let outcome = tokio::select! {
                outcome = self.client.send(&payload) => outcome,
                () = past_deadline(&mut self.stop) => {
                    self.counts.lose(signal, DropReason::Shutdown, n, loss);
                    return;
                }
            };
            match outcome {
                Outcome::Accepted { rejected } => {
                    self.counts.exported[Counts::index(signal)].inc_by(n.saturating_sub(rejected));
                    // Which items were refused is not said: count loss records among them
                    // first, so a receiver refusing them cannot make loss reports breed.
                    let rejected = rejected.min(n);
                    self.counts
                        .lose(signal, DropReason::Rejected, rejected, loss.min(rejected));
                    return;
                }
                Outcome::Rejected { reason } => {
                    tracing::warn!(signal = signal.as_str(), %reason, "OTLP receiver refused a batch");
                    self.counts.lose(signal, DropReason::Rejected, n, loss);
                    return;
                }
                Outcome::Retry { reason, after } => {
                    let wait = after
                        .unwrap_or_else(|| backoff.delay(attempt, rand::random::<f64>()))
                        .min(Duration::from_secs(30));
                    tracing::debug!(signal = signal.as_str(), %reason, ?wait, attempt, "OTLP export will be retried");
                    if attempt + 1 == self.attempts {
                        break;
                    }
                    let deadline = *self.stop.borrow();
                    if deadline.is_some_and(|d| tokio::time::Instant::now() + wait >= d) {
                        self.counts.lose(signal, DropReason::Shutdown, n, loss);
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = past_deadline(&mut self.stop) => {
                            self.counts.lose(signal, DropReason::Shutdown, n, loss);
                            return;
                        }
                    }
                }
            }
        }
        self.counts
            .lose(signal, DropReason::RetriesExhausted, n, loss);
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::model::{clock::UnixNanos, loss::LossSubject, vocab::ProbeFamily};

    fn loss() -> Item {
        Item::Loss(Loss {
            time: UnixNanos(1),
            node: "n".into(),
            subject: LossSubject::Probe(ProbeFamily::Process),
            lost: 1,
            lost_total: 1,
            message: "m".into(),
        })
    }

    /// A receiver that accepts connections and never answers: an export attempt hangs for its
    /// whole timeout, and stopping must not wait for it.
    #[test]
    fn a_receiver_that_never_answers_does_not_hold_up_the_stop() {
        let mute = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = mute.local_addr().unwrap().port();
        let settings = OtlpSettings {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            timeout_ms: Some(60_000),
            queue: 2,
            batch: 1,
            attempts: 6,
            ..OtlpSettings::default()
        };
        let config = settings.resolve().unwrap().unwrap();
        let metrics = Metrics::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dropped = runtime.block_on(async {
            let exporter = Exporter::start(&config, Resource::default(), &metrics).unwrap();
            // One in flight (hanging), two queued, the rest dropped: loss records only.
            for _ in 0..6 {
                exporter.send(loss());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let started = std::time::Instant::now();
            exporter.stop(started + Duration::from_millis(300));
            let dropped = exporter.join().await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "stopped at the deadline, not after the 60 s timeout: {:?}",
                started.elapsed()
            );
            dropped
        });
        drop(mute);
        let count = |reason: DropReason| {
            metrics
                .output
                .otlp_dropped(Signal::Logs, reason.label())
                .get()
        };
        assert_eq!(
            count(DropReason::QueueFull) + count(DropReason::Shutdown),
            6,
            "every item counted"
        );
        assert!(
            count(DropReason::Shutdown) >= 1,
            "the hung batch is dropped at shutdown"
        );
        assert_eq!(
            dropped,
            [(Signal::Traces, 0), (Signal::Logs, 0)],
            "undeliverable loss records are not reported as losses again"
        );
    }
}
