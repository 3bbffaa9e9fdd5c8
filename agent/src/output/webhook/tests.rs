//! Retry schedule, outcomes and queue accounting, with a scripted transport and a fake clock.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use super::{
    Post, PostError, WebhookConfig, WebhookSink,
    worker::{Clock, Outcome, RetryPolicy, Shutdown, Worker},
};
use crate::{
    metrics::{DropReason, SinkMetrics},
    output::delivery::backoff::Backoff,
};

/// Virtual time: pauses are recorded and advance `now` instantly.
#[derive(Default)]
struct FakeClock {
    elapsed: Mutex<Duration>,
    pauses: Mutex<Vec<Duration>>,
    origin: Option<Instant>,
}

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Some(Instant::now()),
            ..Self::default()
        })
    }
    fn pauses(&self) -> Vec<u128> {
        self.pauses
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_millis())
            .collect()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.origin.unwrap() + *self.elapsed.lock().unwrap()
    }
    fn pause(&self, d: Duration, _: &Shutdown) {
        self.pauses.lock().unwrap().push(d);
        *self.elapsed.lock().unwrap() += d;
    }
}

/// Answers from a script (then success), recording bodies.
struct Scripted {
    script: VecDeque<Result<(), PostError>>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Post for Scripted {
    fn post(&mut self, body: &str) -> Result<(), PostError> {
        self.bodies.lock().unwrap().push(body.to_owned());
        self.script.pop_front().unwrap_or(Ok(()))
    }
}

fn worker(
    script: Vec<Result<(), PostError>>,
    attempts: u32,
    jitter: f64,
) -> (Worker, Arc<FakeClock>) {
    let clock = FakeClock::new();
    let worker = Worker {
        post: Box::new(Scripted {
            script: script.into(),
            bodies: Arc::default(),
        }),
        clock: clock.clone(),
        shutdown: Arc::default(),
        policy: RetryPolicy {
            attempts,
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_millis(500),
            },
        },
        metrics: SinkMetrics::default(),
        jitter: Box::new(move || jitter),
    };
    (worker, clock)
}

#[test]
fn retries_with_exponential_backoff_until_delivered() {
    let (mut w, clock) = worker(
        vec![
            Err(PostError::Status(500)),
            Err(PostError::Timeout),
            Err(PostError::Transport("refused".into())),
        ],
        6,
        1.0,
    );
    assert_eq!(w.deliver("{}"), Outcome::Delivered);
    assert_eq!(clock.pauses(), [100, 200, 400]);
    assert_eq!(w.metrics.failures.get(), 3);
    assert_eq!(w.metrics.delivered.get(), 1);
    assert!(w.metrics.dropped_by_reason().is_empty());
}

#[test]
fn jittered_schedule_is_capped_and_exhaustion_is_counted() {
    let (mut w, clock) = worker(
        (0..10).map(|_| Err(PostError::Status(503))).collect(),
        6,
        0.0,
    );
    assert_eq!(
        w.deliver("{}"),
        Outcome::Dropped(DropReason::RetriesExhausted)
    );
    // Jitter 0: half of 100, 200, 400, 500 (cap), 500.
    assert_eq!(clock.pauses(), [50, 100, 200, 250, 250]);
    assert_eq!(w.metrics.failures.get(), 6);
    assert_eq!(w.metrics.delivered.get(), 0);
    assert_eq!(w.metrics.dropped_by_reason(), [("retries_exhausted", 1)]);
}

#[test]
fn retry_after_stretches_the_pause_and_client_errors_are_final() {
    let throttled = PostError::RetryAfter {
        status: 429,
        after: Duration::from_secs(30),
    };
    let (mut w, clock) = worker(vec![Err(throttled)], 6, 0.0);
    assert_eq!(w.deliver("{}"), Outcome::Delivered);
    assert_eq!(clock.pauses(), [30_000], "at least what the receiver asked");
    let (mut w, clock) = worker(vec![Err(PostError::Status(403))], 6, 0.0);
    assert_eq!(w.deliver("{}"), Outcome::Dropped(DropReason::Rejected));
    assert!(clock.pauses().is_empty(), "no retry after a 403");
    assert_eq!(w.metrics.dropped_by_reason(), [("rejected", 1)]);
}

#[test]
fn shutdown_deadline_cuts_retries_short() {
    let (mut w, clock) = worker((0..10).map(|_| Err(PostError::Timeout)).collect(), 10, 1.0);
    w.shutdown.start(clock.now() + Duration::from_millis(250));
    assert_eq!(w.deliver("{}"), Outcome::Dropped(DropReason::Shutdown));
    // 100, then clamped to the 150 ms left.
    assert_eq!(clock.pauses(), [100, 150]);
    assert_eq!(w.metrics.dropped_by_reason(), [("shutdown", 1)]);
}

/// Blocks in `post` until released; tells when it is entered.
struct Gate {
    entered: mpsc::Sender<String>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Post for Gate {
    fn post(&mut self, body: &str) -> Result<(), PostError> {
        let _ = self.entered.send(body.to_owned());
        let _ = self.release.lock().unwrap().recv();
        Ok(())
    }
}

fn gated(queue: usize) -> (WebhookSink, mpsc::Receiver<String>, mpsc::Sender<()>) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let mut config = WebhookConfig::new("http://127.0.0.1:9/".into());
    config.queue = queue;
    let sink = WebhookSink::start_with(
        &config,
        SinkMetrics::default(),
        Box::new(Gate {
            entered: entered_tx,
            release: Arc::new(Mutex::new(release_rx)),
        }),
        Arc::new(super::worker::SystemClock),
    )
    .unwrap();
    (sink, entered, release)
}

#[test]
fn full_queue_drops_without_blocking_and_counts() {
    let (mut sink, entered, release) = gated(2);
    sink.send("0".into(), false);
    assert_eq!(entered.recv_timeout(Duration::from_secs(5)).unwrap(), "0");
    // The worker is stuck in post("0"): 2 fit in the queue, 7 are dropped, none blocks.
    let started = Instant::now();
    for n in 1..10 {
        sink.send(n.to_string().into(), false);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "send never blocks"
    );
    assert_eq!(sink.metrics().queue_depth.get(), 2);
    assert_eq!(sink.metrics().dropped_by_reason(), [("queue_full", 7)]);
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    sink.finish(Duration::from_secs(5));
    let delivered: Vec<String> = entered.try_iter().collect();
    assert_eq!(delivered, ["1", "2"], "the queued ones, in order");
    assert_eq!(sink.metrics().delivered.get(), 3);
    assert_eq!(sink.metrics().queue_depth.get(), 0);
}

#[test]
fn records_still_queued_past_the_grace_period_are_dropped_as_shutdown() {
    let (mut sink, entered, release) = gated(8);
    sink.send("0".into(), false);
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    for n in 1..4 {
        sink.send(n.to_string().into(), false);
    }
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let _ = release.send(());
    });
    sink.finish(Duration::ZERO);
    releaser.join().unwrap();
    // The attempt in flight at the deadline counts as dropped too, even if it ends well later.
    assert_eq!(sink.metrics().delivered.get(), 0);
    assert_eq!(sink.metrics().dropped_by_reason(), [("shutdown", 4)]);
    assert_eq!(sink.metrics().queue_depth.get(), 0);
    sink.send("late".into(), true);
    assert_eq!(sink.metrics().dropped_by_reason(), [("shutdown", 5)]);
    assert_eq!(
        sink.metrics().evidence_dropped(DropReason::Shutdown),
        4,
        "the late loss record is counted but not reported again"
    );
}

#[test]
fn an_endpoint_that_never_answers_does_not_hold_up_the_stop() {
    let (mut sink, entered, _release) = gated(8);
    sink.send("0".into(), false);
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    sink.send("1".into(), true);
    let started = Instant::now();
    sink.finish(Duration::from_millis(200));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "finish returns at the deadline"
    );
    assert_eq!(sink.metrics().dropped_by_reason(), [("shutdown", 2)]);
    assert_eq!(sink.metrics().evidence_dropped(DropReason::Shutdown), 1);
}

#[test]
fn dropped_loss_records_are_counted_but_not_reported_again() {
    let (mut sink, entered, release) = gated(1);
    sink.send("0".into(), false);
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    sink.send("queued".into(), false);
    sink.send("full".into(), false);
    sink.send("full-loss".into(), true);
    assert_eq!(sink.metrics().dropped_by_reason(), [("queue_full", 2)]);
    assert_eq!(sink.metrics().evidence_dropped(DropReason::QueueFull), 1);
    for _ in 0..2 {
        release.send(()).unwrap();
    }
    sink.finish(Duration::from_secs(5));
    assert_eq!(sink.metrics().delivered.get(), 2);
}
