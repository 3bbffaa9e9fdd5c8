//! The history's own thread: takes encoded records off a bounded queue and appends them to the
//! sealed store, flushes about every second, applies retention every minute, writes an `alive`
//! mark every minute, and turns what the store could not write into gap records and loss
//! totals, so detection and the feeds never wait on the disk.
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use serde::Serialize;

use super::record::{self, LossEntry, RunEntry, RunTotals};
use crate::{
    evidence::{
        keys::Scope,
        store::{Gap, GapReason, Store, StoreError, StoreStats, now_ns},
    },
    model::{
        clock::UnixNanos,
        loss::LossSubject,
        spans::TenantName,
        vocab::{LossSource, RunPhase, StoreLoss},
    },
};

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const RETENTION_EVERY: Duration = Duration::from_secs(60);
const ALIVE_EVERY: Duration = Duration::from_secs(60);

/// What the pipeline sends.
pub(super) enum Job {
    /// An encoded record for these tenants' histories (none: the node's).
    Append {
        tenants: Vec<TenantName>,
        time_ns: u64,
        bytes: Vec<u8>,
    },
    /// New rules are in force.
    RulesReloaded { rules_sha256: Option<String> },
    /// The agent stops: write the stop record and close the store.
    Stop { totals: RunTotals },
}

/// Running totals shared with the pipeline (which reports them as losses).
#[derive(Default)]
pub(super) struct Shared {
    /// Records refused because the queue was full.
    pub queue_full: AtomicU64,
    /// Records the store dropped, by [`GapReason`] (disk full, write error, no key).
    pub dropped: [AtomicU64; 3],
    /// Records refused for their size.
    pub too_large: AtomicU64,
}

pub(super) fn reason_index(reason: GapReason) -> usize {
    match reason {
        GapReason::DiskFull => 0,
        GapReason::WriteError => 1,
        GapReason::NoKey => 2,
    }
}

/// What the history did in one agent run (in `--stats-file`).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct HistoryStats {
    /// Records taken off the queue (each written to one scope or more).
    pub records: u64,
    /// Records refused because the queue was full.
    pub queue_full: u64,
    /// Store gaps recorded in the history.
    pub gaps_recorded: u64,
    pub store: StoreStats,
}

pub(super) struct Writer {
    pub store: Store,
    pub rx: Receiver<Job>,
    pub shared: Arc<Shared>,
    pub run: RunEntry,
    pub scopes: HashMap<TenantName, Scope>,
    pub buf: Vec<u8>,
    /// Gaps not yet in the history (their record could not be written yet).
    pub pending: Vec<Gap>,
    pub queue_reported: u64,
    pub stats: HistoryStats,
}

impl Writer {
    pub(super) fn run(mut self) -> HistoryStats {
        self.mark(RunPhase::Start, None);
        let now = Instant::now();
        let (mut flush_at, mut retain_at, mut alive_at) =
            (now + FLUSH_EVERY, now + RETENTION_EVERY, now + ALIVE_EVERY);
        let totals = loop {
            let wait = flush_at.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(Job::Append {
                    tenants,
                    time_ns,
                    bytes,
                }) => self.append(&tenants, time_ns, &bytes),
                Ok(Job::RulesReloaded { rules_sha256 }) => {
                    self.run.rules_sha256 = rules_sha256;
                    self.mark(RunPhase::RulesReloaded, None);
                }
                Ok(Job::Stop { totals }) => break Some(totals),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break None,
            }
            let now = Instant::now();
            if now >= alive_at {
                self.mark(RunPhase::Alive, None);
                alive_at = now + ALIVE_EVERY;
            }
            if now >= flush_at {
                self.housekeeping();
                flush_at = now + FLUSH_EVERY;
            }
            if now >= retain_at {
                if let Err(error) = self.store.apply_retention(now_ns()) {
                    tracing::warn!(%error, "history retention failed");
                }
                retain_at = now + RETENTION_EVERY;
            }
        };
        self.mark(RunPhase::Stop, totals);
        self.housekeeping();
        if !self.pending.is_empty() {
            tracing::warn!(
                gaps = self.pending.len(),
                "history gaps could not be recorded in the store (it is still failing); they \
                 are in the log and the loss records only"
            );
        }
        self.stats.queue_full = self.shared.queue_full.load(Ordering::Relaxed);
        match self.store.close() {
            Ok(stats) => self.stats.store = stats,
            Err(error) => tracing::warn!(%error, "closing the history store failed"),
        }
        self.stats.clone()
    }

    fn scope(&mut self, tenant: &TenantName) -> Option<Scope> {
        if let Some(scope) = self.scopes.get(tenant) {
            return Some(scope.clone());
        }
        match Scope::tenant(tenant.as_str()) {
            Ok(scope) => {
                self.scopes.insert(tenant.clone(), scope.clone());
                Some(scope)
            }
            Err(error) => {
                tracing::warn!(%tenant, %error, "tenant name cannot name a history scope");
                None
            }
        }
    }

    fn append(&mut self, tenants: &[TenantName], time_ns: u64, bytes: &[u8]) {
        self.stats.records += 1;
        if tenants.is_empty() {
            self.append_to(&Scope::Node, time_ns, bytes);
        }
        for tenant in tenants {
            if let Some(scope) = self.scope(tenant) {
                self.append_to(&scope, time_ns, bytes);
            }
        }
    }

    fn append_to(&mut self, scope: &Scope, time_ns: u64, bytes: &[u8]) {
        match self.store.append(scope, time_ns, bytes) {
            Ok(()) => {}
            Err(StoreError::RecordTooLarge { .. }) => {
                self.shared.too_large.fetch_add(1, Ordering::Relaxed);
            }
            // Dropped records are in the store's gaps, taken at the next housekeeping.
            Err(error) => tracing::debug!(%error, "history append failed"),
        }
    }

    /// Appends a run record (a copy of this run's with `phase`) to the node's history.
    fn mark(&mut self, phase: RunPhase, totals: Option<RunTotals>) {
        self.run.phase = phase;
        self.run.time = UnixNanos::now();
        self.run.totals = totals;
        let mut buf = std::mem::take(&mut self.buf);
        record::encode_run(&mut buf, &self.run);
        self.append_to(&Scope::Node, self.run.time.as_u64(), &buf);
        self.buf = buf;
    }

    /// Records queue losses and pending gaps in the node's history, flushes, and takes the
    /// store's new gaps: their records go to the loss totals; the gaps are recorded at the next
    /// housekeeping, or kept while the node's history cannot be written.
    fn housekeeping(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        let queue_full = self.shared.queue_full.load(Ordering::Relaxed);
        if queue_full > self.queue_reported {
            let lost = queue_full - self.queue_reported;
            self.queue_reported = queue_full;
            let loss = LossEntry {
                time: UnixNanos::now(),
                node: self.run.node.clone(),
                source: LossSource::Store,
                probe: LossSubject::Store(StoreLoss::QueueFull).to_string(),
                lost,
                lost_total: queue_full,
                message: format!(
                    "{lost} history records dropped: the store's queue was full (raise \
                     --store-queue or give the store a faster disk)"
                ),
            };
            record::encode_loss(&mut buf, &loss);
            self.append_to(&Scope::Node, loss.time.as_u64(), &buf);
        }
        let written = self.pending.len() as u64;
        for gap in &self.pending {
            record::encode_gap(&mut buf, &record::GapEntry::from(gap));
            self.store.append(&Scope::Node, gap.updated_ns, &buf).ok();
        }
        self.buf = buf;
        if let Err(error) = self.store.flush() {
            tracing::debug!(%error, "history flush failed");
        }
        let mut fresh = Vec::new();
        let mut gap_records_lost = false;
        for mut gap in self.store.take_gaps() {
            if gap.scope == Scope::Node && written > 0 && !gap_records_lost {
                // The gap records themselves were in the failed frame: not evidence lost.
                gap_records_lost = true;
                gap.records = gap.records.saturating_sub(written);
            }
            if gap.records == 0 {
                continue;
            }
            self.shared.dropped[reason_index(gap.reason)].fetch_add(gap.records, Ordering::Relaxed);
            tracing::warn!(
                scope = %gap.scope,
                reason = gap.reason.as_str(),
                records = gap.records,
                "history records could not be written"
            );
            fresh.push(gap);
        }
        if gap_records_lost {
            merge(&mut self.pending, fresh);
        } else {
            self.stats.gaps_recorded += written;
            self.pending = fresh;
        }
    }
}

/// Adds `fresh` gaps to `pending`, one per scope and reason (so a long outage stays bounded).
fn merge(pending: &mut Vec<Gap>, fresh: Vec<Gap>) {
    for gap in fresh {
        match pending
            .iter_mut()
            .find(|p| p.scope == gap.scope && p.reason == gap.reason)
        {
            Some(p) => {
                p.records += gap.records;
                p.from_ns = p.from_ns.min(gap.from_ns);
                p.to_ns = p.to_ns.max(gap.to_ns);
                p.started_ns = p.started_ns.min(gap.started_ns);
                p.updated_ns = p.updated_ns.max(gap.updated_ns);
            }
            None => pending.push(gap),
        }
    }
}
