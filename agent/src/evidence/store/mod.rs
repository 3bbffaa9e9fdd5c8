//! Per-tenant sealed history. Records (opaque bytes with a [`Scope`] and a wall-clock time;
//! serialized spans, to the agent) are buffered per scope and sealed in batches before they
//! leave memory, so a kernel bug, a stolen disk or a misrouted log leaks ciphertext, never
//! another tenant's data.
//!
//! **Scopes.** Each tenant's records are sealed under that tenant's data key, records of no
//! tenant under the node key ([`crate::evidence::keys`]). A crossing between two tenants is evidence for
//! both: the caller appends it to both tenants' scopes, so it is kept in both histories (each
//! sealed under its own tenant's key, readable by either tenant's audit alone).
//!
//! **Layout.** `<store>/segments/<scope stem>/<window>-<created>-<salt>.seg`, an append-only
//! segment per scope and time window (rolled by [`StoreOptions::window`] and
//! [`StoreOptions::max_segment_bytes`]), directories 0700, files 0600. Keys live in
//! `<store>/keys` ([`crate::evidence::keys::keyring_dir`]).
//!
//! **Segment file** (integers little-endian):
//! - The segment header, written twice (a damaged copy is outvoted by the other): magic
//!   `SEAMSEG1`, length u16, version u8, scope (kind u8, name length u16, name), key epoch
//!   u32, key id [8], salt [32], window start u64, created u64, SHA-256 of all that [16].
//! - Frames, each: marker [8] (what a reader searches for to resynchronise after damage,
//!   including a damaged length), ciphertext length u32, sequence u64, flags u8 (1 = last
//!   frame), record count u32, earliest and latest record time u64 ×2 (so a time-range read
//!   skips frames without decrypting), then the AES-256-GCM ciphertext and its 16-byte tag.
//!   57 bytes of overhead per frame.
//! - Frame plaintext: records, each time u64, length u32, bytes (12 bytes of overhead).
//! - A segment is closed by a frame with the last flag (an empty one if need be).
//!
//! **Sealing.** Associated data = the segment header (scope, epoch, key id, salt, window) ||
//! the frame header (sequence, last flag, count, times), so a frame swapped into another
//! segment or tenant, reordered, replayed, altered or a segment cut short is detected:
//! authentication fails, or the sequence jumps, or no last frame is found (like age's STREAM).
//! Nonces never repeat under one key, across restarts too: see [`seal`] (per-segment random
//! salt → HKDF subkey, frame counter as nonce; segments are never reopened).
//!
//! **Crashes and errors.** A frame is one `write`; a crash leaves at most a torn tail, which
//! readers report and skip, and a segment without a last frame, reported as never closed.
//! Records still buffered at a crash are lost (at most one frame per scope; call
//! [`Store::flush`] to bound that in time). A failed write (disk full, I/O error) drops that
//! frame's records, counts them in [`StoreStats`] and in a [`Gap`] (scope, count, time range)
//! the caller takes with [`Store::take_gaps`], cuts the partial frame off, and the next
//! append tries again: appends work again once space returns. Never a panic.
//!
//! **Reading.** [`reader`]: per segment, one frame in memory at a time; segments spread over
//! threads ([`replay`]). Every problem is reported with its file and byte offset.
pub(crate) mod error;
pub(crate) mod format;
pub(crate) mod layout;
pub(crate) mod reader;
pub(crate) mod retention;
pub(crate) mod seal;
#[cfg(test)]
mod tests;
mod writer;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub(crate) use error::{Gap, GapReason, StoreError};
pub(crate) use layout::SegmentFile;
pub(crate) use reader::{IssueKind, Query, ReadIssue, ReadReport, read_segment, replay, segments};
pub(crate) use retention::{Retention, RetentionReport};
use serde::Serialize;
use writer::{Ctx, ScopeWriter};

pub(crate) use crate::evidence::keys::Scope;
use crate::evidence::keys::{Keyring, files};

/// When sealed frames are made durable (fsync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncPolicy {
    /// After every frame: a crash loses only what was still buffered.
    EveryFrame,
    /// At most this long after a frame (and at every flush and segment close).
    Interval(Duration),
    /// Left to the kernel.
    Never,
}

/// How the store batches, rolls, syncs and expires.
#[derive(Clone, Debug)]
pub(crate) struct StoreOptions {
    /// Plaintext bytes per sealed frame (a frame is sealed once its batch reaches this).
    pub frame_bytes: usize,
    /// A segment is closed once it reaches this size.
    pub max_segment_bytes: u64,
    /// A segment is closed at the end of the time window it was opened in.
    pub window: Duration,
    pub sync: SyncPolicy,
    pub retention: Retention,
    /// Benchmarks only: frames are sealed but not written, to time sealing without I/O.
    #[doc(hidden)]
    pub discard_frames: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            frame_bytes: 64 << 10,
            max_segment_bytes: 64 << 20,
            window: Duration::from_secs(3600),
            sync: SyncPolicy::Interval(Duration::from_secs(1)),
            retention: Retention::default(),
            discard_frames: false,
        }
    }
}

/// Counters since the store was opened; every dropped record is in one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct StoreStats {
    pub records_appended: u64,
    /// Records written in sealed frames.
    pub records_sealed: u64,
    /// Records lost to failed writes or missing keys (see the gaps).
    pub records_dropped: u64,
    /// Records refused for their size.
    pub records_rejected: u64,
    pub frames_written: u64,
    pub bytes_plaintext: u64,
    pub bytes_written: u64,
    pub segments_opened: u64,
    pub segments_closed: u64,
    pub segments_removed: u64,
    pub bytes_removed: u64,
    pub write_errors: u64,
    pub syncs: u64,
    pub gaps: u64,
}

/// Wall-clock nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    crate::evidence::keys::now_ns()
}

/// The sealed, per-scope history in one directory.
pub(crate) struct Store {
    root: PathBuf,
    keyring: Arc<Keyring>,
    options: StoreOptions,
    writers: Vec<ScopeWriter>,
    /// Index in `writers` by scope.
    index: HashMap<Scope, usize>,
    /// The writer of the previous append: consecutive appends to one scope skip the lookup.
    last: usize,
    stats: StoreStats,
    gaps: Vec<Gap>,
    closed: bool,
}

impl Store {
    /// Opens (creating) the store in `dir` and applies retention once.
    pub(crate) fn open(
        dir: &Path,
        keyring: Arc<Keyring>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let segments = dir.join(layout::SEGMENTS_DIR);
        files::private_dir(dir)
            .and_then(|()| files::private_dir(&segments))
            .map_err(|source| StoreError::Dir {
                path: segments.clone(),
                source,
            })?;
        let mut store = Self {
            root: dir.to_owned(),
            keyring,
            options: StoreOptions {
                frame_bytes: options.frame_bytes.clamp(1, format::MAX_RECORD_LEN),
                ..options
            },
            writers: Vec::new(),
            index: HashMap::new(),
            last: 0,
            stats: StoreStats::default(),
            gaps: Vec::new(),
            closed: false,
        };
        store.apply_retention(now_ns())?;
        Ok(store)
    }

    /// What the store did so far (the tests and `seam workload store-append`'s progress lines).
    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// The gaps (dropped records) since the last call.
    pub(crate) fn take_gaps(&mut self) -> Vec<Gap> {
        std::mem::take(&mut self.gaps)
    }

    /// Appends one record of `scope` at `unix_time_ns`. It is buffered and sealed with its
    /// batch; an error means records were dropped (counted, and in a gap), not that the store
    /// is unusable.
    pub(crate) fn append(
        &mut self,
        scope: &Scope,
        unix_time_ns: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        self.stats.records_appended += 1;
        if record.len() > format::MAX_RECORD_LEN {
            self.stats.records_rejected += 1;
            return Err(StoreError::RecordTooLarge {
                scope: scope.clone(),
                len: record.len(),
                max: format::MAX_RECORD_LEN,
            });
        }
        if self
            .writers
            .get(self.last)
            .is_none_or(|w| w.scope() != scope)
        {
            self.last = match self.index.get(scope) {
                Some(&i) => i,
                None => {
                    let frame_bytes = self.options.frame_bytes;
                    self.writers
                        .push(ScopeWriter::new(scope.clone(), frame_bytes));
                    self.index.insert(scope.clone(), self.writers.len() - 1);
                    self.writers.len() - 1
                }
            };
        }
        let writer = &mut self.writers[self.last];
        let mut ctx = Ctx {
            root: &self.root,
            keyring: &self.keyring,
            options: &self.options,
            stats: &mut self.stats,
            gaps: &mut self.gaps,
        };
        writer.append(&mut ctx, unix_time_ns, record)
    }

    /// Seals every batch, syncs (unless the policy is never) and closes segments whose time
    /// window has passed. Every scope is attempted; the first error is returned.
    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        self.for_each_writer(|writer, ctx, now| {
            let close = writer.window_passed(now);
            writer.seal(ctx, close)?;
            writer.sync_now(ctx)
        })
    }

    /// Seals every batch as its segment's last frame and closes every segment.
    pub(crate) fn close(mut self) -> Result<StoreStats, StoreError> {
        self.closed = true;
        self.close_all()?;
        Ok(self.stats.clone())
    }

    fn close_all(&mut self) -> Result<(), StoreError> {
        self.for_each_writer(|writer, ctx, _| writer.seal(ctx, true))
    }

    fn for_each_writer(
        &mut self,
        mut f: impl FnMut(&mut ScopeWriter, &mut Ctx<'_>, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let now = now_ns();
        let mut first = None;
        let mut ctx = Ctx {
            root: &self.root,
            keyring: &self.keyring,
            options: &self.options,
            stats: &mut self.stats,
            gaps: &mut self.gaps,
        };
        for writer in &mut self.writers {
            if let Err(error) = f(writer, &mut ctx, now) {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Removes segments past the retention limits as of `now_ns` (never open ones).
    pub(crate) fn apply_retention(&mut self, now_ns: u64) -> Result<RetentionReport, StoreError> {
        let open: HashSet<PathBuf> = self
            .writers
            .iter()
            .filter_map(|w| w.open_segment_path().map(Path::to_owned))
            .collect();
        let report = retention::apply(&self.root, &self.options.retention, &open, now_ns)?;
        self.stats.segments_removed += report.segments_removed;
        self.stats.bytes_removed += report.bytes_removed;
        Ok(report)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.closed
            && let Err(error) = self.close_all()
        {
            tracing::warn!(%error, "closing the store on drop failed");
        }
    }
}
