//! HTTP webhook sink: one JSON record per POST. The pipeline only ever `try_send`s onto a
//! bounded queue; a dedicated thread delivers, with retries, backoff and a per-attempt timeout.
//! What is dropped (queue full, retries exhausted, shutdown) is counted, logged and exported.
pub(crate) mod falco;
pub(crate) mod http;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
pub(crate) mod worker;

use std::{
    sync::{
        Arc,
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use worker::{Clock, Queued, RetryPolicy, Shutdown, SystemClock, Worker};

use crate::{
    metrics::{DropReason, SinkMetrics},
    model::vocab::WebhookFormat,
    output::backoff::Backoff,
};

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// The endpoint answered with a non-2xx status.
    #[error("endpoint answered HTTP {0}; check the receiver's logs")]
    Status(u16),
    /// The endpoint answered with a non-2xx status and `Retry-After`.
    #[error("endpoint answered HTTP {status} and asked to retry after {after:?}")]
    RetryAfter { status: u16, after: Duration },
    /// No answer within the per-attempt timeout.
    #[error("no answer within the timeout; check the receiver is up or raise --webhook-timeout-ms")]
    Timeout,
    /// Connecting, sending or reading failed.
    #[error("{0}; check the URL and that the receiver is listening")]
    Transport(String),
}

impl PostError {
    /// Whether another attempt may succeed: not after a 4xx other than 408 (timeout) and 429
    /// (too many requests): the receiver refuses this record as it is.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            PostError::Status(status) | PostError::RetryAfter { status, .. } => {
                !(400..500).contains(status) || *status == 408 || *status == 429
            }
            PostError::Timeout | PostError::Transport(_) => true,
        }
    }

    /// How long the receiver asked to wait (`Retry-After`).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            PostError::RetryAfter { after, .. } => Some(*after),
            _ => None,
        }
    }
}

/// One delivery attempt.
pub(crate) trait Post: Send {
    fn post(&mut self, body: &str) -> Result<(), PostError>;
}

/// A `--webhook` and how to deliver to it.
#[derive(Clone, Debug)]
pub(crate) struct WebhookConfig {
    pub url: String,
    /// Extra request headers (`--webhook-header`, e.g. `Authorization: Bearer ...`).
    pub headers: Vec<(String, String)>,
    /// Key of the `X-Seam-Signature: sha256=<hex>` HMAC over each body (`None`: unsigned).
    pub hmac_key: Option<Arc<[u8]>>,
    /// PEM certificates trusted besides the system's (`--webhook-ca`).
    pub ca_file: Option<std::path::PathBuf>,
    /// The body's shape.
    pub format: WebhookFormat,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts per record, first try included.
    pub attempts: u32,
    /// Records waiting at most.
    pub queue: usize,
    pub backoff: Backoff,
}

impl WebhookConfig {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            headers: Vec::new(),
            hmac_key: None,
            ca_file: None,
            format: WebhookFormat::Seam,
            timeout: Duration::from_secs(5),
            attempts: 6,
            queue: 1024,
            backoff: Backoff::default(),
        }
    }
}

/// The pipeline's side of a webhook: a bounded queue and the delivery thread.
pub(crate) struct WebhookSink {
    queue: Option<SyncSender<Queued>>,
    thread: Option<JoinHandle<()>>,
    shutdown: Arc<Shutdown>,
    metrics: SinkMetrics,
    last_full_warning: Option<Instant>,
    format: WebhookFormat,
}

impl WebhookSink {
    /// Starts the delivery thread for `config` with the real HTTP transport and clock.
    pub(crate) fn start(
        config: &WebhookConfig,
        metrics: SinkMetrics,
    ) -> Result<Self, crate::output::SinkError> {
        let post = http::HttpPost::from_config(config)?;
        tracing::info!(
            sink = %metrics.name,
            url = %http::redact(&config.url),
            queue = config.queue,
            attempts = config.attempts,
            format = %config.format,
            signed = config.hmac_key.is_some(),
            "webhook feed"
        );
        Self::start_with(config, metrics, Box::new(post), Arc::new(SystemClock))
            .map_err(crate::output::SinkError::Thread)
    }

    /// [`WebhookSink::start`] with an injected transport and clock.
    pub(crate) fn start_with(
        config: &WebhookConfig,
        metrics: SinkMetrics,
        post: Box<dyn Post>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Queued>(config.queue.max(1));
        let shutdown = Arc::new(Shutdown::default());
        let worker = Worker {
            post,
            clock,
            shutdown: shutdown.clone(),
            policy: RetryPolicy {
                attempts: config.attempts,
                backoff: config.backoff,
            },
            metrics: metrics.clone(),
            jitter: Box::new(rand::random::<f64>),
        };
        let thread = std::thread::Builder::new()
            .name(format!("seam-{}", metrics.name))
            .spawn(move || worker.run(rx))?;
        Ok(Self {
            queue: Some(tx),
            thread: Some(thread),
            shutdown,
            metrics,
            last_full_warning: None,
            format: config.format,
        })
    }

    /// The body shape this webhook wants.
    pub(crate) fn format(&self) -> WebhookFormat {
        self.format
    }

    pub(crate) fn metrics(&self) -> &SinkMetrics {
        &self.metrics
    }

    /// Queues `record` (`loss`: a loss record) for delivery; never blocks. A full queue drops
    /// it (counted, and logged at most once a second).
    pub(crate) fn send(&mut self, record: Arc<str>, loss: bool) {
        let Some(queue) = &self.queue else {
            self.metrics
                .drop_records(DropReason::Shutdown, 1, u64::from(loss));
            return;
        };
        let reason = {
            let mut books = self.shutdown.books();
            match queue.try_send(Queued { body: record, loss }) {
                Ok(()) => {
                    books.queued += 1;
                    books.queued_loss += u64::from(loss);
                    self.metrics.queue_depth.inc();
                    return;
                }
                Err(TrySendError::Full(_)) => DropReason::QueueFull,
                Err(TrySendError::Disconnected(_)) => DropReason::Shutdown,
            }
        };
        let dropped = self.metrics.drop_records(reason, 1, u64::from(loss));
        let now = Instant::now();
        if self
            .last_full_warning
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            self.last_full_warning = Some(now);
            tracing::warn!(
                sink = %self.metrics.name,
                reason = reason.as_str(),
                dropped,
                "webhook queue full: record dropped (the endpoint is slower than the feed or \
                 down; see seam_feed_dropped_total)"
            );
        }
    }

    /// Stops taking records; the worker delivers what is queued until `deadline`.
    pub(crate) fn begin_finish(&mut self, deadline: Instant) {
        self.shutdown.start(deadline);
        self.queue = None;
    }

    /// Waits for the worker until `deadline`. A worker still busy then (an endpoint that
    /// accepts and never answers, or never accepts, holds an attempt for its whole timeout) is
    /// left behind: what it holds is counted as dropped (`shutdown`) here, and it counts
    /// nothing more, so stopping never waits on a hung endpoint past the grace period.
    pub(crate) fn wait(&mut self, deadline: Instant) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            if thread.join().is_err() {
                tracing::error!(sink = %self.metrics.name, "webhook thread panicked");
            }
            return;
        }
        let (held, held_loss) = {
            let mut books = self.shutdown.books();
            books.abandoned = true;
            let held = books.queued + u64::from(books.in_flight.is_some());
            let held_loss = books.queued_loss + u64::from(books.in_flight == Some(true));
            (books.queued, books.queued_loss) = (0, 0);
            (held, held_loss)
        };
        self.metrics.queue_depth.set(0);
        self.metrics
            .drop_records(DropReason::Shutdown, held, held_loss);
        tracing::warn!(
            sink = %self.metrics.name,
            dropped = held,
            "webhook endpoint still not answering at the end of the shutdown grace period; \
             stopping without it (its records are counted as dropped)"
        );
    }

    /// Stops taking records and waits up to `grace` for the queue to be delivered; what is
    /// still queued or in flight after that is dropped (counted as `shutdown`).
    pub(crate) fn finish(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.begin_finish(deadline);
        self.wait(deadline);
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish(Duration::ZERO);
        }
    }
}
