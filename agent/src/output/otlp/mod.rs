//! OTLP export: ended spans as traces, violations and loss reports as log records, to an
//! OpenTelemetry Collector (or anything that speaks OTLP/HTTP protobuf or OTLP/gRPC).
//!
//! The pipeline hands items over without waiting ([`Exporter::send`]) to the one delivery
//! worker ([`delivery`](crate::output::delivery)), which batches them per signal (up to
//! `batch` items or 200 ms), has them mapped to protobuf ([`map`]) and encoded once per batch
//! ([`Otlp::encode`]), and sends them ([`client`]) up to `in_flight` requests at a time,
//! retrying what the receiver says to retry. The queue is bounded, so a stalled receiver costs
//! bounded memory (the queue, plus `in_flight` + 1 batches): what does not fit, what the
//! receiver refuses and what is still unsent at shutdown is counted per signal and reason, in
//! metrics and, through the pipeline, as loss records in the feed.
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
    logs::v1::{ResourceLogs, ScopeLogs},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans},
};
use prometheus_client::metrics::counter::Counter;

use self::client::{Answer, ClientError, OtlpClient, Payload, SendError};
pub(crate) use self::config::{OtlpConfig, OtlpSettings};
/// The two OTLP signals Seam sends.
pub(crate) use crate::model::vocab::Signal;
use crate::{
    detect::Violation,
    metrics::Metrics,
    model::{clock::UnixNanos, spans::Span},
    output::{
        Loss,
        delivery::{
            self, Delivery, DeliveryError, DropReason, RetryAction, RetryLogic, RetryPolicy,
            Settings, Tally,
        },
    },
};

/// What the exporter takes.
#[derive(Debug)]
pub(crate) enum Item {
    Span(Box<Span>),
    Violation(Box<Violation>),
    Loss(Loss),
}

/// A signal's slot in per-signal arrays.
fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Logs => 1,
    }
}

/// The reasons an export can drop items for (the `reason` labels of
/// `seam_otlp_dropped_total`, each exported from 0).
const DROP_REASONS: [DropReason; 4] = [
    DropReason::QueueFull,
    DropReason::RetriesExhausted,
    DropReason::Rejected,
    DropReason::Shutdown,
];

/// The exporter's counts, per signal.
#[derive(Debug)]
pub(crate) struct Counts {
    exported: [Counter; 2],
    /// Per signal, per [`DropReason`] (`WriteError`'s is a detached counter: export never
    /// writes to a file).
    dropped: [[Counter; DropReason::ALL.len()]; 2],
    /// Dropped totals per signal but for loss records, for loss reports.
    dropped_total: [AtomicU64; 2],
}

impl Counts {
    fn new(metrics: &Metrics) -> Self {
        let signals = [Signal::Traces, Signal::Logs];
        Self {
            exported: signals.map(|s| metrics.output.otlp_exported(s)),
            dropped: signals.map(|s| {
                std::array::from_fn(|i| {
                    let reason = DropReason::ALL[i];
                    if DROP_REASONS.contains(&reason) {
                        metrics.output.otlp_dropped(s, reason)
                    } else {
                        Counter::default()
                    }
                })
            }),
            dropped_total: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Items dropped so far but for loss records, per signal.
    fn totals(&self) -> [(Signal, u64); 2] {
        [Signal::Traces, Signal::Logs]
            .map(|s| (s, self.dropped_total[index(s)].load(Ordering::Relaxed)))
    }
}

impl Tally for Counts {
    type Lane = Signal;

    fn delivered(&self, signal: Signal, n: u64) {
        self.exported[index(signal)].inc_by(n);
    }

    /// Every drop is in the metric; only items other than loss records are reported again as
    /// losses, so that a loss record the receiver never gets does not breed another, forever,
    /// while it is down.
    fn dropped(&self, signal: Signal, reason: DropReason, n: u64, loss: u64) {
        let i = index(signal);
        self.dropped[i][reason as usize].inc_by(n);
        self.dropped_total[i].fetch_add(n.saturating_sub(loss), Ordering::Relaxed);
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The delivery task could not start.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// OTLP as the delivery worker sees it: batches encoded as export requests, sent by the client.
pub(crate) struct Otlp {
    client: OtlpClient,
    resource: Resource,
}

impl RetryLogic for Otlp {
    type Response = Answer;
    type Error = SendError;

    fn is_retriable_error(&self, error: &SendError) -> bool {
        client::retriable(error)
    }

    fn should_retry_response(&self, answer: &Answer) -> RetryAction {
        client::answer_action(answer)
    }
}

impl delivery::Sink for Otlp {
    type Item = Item;
    type Lane = Signal;
    type Payload = Payload;

    const LANES: &'static [Signal] = &[Signal::Traces, Signal::Logs];

    fn lane(item: &Item) -> Signal {
        match item {
            Item::Span(_) => Signal::Traces,
            Item::Violation(_) | Item::Loss(_) => Signal::Logs,
        }
    }

    fn lane_name(signal: Signal) -> &'static str {
        signal.as_str()
    }

    fn is_loss(item: &Item) -> bool {
        matches!(item, Item::Loss(_))
    }

    /// One export request, encoded (items of the other signal cannot be in the batch).
    fn encode(&self, signal: Signal, items: Vec<Item>) -> Payload {
        match signal {
            Signal::Traces => Payload::traces(&ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(self.resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(map::scope()),
                        spans: items
                            .iter()
                            .filter_map(|item| match item {
                                Item::Span(s) => Some(map::span(s)),
                                _ => None,
                            })
                            .collect(),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            }),
            Signal::Logs => {
                let now = UnixNanos::now().as_u64();
                Payload::logs(&ExportLogsServiceRequest {
                    resource_logs: vec![ResourceLogs {
                        resource: Some(self.resource.clone()),
                        scope_logs: vec![ScopeLogs {
                            scope: Some(map::scope()),
                            log_records: items
                                .iter()
                                .filter_map(|item| match item {
                                    Item::Violation(v) => Some(map::violation(v, now)),
                                    Item::Loss(l) => Some(map::loss(l, now)),
                                    Item::Span(_) => None,
                                })
                                .collect(),
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }],
                })
            }
        }
    }

    fn send(&self, payload: &Payload) -> impl Future<Output = Result<Answer, SendError>> + Send {
        self.client.send(payload)
    }
}

/// How long a batch waits for more items before it leaves partly filled.
const LINGER: Duration = Duration::from_millis(200);

/// The pipeline's handle on the export worker.
pub(crate) struct Exporter {
    delivery: Delivery<Otlp, Counts>,
}

impl Exporter {
    /// Starts the export worker for `config`, with `resource` on every request.
    pub(crate) fn start(
        config: &OtlpConfig,
        resource: Resource,
        metrics: &Metrics,
    ) -> Result<Self, ExportError> {
        let client = OtlpClient::new(config)?;
        tracing::info!(
            protocol = %config.protocol,
            traces = %delivery::redact::url(&config.traces),
            headers = %delivery::redact::Headers(&config.headers),
            "exporting spans and violations over OTLP"
        );
        let settings = Settings {
            name: "otlp".into(),
            queue: config.queue,
            batch: config.batch,
            linger: LINGER,
            in_flight: config.in_flight,
            timeout: config.timeout,
            retry: RetryPolicy {
                attempts: config.attempts,
                ..RetryPolicy::default()
            },
        };
        let sink = Otlp { client, resource };
        let delivery = Delivery::start(sink, Arc::new(Counts::new(metrics)), settings)?;
        Ok(Self { delivery })
    }

    /// Queues `item` without waiting; a full queue drops it (counted).
    pub(crate) fn send(&self, item: Item) {
        self.delivery.send(item);
    }

    /// Queues `item`, waiting for room (the benchmark of the export task's throughput; the
    /// pipeline never waits, see [`Exporter::send`]).
    #[cfg(feature = "testkit")]
    pub(crate) async fn send_waiting(&self, item: Item) {
        self.delivery.send_waiting(item).await;
    }

    /// Records dropped so far, per signal.
    pub(crate) fn dropped(&self) -> [(Signal, u64); 2] {
        self.delivery.tally().totals()
    }

    /// Starts shutting down: what is queued, and the batches in flight, are sent until
    /// `deadline`; what is left then is counted as dropped. Returns at once; see
    /// [`Exporter::join`].
    pub(crate) fn stop(&self, deadline: std::time::Instant) {
        self.delivery.stop(deadline);
    }

    /// Waits for the export task to end (after [`Exporter::stop`]); returns the records
    /// dropped in all, per signal.
    pub(crate) async fn join(self) -> [(Signal, u64); 2] {
        let counts = self.delivery.tally().clone();
        self.delivery.join().await;
        counts.totals()
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
        let count = |reason: DropReason| metrics.output.otlp_dropped(Signal::Logs, reason).get();
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
