//! The delivery loop on the webhook's own thread: takes records off the queue and POSTs each
//! with retries (exponential backoff with jitter). Time is behind [`Clock`] so the schedule can
//! be tested without sleeping.
use std::{
    sync::{Arc, Condvar, Mutex, mpsc::Receiver},
    time::{Duration, Instant},
};

use super::{Post, PostError};
use crate::{
    metrics::{DropReason, SinkMetrics},
    output::backoff::Backoff,
};

/// The longest `Retry-After` honoured (a longer one waits this long).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Time, for the worker.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Waits `d`, or less if shutdown starts meanwhile.
    fn pause(&self, d: Duration, shutdown: &Shutdown);
}

/// The real clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn pause(&self, d: Duration, shutdown: &Shutdown) {
        let guard = shutdown.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_some() {
            // Already shutting down: the worker has clamped `d` to the deadline.
            drop(guard);
            std::thread::sleep(d);
            return;
        }
        let _ = shutdown
            .wakeup
            .wait_timeout_while(guard, d, |deadline| deadline.is_none());
    }
}

/// Shutdown signal: once set, the worker delivers what it can until the deadline, then drops
/// the rest (counted).
#[derive(Default)]
pub(crate) struct Shutdown {
    deadline: Mutex<Option<Instant>>,
    wakeup: Condvar,
    books: Mutex<Books>,
}

/// What the queue and the worker hold, kept by the sink and the worker under one lock, so
/// that when the sink gives up on a worker hanging past the shutdown deadline, each record is
/// counted exactly once: by the sink (as dropped at shutdown) or by the worker, never both.
#[derive(Debug, Default)]
pub(crate) struct Books {
    /// The sink no longer waits for the worker: the worker counts nothing more.
    pub abandoned: bool,
    /// Records in the queue, and how many of them are loss records.
    pub queued: u64,
    pub queued_loss: u64,
    /// The record being delivered (`Some(true)`: a loss record).
    pub in_flight: Option<bool>,
}

/// A record waiting for delivery.
pub(crate) struct Queued {
    pub body: Arc<str>,
    /// A loss record (its own drop is counted, not reported again).
    pub loss: bool,
}

impl Shutdown {
    pub(crate) fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn start(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.wakeup.notify_all();
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many attempts and how far apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Attempts per record (first try included); at least 1.
    pub attempts: u32,
    pub backoff: Backoff,
}

/// What became of one record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    Dropped(DropReason),
}

/// Delivers records for one webhook.
pub(crate) struct Worker {
    pub post: Box<dyn Post>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Arc<Shutdown>,
    pub policy: RetryPolicy,
    pub metrics: SinkMetrics,
    /// Jitter source, values in [0, 1].
    pub jitter: Box<dyn FnMut() -> f64 + Send>,
}

impl Worker {
    /// Takes records until the sink hangs up (and the queue is empty), or gives up on this
    /// worker at shutdown.
    pub(crate) fn run(mut self, queue: Receiver<Queued>) {
        while let Ok(record) = queue.recv() {
            {
                let mut books = self.shutdown.books();
                if books.abandoned {
                    return;
                }
                books.queued = books.queued.saturating_sub(1);
                if record.loss {
                    books.queued_loss = books.queued_loss.saturating_sub(1);
                }
                books.in_flight = Some(record.loss);
                self.metrics.queue_depth.dec();
            }
            let outcome = self.attempts(&record.body);
            let mut books = self.shutdown.books();
            books.in_flight = None;
            if books.abandoned {
                // The sink counted this record when it gave up on us.
                return;
            }
            self.count(&outcome, record.loss);
        }
    }

    fn past_deadline(&self) -> bool {
        self.shutdown
            .deadline()
            .is_some_and(|deadline| self.clock.now() >= deadline)
    }

    /// Tries to deliver `record` (not a loss record), retrying with backoff; counts the
    /// outcome.
    #[cfg(test)]
    pub(crate) fn deliver(&mut self, record: &str) -> Outcome {
        let outcome = self.attempts(record);
        self.count(&outcome, false);
        outcome
    }

    fn count(&self, outcome: &Outcome, loss: bool) {
        match outcome {
            Outcome::Delivered => {
                self.metrics.delivered.inc();
            }
            Outcome::Dropped(reason) => {
                self.metrics.drop_records(*reason, 1, u64::from(loss));
                tracing::error!(
                    sink = %self.metrics.name,
                    reason = reason.as_str(),
                    "webhook record dropped; check the endpoint (see seam_feed_dropped_total)"
                );
            }
        }
    }

    fn attempts(&mut self, record: &str) -> Outcome {
        let attempts = self.policy.attempts.max(1);
        for attempt in 0..attempts {
            if self.past_deadline() {
                return Outcome::Dropped(DropReason::Shutdown);
            }
            let error: PostError = match self.post.post(record) {
                Ok(()) => return Outcome::Delivered,
                Err(error) => error,
            };
            self.metrics.failures.inc();
            if !error.retryable() {
                tracing::warn!(
                    sink = %self.metrics.name,
                    %error,
                    "webhook refused the record; not retrying (a 4xx other than 408 and 429)"
                );
                return Outcome::Dropped(DropReason::Rejected);
            }
            let last = attempt + 1 == attempts;
            tracing::warn!(
                sink = %self.metrics.name,
                attempt = attempt + 1,
                of = attempts,
                %error,
                "webhook delivery failed{}",
                if last { "" } else { "; retrying" }
            );
            if last {
                break;
            }
            let mut delay = self.policy.backoff.delay(attempt, (self.jitter)());
            if let Some(after) = error.retry_after() {
                // The receiver said when: at least that long, within reason.
                delay = delay.max(after.min(MAX_RETRY_AFTER));
            }
            if let Some(deadline) = self.shutdown.deadline() {
                delay = delay.min(deadline.saturating_duration_since(self.clock.now()));
            }
            self.clock.pause(delay, &self.shutdown);
        }
        Outcome::Dropped(DropReason::RetriesExhausted)
    }
}
