//! A webhook on the delivery worker, with a scripted transport: what its answers mean, what is
//! counted in its metrics, and its queue. (The retry schedule is tested in delivery/retry.rs.)
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, mpsc};

use super::{Answer, Post, PostError, Posting, Webhook, WebhookConfig, WebhookSink};
use crate::{
    metrics::{DropReason, SinkMetrics},
    output::delivery::{RetryAction, RetryLogic, backoff::Backoff},
};

fn status(status: u16) -> Result<Answer, PostError> {
    Ok(Answer {
        status,
        retry_after: None,
    })
}

/// Answers from a script (then 200), recording bodies.
struct Scripted {
    script: Mutex<VecDeque<Result<Answer, PostError>>>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Post for Scripted {
    fn post<'a>(&'a self, body: &'a str) -> Posting<'a> {
        self.bodies.lock().unwrap().push(body.to_owned());
        let answer = self.script.lock().unwrap().pop_front();
        Box::pin(async move { answer.unwrap_or_else(|| status(200)) })
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn config(queue: usize, attempts: u32) -> WebhookConfig {
    let mut config = WebhookConfig::new("http://127.0.0.1:9/".into());
    config.queue = queue;
    config.attempts = attempts;
    config.backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };
    config
}

/// Sends one record through a webhook answering `script`; returns its metrics and the bodies
/// the endpoint saw.
fn deliver_one(
    script: Vec<Result<Answer, PostError>>,
    attempts: u32,
) -> (SinkMetrics, Vec<String>) {
    let bodies = Arc::<Mutex<Vec<String>>>::default();
    let post = Scripted {
        script: Mutex::new(script.into()),
        bodies: bodies.clone(),
    };
    let metrics = SinkMetrics::default();
    block_on(async {
        let mut sink =
            WebhookSink::start_with(&config(8, attempts), metrics.clone(), Box::new(post)).unwrap();
        sink.send("{}".into(), false);
        let delivery = sink.begin_finish(Instant::now() + Duration::from_secs(5));
        delivery.unwrap().join().await;
    });
    let bodies = bodies.lock().unwrap().clone();
    (metrics, bodies)
}

#[test]
fn only_client_errors_other_than_408_and_429_are_final() {
    let hook = Webhook {
        post: Box::new(Scripted {
            script: Mutex::default(),
            bodies: Arc::default(),
        }),
    };
    let action = |status| {
        hook.should_retry_response(&Answer {
            status,
            retry_after: None,
        })
    };
    for (status, retry) in [
        (500, true),
        (503, true),
        (408, true),
        (429, true),
        (400, false),
        (401, false),
        (404, false),
        (413, false),
    ] {
        assert_eq!(
            matches!(action(status), RetryAction::Retry { .. }),
            retry,
            "{status}"
        );
        assert_eq!(
            matches!(action(status), RetryAction::DontRetry { .. }),
            !retry,
            "{status}"
        );
    }
    assert_eq!(action(204), RetryAction::Successful { refused: 0 });
    let throttled = hook.should_retry_response(&Answer {
        status: 429,
        retry_after: Some(Duration::from_secs(3)),
    });
    assert!(matches!(
        throttled,
        RetryAction::Retry { after: Some(a), .. } if a == Duration::from_secs(3)
    ));
    assert!(hook.is_retriable_error(&PostError::Transport("refused".into())));
}

#[test]
fn retries_until_delivered_counting_failed_attempts() {
    let script = vec![
        status(500),
        Err(PostError::Transport("refused".into())),
        status(503),
    ];
    let (metrics, bodies) = deliver_one(script, 6);
    assert_eq!(bodies, ["{}"; 4]);
    assert_eq!(metrics.failures.get(), 3);
    assert_eq!(metrics.delivered.get(), 1);
    assert!(metrics.dropped_by_reason().is_empty());
}

#[test]
fn exhaustion_is_counted() {
    let (metrics, bodies) = deliver_one((0..10).map(|_| status(503)).collect(), 6);
    assert_eq!(bodies.len(), 6);
    assert_eq!(metrics.failures.get(), 6);
    assert_eq!(metrics.delivered.get(), 0);
    assert_eq!(metrics.dropped_by_reason(), [("retries_exhausted", 1)]);
}

#[test]
fn a_client_error_is_final() {
    let (metrics, bodies) = deliver_one(vec![status(403)], 6);
    assert_eq!(bodies.len(), 1, "no retry after a 403");
    assert_eq!(metrics.failures.get(), 1);
    assert_eq!(metrics.dropped_by_reason(), [("rejected", 1)]);
}

/// Waits in `post` until released; tells when it is entered.
struct Gate {
    entered: mpsc::UnboundedSender<String>,
    release: Arc<Semaphore>,
}

impl Post for Gate {
    fn post<'a>(&'a self, body: &'a str) -> Posting<'a> {
        let _ = self.entered.send(body.to_owned());
        Box::pin(async move {
            if let Ok(permit) = self.release.acquire().await {
                permit.forget();
            }
            status(200)
        })
    }
}

struct Gated {
    sink: WebhookSink,
    entered: mpsc::UnboundedReceiver<String>,
    release: Arc<Semaphore>,
}

impl Gated {
    fn new(queue: usize) -> Self {
        let (entered_tx, entered) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let gate = Gate {
            entered: entered_tx,
            release: release.clone(),
        };
        let sink =
            WebhookSink::start_with(&config(queue, 6), SinkMetrics::default(), Box::new(gate))
                .unwrap();
        Self {
            sink,
            entered,
            release,
        }
    }

    async fn entered(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.entered.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// Sends `record` and waits until the worker has taken it off the queue (it is then held,
    /// ready, while the record before it is being delivered).
    async fn send_held(&mut self, record: &str) {
        self.sink.send(record.into(), false);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.sink.metrics().queue_depth.get() != 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(self.sink.metrics().queue_depth.get(), 0);
    }

    async fn finish(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        if let Some(delivery) = self.sink.begin_finish(deadline) {
            delivery.join().await;
        }
    }
}

#[test]
fn full_queue_drops_without_blocking_and_counts() {
    block_on(async {
        let mut gated = Gated::new(2);
        gated.sink.send("0".into(), false);
        assert_eq!(gated.entered().await, "0");
        gated.send_held("1").await;
        // The worker is stuck in post("0") with "1" ready: 2 fit in the queue, 6 are dropped,
        // none blocks.
        let started = Instant::now();
        for n in 2..10 {
            gated.sink.send(n.to_string().into(), false);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "send never blocks"
        );
        let metrics = gated.sink.metrics().clone();
        assert_eq!(metrics.queue_depth.get(), 2);
        assert_eq!(metrics.dropped_by_reason(), [("queue_full", 6)]);
        gated.release.add_permits(4);
        gated.finish(Duration::from_secs(5)).await;
        let mut delivered = Vec::new();
        while let Ok(body) = gated.entered.try_recv() {
            delivered.push(body);
        }
        assert_eq!(
            delivered,
            ["1", "2", "3"],
            "the held and queued ones, in order"
        );
        assert_eq!(metrics.delivered.get(), 4);
        assert_eq!(metrics.queue_depth.get(), 0);
    });
}

#[test]
fn records_still_queued_past_the_grace_period_are_dropped_as_shutdown() {
    block_on(async {
        let mut gated = Gated::new(8);
        gated.sink.send("0".into(), false);
        gated.entered().await;
        for n in 1..4 {
            gated.sink.send(n.to_string().into(), false);
        }
        let release = gated.release.clone();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            release.add_permits(1);
        });
        gated.finish(Duration::ZERO).await;
        releaser.await.unwrap();
        // The attempt in flight at the deadline counts as dropped too, even if it would end
        // well later.
        let metrics = gated.sink.metrics().clone();
        assert_eq!(metrics.delivered.get(), 0);
        assert_eq!(metrics.dropped_by_reason(), [("shutdown", 4)]);
        assert_eq!(metrics.queue_depth.get(), 0);
        gated.sink.send("late".into(), true);
        assert_eq!(metrics.dropped_by_reason(), [("shutdown", 5)]);
        assert_eq!(
            metrics.evidence_dropped(DropReason::Shutdown),
            4,
            "the late loss record is counted but not reported again"
        );
    });
}

#[test]
fn an_endpoint_that_never_answers_does_not_hold_up_the_stop() {
    block_on(async {
        let mut gated = Gated::new(8);
        gated.sink.send("0".into(), false);
        gated.entered().await;
        gated.sink.send("1".into(), true);
        let started = Instant::now();
        gated.finish(Duration::from_millis(200)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "finish returns at the deadline"
        );
        let metrics = gated.sink.metrics();
        assert_eq!(metrics.dropped_by_reason(), [("shutdown", 2)]);
        assert_eq!(metrics.evidence_dropped(DropReason::Shutdown), 1);
    });
}

#[test]
fn dropped_loss_records_are_counted_but_not_reported_again() {
    block_on(async {
        let mut gated = Gated::new(1);
        gated.sink.send("0".into(), false);
        gated.entered().await;
        gated.send_held("held").await;
        gated.sink.send("queued".into(), false);
        gated.sink.send("full".into(), false);
        gated.sink.send("full-loss".into(), true);
        let metrics = gated.sink.metrics().clone();
        assert_eq!(metrics.dropped_by_reason(), [("queue_full", 2)]);
        assert_eq!(metrics.evidence_dropped(DropReason::QueueFull), 1);
        gated.release.add_permits(3);
        gated.finish(Duration::from_secs(5)).await;
        assert_eq!(metrics.delivered.get(), 3);
    });
}

#[test]
fn a_sink_dropped_unfinished_drops_what_it_holds() {
    block_on(async {
        let mut gated = Gated::new(8);
        gated.sink.send("0".into(), false);
        gated.entered().await;
        gated.sink.send("1".into(), false);
        let metrics = gated.sink.metrics().clone();
        drop(gated);
        let deadline = Instant::now() + Duration::from_secs(5);
        while metrics.dropped(DropReason::Shutdown).get() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(metrics.dropped_by_reason(), [("shutdown", 2)]);
    });
}
