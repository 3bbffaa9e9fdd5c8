//! One batch's way through its attempts: what each answer means for the batch, how long to wait
//! before the next attempt, and when to give up. [`RetryPolicy::next`] decides; [`deliver`]
//! sends, times out, waits and counts, racing the shutdown deadline at every step.
use std::{borrow::Cow, sync::Arc, time::Duration};

use tokio::sync::watch;

use super::{Deadline, DropReason, Settings, Sink, Tally, advice, backoff::Backoff};

/// The longest `Retry-After` honoured (a longer one waits this long).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// What one attempt came to (vector's `RetryAction`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RetryAction {
    /// Delivered; the receiver refused `refused` of the batch's items (a partial success).
    Successful { refused: u64 },
    /// Failed; another attempt may succeed (after at least `after`, when the receiver said).
    Retry {
        reason: Cow<'static, str>,
        after: Option<Duration>,
    },
    /// Refused for good: the same request will be refused again.
    DontRetry { reason: Cow<'static, str> },
}

/// How many attempts, and how far apart: one policy for every sink.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    /// Attempts per batch, the first included (at least 1).
    pub attempts: u32,
    pub backoff: Backoff,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Jitter source, values in [0, 1].
    pub jitter: fn() -> f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            backoff: Backoff::default(),
            max_retry_after: MAX_RETRY_AFTER,
            jitter: rand::random::<f64>,
        }
    }
}

/// What became of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Delivered, but for `refused` items the receiver turned down.
    Delivered {
        refused: u64,
    },
    Dropped(DropReason),
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Done(Fate),
    /// Wait this long, then try again.
    Wait(Duration),
}

impl RetryPolicy {
    /// After attempt `attempt` (0-based) came to `action`, with `left` until the shutdown
    /// deadline (`None`: not stopping): done, or how long to wait before the next attempt. The
    /// wait is the backoff's, stretched to a `Retry-After` (up to `max_retry_after`); a wait
    /// that would end past the deadline drops the batch at once rather than at the deadline.
    pub(crate) fn next(&self, attempt: u32, action: &RetryAction, left: Option<Duration>) -> Next {
        let after = match action {
            RetryAction::Successful { refused } => {
                return Next::Done(Fate::Delivered { refused: *refused });
            }
            RetryAction::DontRetry { .. } => {
                return Next::Done(Fate::Dropped(DropReason::Rejected));
            }
            RetryAction::Retry { after, .. } => *after,
        };
        if attempt.saturating_add(1) >= self.attempts.max(1) {
            return Next::Done(Fate::Dropped(DropReason::RetriesExhausted));
        }
        let mut wait = self.backoff.delay(attempt, (self.jitter)());
        if let Some(after) = after {
            wait = wait.max(after.min(self.max_retry_after));
        }
        if left.is_some_and(|left| wait >= left) {
            return Next::Done(Fate::Dropped(DropReason::Shutdown));
        }
        Next::Wait(wait)
    }
}

/// What every delivery of one sink shares.
pub(super) struct Shared<S, T> {
    pub sink: S,
    pub tally: Arc<T>,
    pub settings: Settings,
}

/// One batch, encoded.
pub(super) struct Job<S: Sink> {
    pub lane: S::Lane,
    pub payload: S::Payload,
    /// Items in the batch, and how many of them are loss records.
    pub n: u64,
    pub loss: u64,
}

/// Resolves once shutdown has started and its deadline has passed.
pub(super) async fn past_deadline(stop: &mut watch::Receiver<Deadline>) {
    loop {
        let deadline = *stop.borrow_and_update();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        if stop.changed().await.is_err() {
            // The handle is gone without a deadline: nothing will cut delivery short.
            std::future::pending::<()>().await;
        }
    }
}

/// Delivers `job`: attempts, waits between them, and counts what became of it.
pub(super) async fn deliver<S: Sink, T: Tally<Lane = S::Lane>>(
    shared: Arc<Shared<S, T>>,
    mut stop: watch::Receiver<Deadline>,
    job: Job<S>,
) {
    let fate = shared.attempts(&mut stop, &job).await;
    shared.settle(job.lane, fate, job.n, job.loss);
}

impl<S: Sink, T: Tally<Lane = S::Lane>> Shared<S, T> {
    async fn attempts(&self, stop: &mut watch::Receiver<Deadline>, job: &Job<S>) -> Fate {
        let shutdown = Fate::Dropped(DropReason::Shutdown);
        let mut attempt = 0u32;
        loop {
            let action = tokio::select! {
                biased;
                () = past_deadline(stop) => return shutdown,
                action = self.attempt(&job.payload) => action,
            };
            self.log_failure(job.lane, attempt, &action);
            let left = stop
                .borrow()
                .map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            match self.settings.retry.next(attempt, &action, left) {
                Next::Done(fate) => return fate,
                Next::Wait(wait) => tokio::select! {
                    biased;
                    () = past_deadline(stop) => return shutdown,
                    () = tokio::time::sleep(wait) => {}
                },
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// Sends once, within the per-attempt timeout, and says what the answer means.
    async fn attempt(&self, payload: &S::Payload) -> RetryAction {
        let timeout = self.settings.timeout;
        match tokio::time::timeout(timeout, self.sink.send(payload)).await {
            Err(_) => RetryAction::Retry {
                reason: format!("no answer within {timeout:?}").into(),
                after: None,
            },
            Ok(Ok(response)) => self.sink.should_retry_response(&response),
            Ok(Err(error)) => {
                let reason = error.to_string().into();
                if self.sink.is_retriable_error(&error) {
                    RetryAction::Retry {
                        reason,
                        after: None,
                    }
                } else {
                    RetryAction::DontRetry { reason }
                }
            }
        }
    }

    fn log_failure(&self, lane: S::Lane, attempt: u32, action: &RetryAction) {
        let sink = &*self.settings.name;
        let lane_name = S::lane_name(lane);
        match action {
            RetryAction::Successful { .. } => return,
            RetryAction::Retry { reason, .. } => tracing::warn!(
                sink,
                lane = lane_name,
                attempt = attempt + 1,
                of = self.settings.retry.attempts,
                %reason,
                "delivery attempt failed"
            ),
            RetryAction::DontRetry { reason } => tracing::warn!(
                sink,
                lane = lane_name,
                %reason,
                "the receiver refused the batch as it is; not retrying"
            ),
        }
        self.tally.attempt_failed(lane);
    }

    /// Counts what became of `n` items (`loss` of them loss records).
    pub(super) fn settle(&self, lane: S::Lane, fate: Fate, n: u64, loss: u64) {
        match fate {
            Fate::Delivered { refused } => {
                let refused = refused.min(n);
                self.tally.delivered(lane, n - refused);
                // Which items were refused is not said: count loss records among them first,
                // so that a receiver refusing them cannot make loss reports breed.
                self.count_drop(lane, DropReason::Rejected, refused, loss.min(refused));
            }
            Fate::Dropped(reason) => self.count_drop(lane, reason, n, loss),
        }
    }

    pub(super) fn count_drop(&self, lane: S::Lane, reason: DropReason, n: u64, loss: u64) {
        if n == 0 {
            return;
        }
        self.tally.dropped(lane, reason, n, loss);
        tracing::warn!(
            sink = &*self.settings.name,
            lane = S::lane_name(lane),
            reason = reason.as_str(),
            dropped = n,
            "{}",
            advice(reason)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, jitter: fn() -> f64) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_millis(500),
            },
            max_retry_after: MAX_RETRY_AFTER,
            jitter,
        }
    }

    fn retry(after: Option<Duration>) -> RetryAction {
        RetryAction::Retry {
            reason: "x".into(),
            after,
        }
    }

    /// The waits after each failed attempt until done, and how it ended, with time passing
    /// only in the waits and a deadline `deadline` after the start.
    fn run(
        p: &RetryPolicy,
        answers: &[RetryAction],
        deadline: Option<Duration>,
    ) -> (Vec<u128>, Fate) {
        let (mut waits, mut now) = (Vec::new(), Duration::ZERO);
        for (attempt, action) in (0u32..).zip(answers) {
            let left = deadline.map(|d| d.saturating_sub(now));
            match p.next(attempt, action, left) {
                Next::Done(fate) => return (waits, fate),
                Next::Wait(wait) => {
                    waits.push(wait.as_millis());
                    now += wait;
                }
            }
        }
        panic!("the script ran out: {waits:?}");
    }

    #[test]
    fn retries_with_exponential_backoff_until_delivered() {
        let answers = [
            retry(None),
            retry(None),
            retry(None),
            RetryAction::Successful { refused: 0 },
        ];
        let (waits, fate) = run(&policy(6, || 1.0), &answers, None);
        assert_eq!(waits, [100, 200, 400]);
        assert_eq!(fate, Fate::Delivered { refused: 0 });
    }

    #[test]
    fn jittered_schedule_is_capped_and_exhaustion_ends_it() {
        let answers = vec![retry(None); 10];
        let (waits, fate) = run(&policy(6, || 0.0), &answers, None);
        // Jitter 0: half of 100, 200, 400, 500 (cap), 500.
        assert_eq!(waits, [50, 100, 200, 250, 250]);
        assert_eq!(fate, Fate::Dropped(DropReason::RetriesExhausted));
        let (waits, fate) = run(&policy(1, || 0.0), &answers, None);
        assert!(waits.is_empty(), "one attempt only");
        assert_eq!(fate, Fate::Dropped(DropReason::RetriesExhausted));
    }

    #[test]
    fn retry_after_stretches_the_pause_within_a_cap_and_refusals_are_final() {
        let p = policy(6, || 0.0);
        let answers = [
            retry(Some(Duration::from_secs(30))),
            retry(Some(Duration::from_secs(3600))),
            retry(Some(Duration::ZERO)),
            RetryAction::Successful { refused: 2 },
        ];
        let (waits, fate) = run(&p, &answers, None);
        assert_eq!(
            waits,
            [30_000, 120_000, 200],
            "at least what the receiver asked, at most 120 s"
        );
        assert_eq!(fate, Fate::Delivered { refused: 2 });
        let refused = [RetryAction::DontRetry {
            reason: "403".into(),
        }];
        let (waits, fate) = run(&p, &refused, None);
        assert!(waits.is_empty(), "no retry after a refusal");
        assert_eq!(fate, Fate::Dropped(DropReason::Rejected));
    }

    #[test]
    fn a_wait_past_the_shutdown_deadline_drops_at_once() {
        let answers = vec![retry(None); 10];
        let (waits, fate) = run(
            &policy(10, || 1.0),
            &answers,
            Some(Duration::from_millis(250)),
        );
        // 100, then 200 would end past the 150 ms left.
        assert_eq!(waits, [100]);
        assert_eq!(fate, Fate::Dropped(DropReason::Shutdown));
    }
}
