//! Sinks: where feed records go (last stage). [`Sinks`] folds repeated violations
//! ([`aggregate`]) and fans every record out to stdout (JSON lines), the feed file
//! ([`feed_file`], optionally size-rotated), any number of HTTP webhooks ([`webhook`]) and OTLP
//! export ([`otlp`]); the last two are queued and sent off the event path by the one
//! [`delivery`] worker.
pub(crate) mod aggregate;
pub(crate) mod delivery;
pub(crate) mod feed_file;
pub(crate) mod otlp;
pub(crate) mod record;
#[cfg(test)]
mod tests;
pub(crate) mod webhook;

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use aggregate::{Aggregator, Offer};
use feed_file::{RotatingFile, Rotation};
pub(crate) use record::{Record, Start};
use webhook::{WebhookConfig, WebhookDelivery, WebhookSink};

pub(crate) use crate::model::loss::Loss;
use crate::{
    detect::Violation,
    metrics::{Metrics, SinkMetrics, output::ViolationCounters},
    model::{
        clock,
        loss::SinkId,
        spans::Span,
        vocab::{DropReason, WebhookFormat},
    },
    output::{
        delivery::DeliveryError,
        otlp::{Exporter, Item, Signal},
    },
};

/// Why the sinks could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    /// The feed file could not be opened for appending.
    #[error("cannot open feed file {path}: {source}; check the directory exists and is writable")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A `--webhook` URL is unusable.
    #[error("--webhook {url}: {reason}")]
    WebhookUrl {
        /// The URL with its path and query cut off (they often carry tokens).
        url: String,
        #[source]
        reason: webhook::http::UrlError,
    },
    /// The webhook's TLS trust (`--webhook-ca`) could not be set up.
    #[error("--webhook-ca {path}: {reason}; give a readable PEM file of CA certificates")]
    WebhookCa { path: PathBuf, reason: String },
    /// A `--webhook-header` is not a valid HTTP header (its value is not shown: it may be a
    /// secret).
    #[error(
        "--webhook-header {name}: not a valid HTTP header name and value; use visible ASCII \
         characters"
    )]
    WebhookHeader { name: String },
    /// TLS could not be set up for the webhooks.
    #[error("cannot set up TLS for the webhooks: {0}")]
    WebhookTls(String),
    /// A webhook's delivery worker could not start.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// The delivery workers stopping at shutdown ([`Sinks::begin_finish`]).
pub(crate) struct Draining {
    webhooks: Vec<WebhookDelivery>,
    otlp: Option<Exporter>,
}

impl Draining {
    /// Waits for every worker to end (each ends by the deadline it was given); returns the
    /// exporter's drop totals per signal, if it exports.
    pub(crate) async fn join(self) -> Option<[(Signal, u64); 2]> {
        for hook in self.webhooks {
            hook.join().await;
        }
        match self.otlp {
            Some(exporter) => Some(exporter.join().await),
            None => None,
        }
    }
}

/// Where the feed goes and how.
#[derive(Clone, Debug)]
pub(crate) struct SinkOptions {
    pub stdout: bool,
    pub feed_file: Option<PathBuf>,
    /// Size-based rotation of the feed file (None: grow forever).
    pub rotation: Option<Rotation>,
    pub webhooks: Vec<WebhookConfig>,
    /// Put ended spans in the feed too.
    pub feed_spans: bool,
    /// Window in which identical violations are folded (zero: never).
    pub aggregate_window: Duration,
    /// How long the webhooks may keep delivering at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            stdout: true,
            feed_file: None,
            rotation: None,
            webhooks: Vec::new(),
            feed_spans: false,
            aggregate_window: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The fan-out the pipeline calls.
pub(crate) struct Sinks {
    /// OTLP export: every record the feed gets, and every ended span.
    otlp: Option<Exporter>,
    /// Ended spans go to the feed too (`--feed-spans`).
    feed_spans: bool,
    stdout: Option<SinkMetrics>,
    file: Option<(RotatingFile, SinkMetrics)>,
    webhooks: Vec<WebhookSink>,
    aggregator: Aggregator,
    violations: ViolationCounters,
    shutdown_grace: Duration,
    /// Records that could not be serialized or written to stdout or the file.
    pub write_errors: u64,
}

impl Sinks {
    /// Opens the feed file, validates the webhook URLs and starts their delivery threads.
    pub(crate) fn open(options: &SinkOptions, metrics: &Metrics) -> Result<Self, SinkError> {
        for hook in &options.webhooks {
            webhook::http::validate_url(&hook.url).map_err(|reason| SinkError::WebhookUrl {
                url: delivery::redact::url(&hook.url),
                reason,
            })?;
        }
        let file = options
            .feed_file
            .as_deref()
            .map(|path| RotatingFile::open(path, options.rotation))
            .transpose()?
            .map(|file| (file, metrics.output.sink(SinkId::File)));
        let webhooks = options
            .webhooks
            .iter()
            .enumerate()
            .map(|(n, hook)| WebhookSink::start(hook, metrics.output.sink(SinkId::Webhook(n))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            otlp: None,
            feed_spans: options.feed_spans,
            stdout: options.stdout.then(|| metrics.output.sink(SinkId::Stdout)),
            file,
            webhooks,
            aggregator: Aggregator::new(options.aggregate_window),
            violations: metrics.output.violations(),
            shutdown_grace: options.shutdown_grace,
            write_errors: 0,
        })
    }

    /// Adds OTLP export.
    pub(crate) fn with_exporter(mut self, exporter: Exporter) -> Self {
        self.otlp = Some(exporter);
        self
    }

    /// Records OTLP export dropped so far, per signal.
    pub(crate) fn otlp_dropped(&self) -> Option<[(Signal, u64); 2]> {
        self.otlp.as_ref().map(Exporter::dropped)
    }

    /// An ended span: to OTLP, and to the feed with `--feed-spans`. Applications' own spans
    /// are not exported again (their ids are already in the application's backend).
    pub(crate) fn span(&mut self, span: Span) {
        let export = !matches!(span.body, crate::model::spans::SpanBody::App(_));
        if self.feed_spans {
            if export && let Some(otlp) = &self.otlp {
                otlp.send(Item::Span(Box::new(span.clone())));
            }
            self.emit(Record::Span(Box::new(span)));
        } else if export && let Some(otlp) = &self.otlp {
            otlp.send(Item::Span(Box::new(span)));
        }
    }

    /// A feed record. Violations are emitted at once unless an identical one is within the
    /// aggregation window; anything else (a span, a loss report) is emitted as is.
    pub(crate) fn emit(&mut self, record: Record) {
        self.emit_at(record, clock::boot_ns());
    }

    /// [`Sinks::emit`] at monotonic time `now_ns`.
    pub(crate) fn emit_at(&mut self, record: Record, now_ns: u64) {
        let Record::Violation(violation) = record else {
            self.write(&record);
            return;
        };
        self.count_violation(&violation);
        match self.aggregator.offer(&violation, now_ns) {
            Offer::Folded => {
                self.violations.folded.inc();
            }
            Offer::Emit { closed } => {
                if let Some(aggregate) = closed {
                    self.write(&Record::Violation(aggregate));
                }
                self.write(&Record::Violation(violation));
            }
        }
    }

    /// Emits the aggregates of windows that are over.
    pub(crate) fn tick(&mut self) {
        self.tick_at(clock::boot_ns());
    }

    /// [`Sinks::tick`] at monotonic time `now_ns`.
    pub(crate) fn tick_at(&mut self, now_ns: u64) {
        for aggregate in self.aggregator.expire(now_ns) {
            self.write(&Record::Violation(Box::new(aggregate)));
        }
    }

    /// How long the sinks may keep delivering once the agent is asked to stop.
    pub(crate) fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }

    /// At shutdown: emits every open aggregate, then tells the webhooks and the exporter to
    /// stop taking records and deliver what they hold until `deadline`. Returns them, to wait
    /// for; records sent to a webhook afterwards are dropped (counted as `shutdown`).
    pub(crate) fn begin_finish(&mut self, deadline: Instant) -> Draining {
        for aggregate in self.aggregator.flush() {
            self.write(&Record::Violation(Box::new(aggregate)));
        }
        let webhooks = self
            .webhooks
            .iter_mut()
            .filter_map(|hook| hook.begin_finish(deadline))
            .collect();
        let otlp = self.otlp.take();
        if let Some(exporter) = &otlp {
            exporter.stop(deadline);
        }
        Draining { webhooks, otlp }
    }

    /// [`Sinks::begin_finish`] with the configured grace, and the wait.
    #[cfg(test)]
    pub(crate) async fn finish(&mut self) {
        let deadline = Instant::now() + self.shutdown_grace;
        self.begin_finish(deadline).join().await;
    }

    /// Feed records (other than loss records) each sink dropped so far, by sink and reason,
    /// for loss reports; zeros left out.
    pub(crate) fn feed_losses(&self) -> Vec<(SinkId, DropReason, u64)> {
        self.sink_metrics()
            .flat_map(|m| {
                DropReason::ALL.iter().filter_map(move |&reason| {
                    let n = m.evidence_dropped(reason);
                    (n > 0).then_some((m.name, reason, n))
                })
            })
            .collect()
    }

    fn sink_metrics(&self) -> impl Iterator<Item = &SinkMetrics> {
        self.stdout
            .iter()
            .chain(self.file.iter().map(|(_, m)| m))
            .chain(self.webhooks.iter().map(WebhookSink::metrics))
    }

    /// Violations folded so far.
    pub(crate) fn folded(&self) -> u64 {
        self.aggregator.folded
    }

    /// Dropped records by `sink/reason` (non-zero only), for the stats file.
    pub(crate) fn dropped(&self) -> BTreeMap<String, u64> {
        self.sink_metrics()
            .flat_map(|m| {
                m.dropped_by_reason()
                    .into_iter()
                    .map(|(reason, n)| (format!("{}/{reason}", m.name), n))
            })
            .collect()
    }

    /// Counts a violation in `seam_violations_total` (here, where every violation of every
    /// kind passes, folded or not).
    fn count_violation(&self, v: &Violation) {
        fn name(t: &Option<crate::model::spans::TenantName>) -> &str {
            t.as_ref()
                .map_or("", crate::model::spans::TenantName::as_str)
        }
        self.violations.count(
            &v.rule_id,
            v.severity,
            name(&v.intended_tenant),
            name(&v.actual_tenant),
        );
    }

    fn write(&mut self, record: &Record) {
        if let Some(otlp) = &self.otlp {
            match record {
                Record::Violation(v) => otlp.send(Item::Violation(v.clone())),
                Record::Loss(l) => otlp.send(Item::Loss(l.clone())),
                // Sent by `span` already; the start is in the OTLP resource.
                Record::Span(_) | Record::Start(_) => {}
            }
        }
        let loss = u64::from(matches!(record, Record::Loss(_)));
        let line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(error) => {
                self.write_errors += 1;
                tracing::error!(%error, "cannot serialize a feed record");
                return;
            }
        };
        if let Some(metrics) = &self.stdout {
            let mut out = io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                self.write_errors += 1;
                metrics.drop_records(DropReason::WriteError, 1, loss);
            } else {
                metrics.delivered.inc();
            }
        }
        if let Some((file, metrics)) = &mut self.file {
            match file.write_line(&line) {
                Ok(()) => {
                    metrics.delivered.inc();
                }
                Err(error) => {
                    self.write_errors += 1;
                    metrics.drop_records(DropReason::WriteError, 1, loss);
                    tracing::error!(%error, "cannot write to the feed file; check disk space");
                }
            }
        }
        // Webhooks are alert channels: a start record is not an alert.
        if !self.webhooks.is_empty() && !matches!(record, Record::Start(_)) {
            let shared: Arc<str> = line.into();
            let mut falco: Option<Option<Arc<str>>> = None;
            for hook in &mut self.webhooks {
                match hook.format() {
                    WebhookFormat::Seam => hook.send(shared.clone(), loss == 1),
                    WebhookFormat::Falcosidekick => {
                        // Computed once for every falcosidekick webhook; spans have no payload.
                        let body = falco.get_or_insert_with(|| {
                            webhook::falco::payload(record).map(|p| p.to_string().into())
                        });
                        if let Some(body) = body {
                            hook.send(body.clone(), loss == 1);
                        }
                    }
                }
            }
        }
    }
}
