//! The worker with a scripted sink: batching, retries and what they count, the per-attempt
//! timeout, the in-flight bound, a full queue and the shutdown deadline. (The retry schedule
//! itself is tested in `retry.rs`.)
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    Delivery, DeliveryError, DropReason, RetryAction, RetryLogic, RetryPolicy, Settings, Sink,
    Tally, backoff::Backoff,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    A,
    B,
}

struct Item {
    lane: Lane,
    id: u32,
    loss: bool,
}

fn item(id: u32) -> Item {
    Item {
        lane: Lane::A,
        id,
        loss: false,
    }
}

/// What the scripted receiver does with one request.
#[derive(Clone, Debug)]
enum Step {
    Reply(RetryAction),
    /// Fails to connect.
    Fail {
        retriable: bool,
    },
    /// Never answers.
    Hang,
    /// Answers `Successful` after a while.
    Slow(Duration),
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused")]
struct Failed {
    retriable: bool,
}

/// Answers from a script (then success), recording every payload and how many requests were
/// on their way at once.
struct Scripted(Arc<State>);

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Step>>,
    sent: Mutex<Vec<Vec<u32>>>,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl State {
    fn sent(&self) -> Vec<Vec<u32>> {
        self.sent.lock().unwrap().clone()
    }
}

impl RetryLogic for Scripted {
    type Response = RetryAction;
    type Error = Failed;

    fn is_retriable_error(&self, error: &Failed) -> bool {
        error.retriable
    }

    fn should_retry_response(&self, response: &RetryAction) -> RetryAction {
        response.clone()
    }
}

impl Sink for Scripted {
    type Item = Item;
    type Lane = Lane;
    type Payload = Vec<u32>;

    const LANES: &'static [Lane] = &[Lane::A, Lane::B];

    fn lane(item: &Item) -> Lane {
        item.lane
    }

    fn lane_name(lane: Lane) -> &'static str {
        match lane {
            Lane::A => "a",
            Lane::B => "b",
        }
    }

    fn is_loss(item: &Item) -> bool {
        item.loss
    }

    fn encode(&self, _: Lane, items: Vec<Item>) -> Vec<u32> {
        items.iter().map(|i| i.id).collect()
    }

    async fn send(&self, payload: &Vec<u32>) -> Result<RetryAction, Failed> {
        let state = &self.0;
        state.sent.lock().unwrap().push(payload.clone());
        let step = state.script.lock().unwrap().pop_front();
        let now = state.now.fetch_add(1, Ordering::SeqCst) + 1;
        state.most.fetch_max(now, Ordering::SeqCst);
        let answer = match step {
            Some(Step::Reply(action)) => Ok(action),
            Some(Step::Fail { retriable }) => Err(Failed { retriable }),
            Some(Step::Hang) => std::future::pending().await,
            Some(Step::Slow(d)) => {
                tokio::time::sleep(d).await;
                Ok(RetryAction::Successful { refused: 0 })
            }
            None => Ok(RetryAction::Successful { refused: 0 }),
        };
        state.now.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

/// Drops: (lane, reason) -> (items, loss records).
type Drops = BTreeMap<(Lane, &'static str), (u64, u64)>;

/// Counts, by lane and reason.
#[derive(Default)]
struct Counts {
    depth: AtomicI64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: Mutex<Drops>,
}

impl Counts {
    fn dropped(&self) -> Vec<(Lane, &'static str, u64, u64)> {
        let dropped = self.dropped.lock().unwrap();
        dropped.iter().map(|(k, v)| (k.0, k.1, v.0, v.1)).collect()
    }
}

impl Tally for Counts {
    type Lane = Lane;

    fn queue_depth(&self, _: Lane, delta: i64) {
        self.depth.fetch_add(delta, Ordering::SeqCst);
    }

    fn delivered(&self, _: Lane, n: u64) {
        self.delivered.fetch_add(n, Ordering::SeqCst);
    }

    fn attempt_failed(&self, _: Lane) {
        self.failed.fetch_add(1, Ordering::SeqCst);
    }

    fn dropped(&self, lane: Lane, reason: DropReason, n: u64, loss: u64) {
        let mut dropped = self.dropped.lock().unwrap();
        let entry = dropped.entry((lane, reason.as_str())).or_default();
        entry.0 += n;
        entry.1 += loss;
    }
}

fn settings() -> Settings {
    Settings {
        name: "test".into(),
        queue: 64,
        batch: 1,
        linger: Duration::from_millis(50),
        in_flight: 1,
        timeout: Duration::from_secs(60),
        retry: RetryPolicy {
            attempts: 6,
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(2),
            },
            ..RetryPolicy::default()
        },
    }
}

type Worker = Delivery<Scripted, Counts>;

fn start(script: Vec<Step>, settings: Settings) -> (Worker, Arc<State>, Arc<Counts>) {
    let state = Arc::new(State {
        script: Mutex::new(script.into()),
        ..State::default()
    });
    let counts = Arc::new(Counts::default());
    let worker = Delivery::start(Scripted(state.clone()), counts.clone(), settings).unwrap();
    (worker, state, counts)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits (5 s at most) until `done`.
async fn until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(done(), "timed out waiting");
}

/// Stops with `grace` and waits for the worker; returns how long that took.
async fn finish(worker: Worker, grace: Duration) -> Duration {
    let started = Instant::now();
    worker.stop(started + grace);
    worker.join().await;
    started.elapsed()
}

#[test]
fn batches_leave_full_or_after_the_linger() {
    let rt = runtime();
    let _enter = rt.enter();
    let mut settings = settings();
    settings.batch = 3;
    let (worker, state, counts) = start(Vec::new(), settings);
    rt.block_on(async {
        for id in 0..7 {
            worker.send(item(id));
        }
        worker.send(Item {
            lane: Lane::B,
            id: 7,
            loss: false,
        });
        // Two full batches at once; the rest (one per lane) only after the linger.
        until(|| counts.delivered.load(Ordering::SeqCst) == 8).await;
        assert_eq!(
            state.sent(),
            [vec![0, 1, 2], vec![3, 4, 5], vec![6], vec![7]]
        );
        assert_eq!(counts.depth.load(Ordering::SeqCst), 0);
        finish(worker, Duration::from_secs(5)).await;
    });
    assert!(counts.dropped().is_empty(), "{:?}", counts.dropped());
}

#[test]
fn retries_until_delivered_counting_each_failed_attempt() {
    let rt = runtime();
    let _enter = rt.enter();
    let retry = RetryAction::Retry {
        reason: "503".into(),
        after: None,
    };
    let script = vec![
        Step::Reply(retry.clone()),
        Step::Fail { retriable: true },
        Step::Reply(retry),
    ];
    let (worker, state, counts) = start(script, settings());
    rt.block_on(async {
        worker.send(item(1));
        until(|| counts.delivered.load(Ordering::SeqCst) == 1).await;
        finish(worker, Duration::from_secs(5)).await;
    });
    assert_eq!(state.sent().len(), 4, "three failures, then delivered");
    assert_eq!(counts.failed.load(Ordering::SeqCst), 3);
    assert!(counts.dropped().is_empty(), "{:?}", counts.dropped());
}

#[test]
fn refusals_and_exhaustion_drop_with_their_reason() {
    let rt = runtime();
    let _enter = rt.enter();
    let retry = Step::Reply(RetryAction::Retry {
        reason: "503".into(),
        after: None,
    });
    let script = vec![
        // Item 1: refused as it is, not retried.
        Step::Reply(RetryAction::DontRetry {
            reason: "403".into(),
        }),
        // Item 2: an error that is not worth retrying either.
        Step::Fail { retriable: false },
        // Item 3: every attempt fails.
        retry.clone(),
        retry.clone(),
        retry,
    ];
    let mut settings = settings();
    settings.retry.attempts = 3;
    let (worker, state, counts) = start(script, settings);
    rt.block_on(async {
        worker.send(item(1));
        worker.send(Item {
            lane: Lane::A,
            id: 2,
            loss: true,
        });
        worker.send(item(3));
        until(|| counts.dropped().iter().map(|d| d.2).sum::<u64>() == 3).await;
        finish(worker, Duration::from_secs(5)).await;
    });
    assert_eq!(state.sent(), [[1], [2], [3], [3], [3]]);
    assert_eq!(
        counts.dropped(),
        [
            (Lane::A, "rejected", 2, 1),
            (Lane::A, "retries_exhausted", 1, 0)
        ]
    );
    assert_eq!(counts.failed.load(Ordering::SeqCst), 5);
    assert_eq!(counts.delivered.load(Ordering::SeqCst), 0);
}

#[test]
fn a_partial_success_drops_the_refused_counting_loss_records_first() {
    let rt = runtime();
    let _enter = rt.enter();
    let script = vec![Step::Reply(RetryAction::Successful { refused: 3 })];
    let mut settings = settings();
    settings.batch = 4;
    let (worker, _, counts) = start(script, settings);
    rt.block_on(async {
        for id in 0..4 {
            worker.send(Item {
                lane: Lane::A,
                id,
                loss: id < 2,
            });
        }
        until(|| counts.delivered.load(Ordering::SeqCst) == 1).await;
        finish(worker, Duration::from_secs(5)).await;
    });
    assert_eq!(counts.dropped(), [(Lane::A, "rejected", 3, 2)]);
}

#[test]
fn an_attempt_that_hangs_times_out_and_is_retried() {
    let rt = runtime();
    let _enter = rt.enter();
    let mut settings = settings();
    settings.timeout = Duration::from_millis(50);
    let (worker, state, counts) = start(vec![Step::Hang], settings);
    let took = rt.block_on(async {
        let started = Instant::now();
        worker.send(item(1));
        until(|| counts.delivered.load(Ordering::SeqCst) == 1).await;
        let took = started.elapsed();
        finish(worker, Duration::from_secs(5)).await;
        took
    });
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert_eq!(state.sent().len(), 2);
    assert_eq!(counts.failed.load(Ordering::SeqCst), 1);
}

#[test]
fn at_most_in_flight_requests_are_on_their_way_at_once() {
    let rt = runtime();
    let _enter = rt.enter();
    let slow = Step::Slow(Duration::from_millis(30));
    let mut settings = settings();
    settings.in_flight = 2;
    let (worker, state, counts) = start(vec![slow; 6], settings);
    rt.block_on(async {
        for id in 0..6 {
            worker.send(item(id));
        }
        until(|| counts.delivered.load(Ordering::SeqCst) == 6).await;
        finish(worker, Duration::from_secs(5)).await;
    });
    assert_eq!(state.most.load(Ordering::SeqCst), 2);
}

#[test]
fn a_full_queue_drops_without_waiting_and_the_deadline_ends_a_hung_receiver() {
    let rt = runtime();
    let _enter = rt.enter();
    let mut settings = settings();
    settings.queue = 2;
    let (worker, state, counts) = start(vec![Step::Hang], settings);
    let (sending, stopping) = rt.block_on(async {
        worker.send(item(0));
        until(|| state.sent().len() == 1).await;
        worker.send(item(1));
        // Taken off the queue: held ready while item 0 hangs.
        until(|| counts.depth.load(Ordering::SeqCst) == 0).await;
        let started = Instant::now();
        for id in 2..10 {
            worker.send(Item {
                lane: Lane::A,
                id,
                loss: id == 9,
            });
        }
        let sending = started.elapsed();
        assert_eq!(counts.depth.load(Ordering::SeqCst), 2);
        (sending, finish(worker, Duration::from_millis(100)).await)
    });
    assert!(sending < Duration::from_secs(1), "send never waits");
    assert!(
        stopping < Duration::from_secs(5),
        "stopped at the deadline, not after the 60 s timeout: {stopping:?}"
    );
    assert_eq!(
        counts.dropped(),
        [(Lane::A, "queue_full", 6, 1), (Lane::A, "shutdown", 4, 0)],
        "one hung, one held, two queued: dropped at shutdown"
    );
    assert_eq!(counts.depth.load(Ordering::SeqCst), 0);
    assert_eq!(state.sent(), [[0]], "nothing sent past the deadline");
}

#[test]
fn stopping_delivers_what_is_queued_before_the_deadline() {
    let rt = runtime();
    let _enter = rt.enter();
    let mut settings = settings();
    settings.batch = 4;
    settings.linger = Duration::from_secs(60);
    let (worker, state, counts) = start(Vec::new(), settings);
    let took = rt.block_on(async {
        for id in 0..6 {
            worker.send(item(id));
        }
        finish(worker, Duration::from_secs(5)).await
    });
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(state.sent(), [vec![0, 1, 2, 3], vec![4, 5]]);
    assert_eq!(counts.delivered.load(Ordering::SeqCst), 6);
    assert!(counts.dropped().is_empty(), "{:?}", counts.dropped());
}

#[test]
fn outside_a_runtime_start_is_an_error() {
    let result = Delivery::start(
        Scripted(Arc::default()),
        Arc::new(Counts::default()),
        settings(),
    );
    let error = result.err().expect("no runtime");
    assert!(matches!(error, DeliveryError::NoRuntime { .. }));
    assert!(error.to_string().contains("test delivery task"), "{error}");
}
