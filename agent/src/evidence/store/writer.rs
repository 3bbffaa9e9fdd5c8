//! One scope's writer: a plaintext batch (zeroized), sealed into a frame when it reaches the
//! frame size, appended to the scope's open segment, which is rolled by time window and size.
use std::{
    fs::File,
    io::{Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    time::Instant,
};

use ring::aead;
use zeroize::{Zeroize, Zeroizing};

use super::{
    StoreOptions, StoreStats, SyncPolicy,
    error::{Gap, GapReason, StoreError, is_disk_full},
    format::{self, FRAME_HEADER_LEN, FrameHeader, SALT_LEN, SegmentHeader, TAG_LEN},
    layout, seal,
};
use crate::evidence::keys::{Keyring, Scope, files, master::random, now_ns};

/// What a writer needs from its store.
pub(crate) struct Ctx<'a> {
    pub root: &'a Path,
    pub keyring: &'a Keyring,
    pub options: &'a StoreOptions,
    pub stats: &'a mut StoreStats,
    pub gaps: &'a mut Vec<Gap>,
}

struct Segment {
    path: PathBuf,
    file: File,
    key: aead::LessSafeKey,
    /// One header copy followed by the current frame header: the frame's associated data.
    aad: Vec<u8>,
    header_len: usize,
    next_seq: u64,
    /// Bytes known to be written whole.
    len: u64,
    window_end_ns: u64,
    dirty: bool,
    last_sync: Instant,
}

/// Records of the batch being filled.
#[derive(Default)]
struct Pending {
    records: u32,
    t_min: u64,
    t_max: u64,
}

pub(crate) struct ScopeWriter {
    scope: Scope,
    /// `FRAME_HEADER_LEN` bytes reserved for the header, then the records; sealed in place.
    buf: Zeroizing<Vec<u8>>,
    pending: Pending,
    segment: Option<Segment>,
    /// Records were dropped since the last successful write (the last gap of this scope grows).
    gap_open: bool,
}

impl ScopeWriter {
    pub(crate) fn new(scope: Scope, frame_bytes: usize) -> Self {
        let mut buf = Zeroizing::new(Vec::with_capacity(
            FRAME_HEADER_LEN + frame_bytes + format::RECORD_HEADER_LEN + 4096 + TAG_LEN,
        ));
        buf.resize(FRAME_HEADER_LEN, 0);
        Self {
            scope,
            buf,
            pending: Pending::default(),
            segment: None,
            gap_open: false,
        }
    }

    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }

    pub(crate) fn open_segment_path(&self) -> Option<&Path> {
        self.segment.as_ref().map(|s| s.path.as_path())
    }

    /// Buffers one record, sealing the batch once it reaches the frame size.
    #[inline]
    pub(crate) fn append(
        &mut self,
        ctx: &mut Ctx<'_>,
        time_ns: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        let needed = self.buf.len() + format::RECORD_HEADER_LEN + record.len() + TAG_LEN;
        if needed > self.buf.capacity() {
            self.grow(needed);
        }
        format::push_record(&mut self.buf, time_ns, record);
        let p = &mut self.pending;
        if p.records == 0 {
            (p.t_min, p.t_max) = (time_ns, time_ns);
        }
        p.records += 1;
        p.t_min = p.t_min.min(time_ns);
        p.t_max = p.t_max.max(time_ns);
        if self.buf.len() - FRAME_HEADER_LEN >= ctx.options.frame_bytes {
            return self.seal(ctx, false);
        }
        Ok(())
    }

    /// Grows into a new buffer and wipes the old one: a reallocation would leave a plaintext
    /// copy behind in freed memory.
    #[cold]
    fn grow(&mut self, needed: usize) {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.next_power_of_two()));
        bigger.extend_from_slice(&self.buf);
        self.buf = bigger;
    }

    /// Seals the batch (if any) into a frame. `close` makes it the segment's last frame (an
    /// empty one if need be) and closes the segment.
    pub(crate) fn seal(&mut self, ctx: &mut Ctx<'_>, close: bool) -> Result<(), StoreError> {
        if self.pending.records == 0 && !(close && self.segment.is_some()) {
            return Ok(());
        }
        let now = now_ns();
        if let Err(error) = self.ensure_segment(ctx, now) {
            self.drop_pending(ctx, &error);
            return Err(error);
        }
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        let frame_len = (self.buf.len() + TAG_LEN) as u64;
        let last = close
            || now >= seg.window_end_ns
            || seg.len + frame_len >= ctx.options.max_segment_bytes;
        let header = FrameHeader {
            ct_len: (self.buf.len() - FRAME_HEADER_LEN + TAG_LEN) as u32,
            seq: seg.next_seq,
            last,
            records: self.pending.records,
            t_min: self.pending.t_min,
            t_max: self.pending.t_max,
        };
        // The number is used up whatever happens next: a nonce is never sealed twice.
        seg.next_seq += 1;
        let encoded = header.encode();
        self.buf[..FRAME_HEADER_LEN].copy_from_slice(&encoded);
        seg.aad.truncate(seg.header_len);
        seg.aad.extend_from_slice(&encoded);
        let tag = seg
            .key
            .seal_in_place_separate_tag(
                seal::nonce(header.seq),
                aead::Aad::from(&seg.aad),
                &mut self.buf[FRAME_HEADER_LEN..],
            )
            .expect("AES-GCM seals any frame under the maximum size");
        self.buf.extend_from_slice(tag.as_ref());
        let written = if ctx.options.discard_frames {
            Ok(())
        } else {
            seg.file.write_all(&self.buf)
        };
        if let Err(source) = written {
            let error = self.write_failed(ctx, source);
            self.drop_pending(ctx, &error);
            return Err(error);
        }
        seg.len += self.buf.len() as u64;
        seg.dirty = true;
        let stats = &mut *ctx.stats;
        stats.frames_written += 1;
        stats.records_sealed += u64::from(self.pending.records);
        stats.bytes_plaintext += (self.buf.len() - FRAME_HEADER_LEN - TAG_LEN) as u64;
        stats.bytes_written += self.buf.len() as u64;
        self.gap_open = false;
        self.pending = Pending::default();
        self.buf.truncate(FRAME_HEADER_LEN);
        let synced = self.sync(ctx, last);
        if last {
            // Closed even if the sync failed: nothing may follow a last frame.
            self.segment = None;
            ctx.stats.segments_closed += 1;
        }
        synced
    }

    /// Cuts a partly written frame off the segment (so later frames follow whole ones); if
    /// even that fails, abandons the segment (a reader resynchronises past the debris).
    fn write_failed(&mut self, ctx: &mut Ctx<'_>, source: std::io::Error) -> StoreError {
        ctx.stats.write_errors += 1;
        let seg = self
            .segment
            .as_mut()
            .expect("a segment is open while writing");
        let path = seg.path.clone();
        // Cut the partial frame off and write the next one where it began (the file offset
        // is past the partial bytes, which would otherwise become a hole of zeros).
        let cut = seg
            .file
            .set_len(seg.len)
            .and_then(|()| seg.file.seek(SeekFrom::Start(seg.len)));
        if cut.is_err() {
            tracing::warn!(path = %path.display(), "cannot cut a failed write off a segment; starting a new one");
            self.segment = None;
        }
        let records = u64::from(self.pending.records);
        let scope = self.scope.clone();
        if is_disk_full(&source) {
            StoreError::DiskFull {
                scope,
                path,
                records,
                source,
            }
        } else {
            StoreError::Write {
                scope,
                path,
                records,
                source,
            }
        }
    }

    /// Forgets the batch (wiped), counting its records as dropped in this scope's gap.
    fn drop_pending(&mut self, ctx: &mut Ctx<'_>, error: &StoreError) {
        let p = std::mem::take(&mut self.pending);
        self.buf.zeroize();
        self.buf.resize(FRAME_HEADER_LEN, 0);
        if p.records == 0 {
            return;
        }
        let records = u64::from(p.records);
        ctx.stats.records_dropped += records;
        let reason = match error {
            StoreError::DiskFull { .. } => GapReason::DiskFull,
            StoreError::Key { .. } => GapReason::NoKey,
            _ => GapReason::WriteError,
        };
        let now = now_ns();
        let open = self
            .gap_open
            .then(|| {
                ctx.gaps
                    .iter_mut()
                    .rev()
                    .find(|g| g.scope == self.scope && g.reason == reason)
            })
            .flatten();
        match open {
            Some(gap) => {
                gap.records += records;
                gap.from_ns = gap.from_ns.min(p.t_min);
                gap.to_ns = gap.to_ns.max(p.t_max);
                gap.updated_ns = now;
            }
            None => {
                ctx.stats.gaps += 1;
                ctx.gaps.push(Gap {
                    scope: self.scope.clone(),
                    reason,
                    records,
                    from_ns: p.t_min,
                    to_ns: p.t_max,
                    started_ns: now,
                    updated_ns: now,
                });
            }
        }
        self.gap_open = true;
    }

    fn sync(&mut self, ctx: &mut Ctx<'_>, closing: bool) -> Result<(), StoreError> {
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        let due = match ctx.options.sync {
            SyncPolicy::EveryFrame => true,
            SyncPolicy::Interval(every) => closing || seg.last_sync.elapsed() >= every,
            SyncPolicy::Never => false,
        };
        if due && seg.dirty {
            seg.file.sync_data().map_err(|source| StoreError::Write {
                scope: self.scope.clone(),
                path: seg.path.clone(),
                records: 0,
                source,
            })?;
            seg.dirty = false;
            seg.last_sync = Instant::now();
            ctx.stats.syncs += 1;
        }
        Ok(())
    }

    /// Syncs the open segment now if it has unsynced frames (unless the policy is never).
    pub(crate) fn sync_now(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StoreError> {
        if matches!(ctx.options.sync, SyncPolicy::Never) {
            return Ok(());
        }
        self.sync(ctx, true)
    }

    /// Whether the open segment's window has passed.
    pub(crate) fn window_passed(&self, now: u64) -> bool {
        self.segment
            .as_ref()
            .is_some_and(|s| now >= s.window_end_ns)
    }

    fn ensure_segment(&mut self, ctx: &mut Ctx<'_>, now: u64) -> Result<(), StoreError> {
        if self.segment.is_some() {
            return Ok(());
        }
        let records = u64::from(self.pending.records);
        let key = ctx
            .keyring
            .active_key(&self.scope)
            .map_err(|source| StoreError::Key {
                scope: self.scope.clone(),
                records,
                source,
            })?;
        let window = u64::try_from(ctx.options.window.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let window_start_ns = now - now % window;
        let mut salt = [0u8; SALT_LEN];
        random(&mut salt).map_err(|source| StoreError::Key {
            scope: self.scope.clone(),
            records,
            source: source.into(),
        })?;
        let header = SegmentHeader {
            scope: self.scope.clone(),
            epoch: key.epoch,
            key_id: key.key_id,
            salt,
            window_start_ns,
            created_ns: now,
        };
        let dir = layout::scope_dir(ctx.root, &self.scope);
        let path = dir.join(layout::segment_name(&header));
        let io_error = |source: std::io::Error| {
            let scope = self.scope.clone();
            let path = path.clone();
            if is_disk_full(&source) {
                StoreError::DiskFull {
                    scope,
                    path,
                    records,
                    source,
                }
            } else {
                StoreError::Write {
                    scope,
                    path,
                    records,
                    source,
                }
            }
        };
        files::private_dir(&dir).map_err(io_error)?;
        let encoded = header.encode();
        let mut file = files::create_new(&path).map_err(io_error)?;
        let mut both = encoded.clone();
        both.extend_from_slice(&encoded);
        let synced = file.write_all(&both).and_then(|()| {
            if matches!(ctx.options.sync, SyncPolicy::Never) {
                Ok(())
            } else {
                file.sync_data().and_then(|()| files::sync_dir(&dir))
            }
        });
        if let Err(source) = synced {
            drop(file);
            let _ = std::fs::remove_file(&path);
            ctx.stats.write_errors += 1;
            return Err(io_error(source));
        }
        ctx.stats.segments_opened += 1;
        tracing::debug!(scope = %self.scope, path = %path.display(), epoch = key.epoch, "opened a segment");
        self.segment = Some(Segment {
            key: seal::segment_key(&key, &header),
            header_len: encoded.len(),
            aad: encoded,
            path,
            file,
            next_seq: 0,
            len: both.len() as u64,
            window_end_ns: window_start_ns.saturating_add(window),
            dirty: false,
            last_sync: Instant::now(),
        });
        Ok(())
    }
}
