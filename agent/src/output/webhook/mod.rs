//! HTTP webhook sink: one JSON record per POST. The pipeline only ever queues without waiting;
//! the one delivery worker ([`delivery`](crate::output::delivery)) sends each record (a batch of
//! one, one at a time, so in order) with retries, backoff and a per-attempt timeout. What is
//! dropped (queue full, retries exhausted, refused, shutdown) is counted, logged and exported.
pub(crate) mod falco;
pub(crate) mod http;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::{fmt, pin::Pin, sync::Arc, time::Duration};

use crate::{
    metrics::SinkMetrics,
    model::vocab::WebhookFormat,
    output::delivery::{
        self, Delivery, DeliveryError, DropReason, RetryAction, RetryLogic, RetryPolicy, Settings,
        Tally, backoff::Backoff,
    },
};

/// What an endpoint answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    /// How long the endpoint asked to wait (`Retry-After`, seconds).
    pub retry_after: Option<Duration>,
}

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// Connecting, TLS, sending or reading failed.
    #[error("{0}; check the URL and that the receiver is listening")]
    Transport(String),
}

/// A POST in progress.
pub(crate) type Posting<'a> = Pin<Box<dyn Future<Output = Result<Answer, PostError>> + Send + 'a>>;

/// One delivery attempt: POSTs `body` once.
pub(crate) trait Post: Send + Sync + 'static {
    fn post<'a>(&'a self, body: &'a str) -> Posting<'a>;
}

/// A `--webhook` and how to deliver to it.
#[derive(Clone)]
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

impl fmt::Debug for WebhookConfig {
    /// Without secrets: the URL redacted, header names only, whether bodies are signed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &delivery::redact::url(&self.url))
            .field("headers", &delivery::redact::Headers(&self.headers))
            .field("signed", &self.hmac_key.is_some())
            .field("ca_file", &self.ca_file)
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("queue", &self.queue)
            .field("backoff", &self.backoff)
            .finish()
    }
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

/// A record waiting for delivery.
pub(crate) struct Queued {
    pub body: Arc<str>,
    /// A loss record (its own drop is counted, not reported again).
    pub loss: bool,
}

/// A webhook as the delivery worker sees it: one record per request.
pub(crate) struct Webhook {
    post: Box<dyn Post>,
}

impl RetryLogic for Webhook {
    type Response = Answer;
    type Error = PostError;

    fn is_retriable_error(&self, _error: &PostError) -> bool {
        true
    }

    /// 2xx is delivered; a 4xx other than 408 (timeout) and 429 (too many requests) is final:
    /// the endpoint refuses this record as it is; anything else is retried.
    fn should_retry_response(&self, answer: &Answer) -> RetryAction {
        let status = answer.status;
        if (200..300).contains(&status) {
            return RetryAction::Successful { refused: 0 };
        }
        if (400..500).contains(&status) && status != 408 && status != 429 {
            return RetryAction::DontRetry {
                reason: format!(
                    "endpoint answered HTTP {status} (a 4xx other than 408 and 429); check the \
                     receiver's logs and the headers sent"
                )
                .into(),
            };
        }
        RetryAction::Retry {
            reason: format!("endpoint answered HTTP {status}; check the receiver's logs").into(),
            after: answer.retry_after,
        }
    }
}

impl delivery::Sink for Webhook {
    type Item = Queued;
    type Lane = ();
    type Payload = Arc<str>;

    const LANES: &'static [()] = &[()];

    fn lane(_: &Queued) {}

    fn lane_name((): ()) -> &'static str {
        "records"
    }

    fn is_loss(item: &Queued) -> bool {
        item.loss
    }

    /// The record itself: batches are of one (see [`WebhookSink::start_with`]).
    fn encode(&self, (): (), items: Vec<Queued>) -> Arc<str> {
        debug_assert_eq!(items.len(), 1, "webhook batches are of one record");
        items
            .into_iter()
            .next()
            .map_or_else(|| "".into(), |q| q.body)
    }

    async fn send(&self, body: &Arc<str>) -> Result<Answer, PostError> {
        self.post.post(body).await
    }
}

impl Tally for SinkMetrics {
    type Lane = ();

    fn queue_depth(&self, (): (), delta: i64) {
        self.queue_depth.inc_by(delta);
    }

    fn delivered(&self, (): (), n: u64) {
        self.delivered.inc_by(n);
    }

    fn attempt_failed(&self, (): ()) {
        self.failures.inc();
    }

    fn dropped(&self, (): (), reason: DropReason, n: u64, loss: u64) {
        self.drop_records(reason, n, loss);
    }
}

/// A webhook's delivery worker.
pub(crate) type WebhookDelivery = Delivery<Webhook, SinkMetrics>;

/// The pipeline's side of a webhook: the handle on its delivery worker.
pub(crate) struct WebhookSink {
    /// `None` once stopping: records are then dropped (counted as `shutdown`).
    delivery: Option<WebhookDelivery>,
    metrics: Arc<SinkMetrics>,
    format: WebhookFormat,
}

impl WebhookSink {
    /// Starts the delivery worker for `config` with the real HTTP transport.
    pub(crate) fn start(
        config: &WebhookConfig,
        metrics: SinkMetrics,
    ) -> Result<Self, crate::output::SinkError> {
        let post = http::HttpPost::from_config(config)?;
        tracing::info!(
            sink = %metrics.name,
            url = %delivery::redact::url(&config.url),
            headers = %delivery::redact::Headers(&config.headers),
            queue = config.queue,
            attempts = config.attempts,
            format = %config.format,
            signed = config.hmac_key.is_some(),
            "webhook feed"
        );
        Ok(Self::start_with(config, metrics, Box::new(post))?)
    }

    /// [`WebhookSink::start`] with an injected transport.
    pub(crate) fn start_with(
        config: &WebhookConfig,
        metrics: SinkMetrics,
        post: Box<dyn Post>,
    ) -> Result<Self, DeliveryError> {
        let metrics = Arc::new(metrics);
        let settings = Settings {
            name: metrics.name.to_string().into(),
            queue: config.queue,
            // One record per request, one request at a time: records arrive in order.
            batch: 1,
            linger: Duration::ZERO,
            in_flight: 1,
            timeout: config.timeout,
            retry: RetryPolicy {
                attempts: config.attempts,
                backoff: config.backoff,
                ..RetryPolicy::default()
            },
        };
        let delivery = Delivery::start(Webhook { post }, metrics.clone(), settings)?;
        Ok(Self {
            delivery: Some(delivery),
            metrics,
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
        match &self.delivery {
            Some(delivery) => delivery.send(Queued { body: record, loss }),
            None => {
                self.metrics
                    .drop_records(DropReason::Shutdown, 1, u64::from(loss));
            }
        }
    }

    /// Stops taking records; the worker delivers what it holds until `deadline`, then drops
    /// the rest (counted as `shutdown`). Returns the worker, to wait for
    /// ([`Delivery::join`] ends by the deadline).
    pub(crate) fn begin_finish(&mut self, deadline: std::time::Instant) -> Option<WebhookDelivery> {
        let delivery = self.delivery.take()?;
        delivery.stop(deadline);
        Some(delivery)
    }
}

impl Drop for WebhookSink {
    /// Never finished: what the worker holds is dropped now (counted).
    fn drop(&mut self) {
        self.begin_finish(std::time::Instant::now());
    }
}
