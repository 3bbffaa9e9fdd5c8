//! The one delivery worker behind every sink that sends over the network (OTLP export, HTTP
//! webhooks), as vector's `sinks/util/retries.rs` serves its sinks: one bounded queue, batching,
//! retries with exponential backoff and jitter ([`backoff`]), a per-attempt timeout, a shutdown
//! deadline and one [`DropReason`] vocabulary, counted per sink and reason.
//!
//! A sink supplies what differs ([`Sink`]): how to encode a batch, how to send it, and what an
//! answer means ([`RetryLogic`]: is this error worth another attempt, does this response say to
//! retry); and where its counts go ([`Tally`]: its own metrics, unchanged).
//!
//! The worker is a tokio task, not a thread: OTLP's clients (hyper, tonic) are async and keep
//! several requests in flight on one connection, waits (linger, backoff, the deadline) are
//! timers, and an idle sink costs no thread. Every wait races the shutdown deadline, so the task
//! itself ends at the deadline, counting what it still holds, even against a receiver that
//! accepts connections and never answers.
//!
//! The pipeline hands items over without waiting ([`Delivery::send`]): a full queue drops the
//! item (counted). Memory is bounded by the queue plus `in_flight` + 1 batches (the one being
//! filled while the others are on the wire).
pub(crate) mod backoff;
pub(crate) mod redact;
mod retry;
#[cfg(test)]
mod tests;
mod worker;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    sync::{
        mpsc::{self, error::TrySendError},
        watch,
    },
    task::JoinHandle,
};

pub(crate) use self::retry::{RetryAction, RetryPolicy};
/// Why items were dropped (the `reason` label of every sink's dropped metric).
pub(crate) use crate::metrics::DropReason;

/// What an answer means (vector's `RetryLogic`).
pub(crate) trait RetryLogic {
    /// What the receiver answered.
    type Response: Send;
    /// Why an attempt got no answer (connection, TLS, or the protocol's own errors).
    type Error: std::fmt::Display + Send;

    /// Whether another attempt may succeed after `error`.
    fn is_retriable_error(&self, error: &Self::Error) -> bool;

    /// What `response` says: delivered (all or in part), retry, or refused for good.
    fn should_retry_response(&self, response: &Self::Response) -> RetryAction;
}

/// What a sink supplies to the worker: batches and the request that sends one.
pub(crate) trait Sink: RetryLogic + Send + Sync + 'static {
    /// What the pipeline queues.
    type Item: Send + 'static;
    /// Items are batched and counted per lane (OTLP: one per signal; webhooks: one).
    type Lane: Copy + Eq + Send + Sync + 'static;
    /// A batch, encoded once: every attempt sends the same.
    type Payload: Send + Sync + 'static;

    /// Every lane.
    const LANES: &'static [Self::Lane];

    /// The lane `item` goes in.
    fn lane(item: &Self::Item) -> Self::Lane;

    /// The lane's name in logs.
    fn lane_name(lane: Self::Lane) -> &'static str;

    /// Whether `item` is a loss record (its drop is counted, not reported as a loss again).
    fn is_loss(item: &Self::Item) -> bool;

    /// Encodes a batch of one lane (at least one item, at most the batch size).
    fn encode(&self, lane: Self::Lane, items: Vec<Self::Item>) -> Self::Payload;

    /// Sends a batch once (the worker times the attempt out and retries).
    fn send(
        &self,
        payload: &Self::Payload,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;
}

/// Where a sink counts (its metrics; each sink keeps its names and labels).
pub(crate) trait Tally: Send + Sync + 'static {
    type Lane: Copy;

    /// An item entered (`1`) or left (`-1`) the queue.
    fn queue_depth(&self, _lane: Self::Lane, _delta: i64) {}

    /// `n` items delivered.
    fn delivered(&self, lane: Self::Lane, n: u64);

    /// An attempt failed (retried or not).
    fn attempt_failed(&self, _lane: Self::Lane) {}

    /// `n` items dropped for `reason`, `loss` of them loss records.
    fn dropped(&self, lane: Self::Lane, reason: DropReason, n: u64, loss: u64);
}

/// How one sink's worker runs.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The sink in logs (`otlp`, `webhook-0`).
    pub name: Arc<str>,
    /// Items queued at most.
    pub queue: usize,
    /// Items per request at most.
    pub batch: usize,
    /// How long a batch waits for more items before it leaves partly filled.
    pub linger: Duration,
    /// Requests being delivered at once at most (1 keeps the queue's order).
    pub in_flight: usize,
    /// Timeout of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// Started outside an async runtime (a bug: the agent starts its sinks inside its runtime).
    #[error(
        "cannot start the {sink} delivery task outside the agent's async runtime ({source}); \
         start the sinks from inside the runtime"
    )]
    NoRuntime {
        sink: Arc<str>,
        #[source]
        source: tokio::runtime::TryCurrentError,
    },
}

/// The shutdown deadline, once the sink stops.
type Deadline = Option<tokio::time::Instant>;

/// The pipeline's handle on a sink's worker.
pub(crate) struct Delivery<S: Sink, T> {
    tx: mpsc::Sender<S::Item>,
    tally: Arc<T>,
    task: JoinHandle<()>,
    stop: watch::Sender<Deadline>,
    name: Arc<str>,
    /// When a full queue was last logged (at most once a second).
    last_warning: Mutex<Option<Instant>>,
}

impl<S: Sink, T: Tally<Lane = S::Lane>> Delivery<S, T> {
    /// Starts the worker for `sink` on the current runtime.
    pub(crate) fn start(sink: S, tally: Arc<T>, settings: Settings) -> Result<Self, DeliveryError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|source| DeliveryError::NoRuntime {
                sink: settings.name.clone(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let (stop, stop_rx) = watch::channel(None);
        let name = settings.name.clone();
        let worker = worker::Worker::new(sink, tally.clone(), settings, rx, stop_rx);
        Ok(Self {
            tx,
            tally,
            task: runtime.spawn(worker.run()),
            stop,
            name,
            last_warning: Mutex::new(None),
        })
    }

    /// The sink's counts.
    pub(crate) fn tally(&self) -> &Arc<T> {
        &self.tally
    }

    /// Queues `item` without waiting; a full queue drops it (counted, logged at most once a
    /// second).
    pub(crate) fn send(&self, item: S::Item) {
        let lane = S::lane(&item);
        let loss = u64::from(S::is_loss(&item));
        let reason = match self.tx.try_send(item) {
            Ok(()) => {
                self.tally.queue_depth(lane, 1);
                return;
            }
            Err(TrySendError::Full(_)) => DropReason::QueueFull,
            Err(TrySendError::Closed(_)) => DropReason::Shutdown,
        };
        self.tally.dropped(lane, reason, 1, loss);
        let now = Instant::now();
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
            *last = Some(now);
            tracing::warn!(
                sink = %self.name,
                lane = S::lane_name(lane),
                reason = reason.as_str(),
                "{}",
                advice(reason)
            );
        }
    }

    /// Queues `item`, waiting for room (benchmarks of the worker's throughput; the pipeline
    /// never waits, see [`Delivery::send`]).
    #[cfg(feature = "testkit")]
    pub(crate) async fn send_waiting(&self, item: S::Item) {
        let lane = S::lane(&item);
        let loss = u64::from(S::is_loss(&item));
        match self.tx.send(item).await {
            Ok(()) => self.tally.queue_depth(lane, 1),
            Err(_) => self.tally.dropped(lane, DropReason::Shutdown, 1, loss),
        }
    }

    /// Starts shutting down: what is queued and in flight is delivered until `deadline`; what
    /// is left then is dropped (counted as `shutdown`). Returns at once; see
    /// [`Delivery::join`].
    pub(crate) fn stop(&self, deadline: Instant) {
        let _ = self
            .stop
            .send(Some(tokio::time::Instant::from_std(deadline)));
    }

    /// Waits for the worker to end (at the deadline at the latest, once stopped).
    pub(crate) async fn join(self) {
        drop(self.tx);
        if let Err(error) = self.task.await {
            tracing::error!(sink = %self.name, %error, "delivery task failed");
        }
    }
}

/// An error and its sources, as one line (hyper's errors say little more than their kind
/// without their sources).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a drop for `reason` means, and what to do about it.
fn advice(reason: DropReason) -> &'static str {
    match reason {
        DropReason::QueueFull => {
            "delivery queue full: records dropped (the receiver is slower than the feed, or \
             down; see the sink's dropped metric)"
        }
        DropReason::RetriesExhausted => {
            "records dropped after every attempt failed; check that the receiver is up and \
             reachable"
        }
        DropReason::Rejected => {
            "records refused by the receiver for good; check the receiver's logs and the \
             credentials sent"
        }
        DropReason::Shutdown => {
            "records still undelivered at the end of the shutdown grace period were dropped"
        }
        DropReason::WriteError => "records could not be written",
    }
}
