//! Per-tenant sealed history, end to end: what the agent keeps ([`record`]: ended spans, loss
//! records, store gaps, and a start/alive/stop mark per agent run), whose history each record
//! goes to ([`route`]), the thread that seals it off the pipeline ([`writer`]), and reading it
//! back ([`replay`]: every record re-evaluated with the real detector, on every core, memory
//! bounded) for `seam replay`, `seam report` and `seam validate`.
//!
//! **Scopes.** A span goes to its acting tenant's history and, when it touched another
//! tenant's resource (a crossing), to that tenant's history too: each tenant's audit sees every
//! crossing that involved it, sealed under its own key. A span of no tenant goes to the node's
//! history, as do loss records, store gaps and run marks.
//!
//! **Losses.** The pipeline never waits on the disk: a full queue drops the record and counts
//! it (`seam_lost_total{source="store",probe="queue_full"}`); records the store cannot write
//! (disk full, write error, missing key) are counted by reason and recorded as gap records once
//! the node's history can be written again.
pub(crate) mod breach;
pub(crate) mod record;
pub(crate) mod replay;
pub(crate) mod report;
pub(crate) mod route;
#[cfg(test)]
mod tests;
mod writer;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::Ordering,
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::JoinHandle,
};

use record::{LossEntry, RunEntry, RunTotals};
pub(crate) use writer::HistoryStats;
use writer::{Job, Shared, Writer};

use crate::{
    evidence::{
        keys::{Actor, ActorKind, Keyring, KeyringError, MasterKey, keyring_dir},
        store::{Store, StoreError, StoreOptions},
    },
    model::{
        clock::UnixNanos,
        loss::Loss,
        spans::Span,
        vocab::{LossSource, RunPhase, StoreLoss},
    },
    policy::RuleSet,
};

/// Why the history could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HistoryError {
    /// The store's keyring could not be opened or created (wrong master key, unreadable).
    #[error("cannot open the history's keys: {0}")]
    Keyring(#[source] KeyringError),
    /// The store directory could not be opened.
    #[error("cannot open the history store: {0}")]
    Store(#[source] StoreError),
    /// The writer thread could not be started.
    #[error("cannot start the history thread: {0}; check the process and thread limits")]
    Thread(#[source] std::io::Error),
}

/// Where and how the history is kept.
pub(crate) struct HistoryConfig {
    pub dir: PathBuf,
    pub master: MasterKey,
    pub options: StoreOptions,
    /// Records queued for the writer at most; more are dropped and counted.
    pub queue: usize,
}

/// Who is writing: the run record's fields.
pub(crate) struct RunInfo {
    pub node: String,
    pub live_hooks: Vec<String>,
    pub rules_sha256: Option<String>,
}

/// The pipeline's side of the history: encodes and queues records; the writer thread seals
/// them.
pub(crate) struct History {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<HistoryStats>>,
    buf: Vec<u8>,
}

impl History {
    /// Opens (creating) the store and its keyring and starts the writer, which writes this
    /// run's start record first.
    pub(crate) fn start(config: HistoryConfig, info: RunInfo) -> Result<Self, HistoryError> {
        let keys = keyring_dir(&config.dir);
        let actor = || Actor::current(ActorKind::Agent);
        let keyring = match Keyring::check_value(&keys) {
            Err(KeyringError::NotInitialized { .. }) => {
                tracing::info!(dir = %keys.display(), "creating the history's keyring");
                Keyring::init(&keys, config.master, actor())
            }
            _ => Keyring::open(&keys, config.master, actor()),
        }
        .map_err(HistoryError::Keyring)?;
        let store = Store::open(&config.dir, Arc::new(keyring), config.options)
            .map_err(HistoryError::Store)?;
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let shared = Arc::new(Shared::default());
        let mut run_id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut run_id);
        let writer = Writer {
            store,
            rx,
            shared: Arc::clone(&shared),
            run: RunEntry {
                phase: RunPhase::Start,
                run_id: crate::evidence::keys::hex(&run_id),
                time: UnixNanos::now(),
                node: info.node,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                live_hooks: info.live_hooks,
                rules_sha256: info.rules_sha256,
                totals: None,
            },
            scopes: HashMap::new(),
            buf: Vec::new(),
            pending: Vec::new(),
            queue_reported: 0,
            stats: HistoryStats::default(),
        };
        let thread = std::thread::Builder::new()
            .name("seam-history".into())
            .spawn(move || writer.run())
            .map_err(HistoryError::Thread)?;
        tracing::info!(store = %config.dir.display(), "keeping sealed history");
        Ok(Self {
            tx,
            shared,
            thread: Some(thread),
            buf: Vec::with_capacity(512),
        })
    }

    fn queue(&mut self, job: Job) {
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// An ended span: to its tenants' histories ([`route`]), or the node's.
    pub(crate) fn span(&mut self, span: &Span, rules: &RuleSet) {
        let tenants = route::tenants(span, rules);
        let copies = u8::try_from(tenants.len().max(1)).unwrap_or(u8::MAX);
        record::encode_span(&mut self.buf, copies, span);
        let bytes = self.buf.as_slice().to_vec();
        self.queue(Job::Append {
            tenants,
            time_ns: span.start.as_u64(),
            bytes,
        });
    }

    /// A loss record: to the node's history. The store's own losses are recorded by the
    /// writer (as gap records, with scopes and times), not here.
    pub(crate) fn loss(&mut self, loss: &Loss) {
        if loss.source() == LossSource::Store {
            return;
        }
        record::encode_loss(&mut self.buf, &LossEntry::from(loss));
        let bytes = self.buf.as_slice().to_vec();
        self.queue(Job::Append {
            tenants: Vec::new(),
            time_ns: loss.time.as_u64(),
            bytes,
        });
    }

    /// New rules are in force: a run record with their hash.
    pub(crate) fn rules_reloaded(&mut self, rules: &RuleSet) {
        self.queue(Job::RulesReloaded {
            rules_sha256: rules.sha256(),
        });
    }

    /// Records lost so far, as running totals by reason (`queue_full`, `disk_full`,
    /// `write_error`, `no_key`, `too_large`), for `seam_lost_total{source="store"}`.
    pub(crate) fn lost(&self) -> [(StoreLoss, u64); 5] {
        let s = &self.shared;
        let dropped = |i: usize| s.dropped[i].load(Ordering::Relaxed);
        [
            (StoreLoss::QueueFull, s.queue_full.load(Ordering::Relaxed)),
            (StoreLoss::DiskFull, dropped(0)),
            (StoreLoss::WriteError, dropped(1)),
            (StoreLoss::NoKey, dropped(2)),
            (StoreLoss::TooLarge, s.too_large.load(Ordering::Relaxed)),
        ]
    }

    /// Writes the stop record (waiting for room in the queue), closes the store and returns
    /// what the history did.
    pub(crate) fn finish(mut self, mut totals: RunTotals) -> HistoryStats {
        totals.records_lost = self.lost().iter().map(|(_, n)| n).sum();
        if self.tx.send(Job::Stop { totals }).is_err() {
            tracing::warn!("the history thread ended early; its stop record is missing");
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(stats)) => stats,
            _ => {
                tracing::error!("the history thread failed");
                HistoryStats::default()
            }
        }
    }
}

impl Drop for History {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Disconnecting ends the writer (it writes a stop record without totals).
            let (tx, _) = mpsc::sync_channel(1);
            drop(std::mem::replace(&mut self.tx, tx));
            let _ = thread.join();
        }
    }
}
