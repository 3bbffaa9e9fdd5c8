//! The worker task: takes items off the queue into a batch per lane, encodes a batch once it is
//! full or has waited `linger`, and delivers it ([`retry::deliver`]) with at most `in_flight`
//! batches on their way at once. At shutdown it delivers what is left until the deadline and
//! counts the rest.
use std::sync::Arc;

use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::{
    Deadline, DropReason, Settings, Sink, Tally,
    retry::{self, Job, Shared},
};

/// A lane's batch being filled.
struct Batch<I> {
    items: Vec<I>,
    /// How many of `items` are loss records.
    loss: u64,
}

pub(super) struct Worker<S: Sink, T> {
    shared: Arc<Shared<S, T>>,
    rx: mpsc::Receiver<S::Item>,
    stop: watch::Receiver<Deadline>,
    /// One per lane, in `S::LANES` order.
    batches: Vec<Batch<S::Item>>,
    /// Batches being delivered (each with its retries), at most `settings.in_flight`.
    in_flight: JoinSet<()>,
}

impl<S: Sink, T: Tally<Lane = S::Lane>> Worker<S, T> {
    pub(super) fn new(
        sink: S,
        tally: Arc<T>,
        settings: Settings,
        rx: mpsc::Receiver<S::Item>,
        stop: watch::Receiver<Deadline>,
    ) -> Self {
        let batches = S::LANES
            .iter()
            .map(|_| Batch {
                items: Vec::new(),
                loss: 0,
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                sink,
                tally,
                settings,
            }),
            rx,
            stop,
            batches,
            in_flight: JoinSet::new(),
        }
    }

    pub(super) async fn run(mut self) {
        let linger = self.shared.settings.linger;
        let mut flush_at: Option<tokio::time::Instant> = None;
        let mut stop_gone = false;
        loop {
            if self.stop.borrow().is_some() {
                break;
            }
            let lingered = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(item) => {
                        flush_at.get_or_insert_with(|| tokio::time::Instant::now() + linger);
                        if self.add(item) {
                            self.flush().await;
                            flush_at = None;
                        }
                    }
                    None => break,
                },
                () = lingered => {
                    self.flush().await;
                    flush_at = None;
                }
                changed = self.stop.changed(), if !stop_gone => {
                    // The handle gone without stopping: run until the queue closes.
                    stop_gone = changed.is_err();
                }
            }
        }
        self.drain().await;
        while let Some(done) = self.in_flight.join_next().await {
            self.check(done);
        }
    }

    /// Logs a delivery that panicked (its batch is lost uncounted: a bug).
    fn check(&self, done: Result<(), tokio::task::JoinError>) {
        if let Err(error) = done {
            tracing::error!(sink = &*self.shared.settings.name, %error, "a delivery failed");
        }
    }

    /// Puts `item` in its lane's batch; true when that batch is full.
    fn add(&mut self, item: S::Item) -> bool {
        let lane = S::lane(&item);
        self.shared.tally.queue_depth(lane, -1);
        let i = S::LANES.iter().position(|l| *l == lane).unwrap_or(0);
        let batch = &mut self.batches[i];
        batch.loss += u64::from(S::is_loss(&item));
        batch.items.push(item);
        batch.items.len() >= self.shared.settings.batch.max(1)
    }

    /// Shutdown: sends what is queued until the deadline (every attempt watches it); what
    /// is still queued after it is dropped here, without a request.
    async fn drain(&mut self) {
        while let Ok(item) = self.rx.try_recv() {
            let past = (*self.stop.borrow()).is_some_and(|d| tokio::time::Instant::now() >= d);
            if past {
                let lane = S::lane(&item);
                self.shared.tally.queue_depth(lane, -1);
                let loss = u64::from(S::is_loss(&item));
                self.shared.count_drop(lane, DropReason::Shutdown, 1, loss);
            } else if self.add(item) {
                self.flush().await;
            }
        }
        self.flush().await;
    }

    /// Encodes every lane's batch and starts delivering it.
    async fn flush(&mut self) {
        for (i, lane) in S::LANES.iter().enumerate() {
            let batch = &mut self.batches[i];
            if batch.items.is_empty() {
                continue;
            }
            let items = std::mem::take(&mut batch.items);
            let loss = std::mem::take(&mut batch.loss);
            let n = items.len() as u64;
            let payload = self.shared.sink.encode(*lane, items);
            self.dispatch(Job {
                lane: *lane,
                payload,
                n,
                loss,
            })
            .await;
        }
    }

    /// Starts delivering `job` once fewer than `in_flight` batches are on their way.
    async fn dispatch(&mut self, job: Job<S>) {
        while let Some(done) = self.in_flight.try_join_next() {
            self.check(done);
        }
        while self.in_flight.len() >= self.shared.settings.in_flight.max(1) {
            if let Some(done) = self.in_flight.join_next().await {
                self.check(done);
            }
        }
        let delivery = retry::deliver(self.shared.clone(), self.stop.clone(), job);
        self.in_flight.spawn(delivery);
    }
}
