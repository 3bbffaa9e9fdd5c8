//! Reading sealed history: one segment at a time, one frame in memory at a time, so memory
//! stays bounded whatever the history's size; segments are independent, so [`replay`] spreads
//! them over threads. Damage never stops a read: each problem is reported with its file and
//! byte offset, and reading goes on at the next frame marker.
use std::{
    collections::BTreeSet,
    fmt,
    fs::File,
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use ring::aead;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{
    StoreError,
    format::{
        self, FRAME_HEADER_LEN, FRAME_MARKER, FrameHeader, MAX_HEADER_LEN, SEGMENT_MAGIC,
        SegmentHeader,
    },
    layout::{SegmentFile, list_segments},
    seal,
};
use crate::evidence::keys::{Keyring, Scope};

/// Which records to read: some scopes (all if None) and a time range `[from_ns, until_ns)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Query {
    pub scopes: Option<BTreeSet<Scope>>,
    pub from_ns: u64,
    pub until_ns: u64,
}

impl Query {
    /// Every record of every scope.
    pub(crate) fn all() -> Self {
        Self {
            scopes: None,
            from_ns: 0,
            until_ns: u64::MAX,
        }
    }

    /// Every record of these scopes.
    pub(crate) fn scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self {
            scopes: Some(scopes.into_iter().collect()),
            ..Self::all()
        }
    }

    /// Only records with `from_ns <= time < until_ns`.
    pub(crate) fn between(self, from_ns: u64, until_ns: u64) -> Self {
        Self {
            from_ns,
            until_ns,
            ..self
        }
    }

    pub(crate) fn wants_scope(&self, scope: &Scope) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.contains(scope))
    }

    fn wants_time(&self, time: u64) -> bool {
        time >= self.from_ns && time < self.until_ns
    }
}

/// One record read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordRef<'a> {
    pub scope: &'a Scope,
    pub time_ns: u64,
    pub data: &'a [u8],
}

/// What was wrong at one place in a segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum IssueKind {
    /// One copy of the segment header is damaged; the other one was used.
    HeaderCopyDamaged,
    /// Both header copies are damaged: nothing in the segment can be read.
    HeaderUnreadable,
    /// The header names another scope than the directory the file is in (moved or renamed).
    Misplaced { found: Scope },
    /// The segment's key cannot be had (retired, shredded, unknown, or altered).
    KeyUnavailable { epoch: u32, reason: String },
    /// A frame is corrupt or was tampered with (bad header, or authentication failed); the
    /// reader skipped `skipped` bytes to the next frame marker.
    FrameDamaged { skipped: u64 },
    /// Frames `expected..found` are missing (removed, or their write failed).
    FramesMissing { expected: u64, found: u64 },
    /// An authentic frame out of its place (frames were reordered).
    FrameOutOfOrder { seq: u64, expected: u64 },
    /// A copy of a frame already read; not delivered again.
    FrameDuplicate { seq: u64 },
    /// The file ends inside a frame: a write cut short (crash, power loss) or a cut-off file.
    TornTail { bytes: u64 },
    /// No intact last frame: the segment was never closed (crash, still being written) or its
    /// end was cut off.
    NotClosed,
    /// Bytes after the segment's last frame.
    TrailingData { bytes: u64 },
    /// An authentic frame whose records do not parse (a bug in the writer).
    RecordsMalformed,
    /// The file could not be read.
    Io { error: String },
}

/// A problem found reading a segment: which file, which byte offset, what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ReadIssue {
    pub path: PathBuf,
    pub offset: u64,
    #[serde(flatten)]
    pub kind: IssueKind,
}

impl fmt::Display for ReadIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {:?}",
            self.path.display(),
            self.offset,
            self.kind
        )
    }
}

/// What reading one segment (or many) found.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct ReadReport {
    pub segments: u64,
    /// Segments whose last frame was read.
    pub segments_closed: u64,
    /// Authentic frames read.
    pub frames: u64,
    /// Frames skipped without decrypting: outside the query's time range.
    pub frames_skipped: u64,
    /// Records delivered.
    pub records: u64,
    /// The key epochs of the segments read, by scope.
    pub epochs: BTreeSet<(Scope, u32)>,
    pub issues: Vec<ReadIssue>,
}

impl ReadReport {
    pub(crate) fn merge(&mut self, other: Self) {
        self.segments += other.segments;
        self.segments_closed += other.segments_closed;
        self.frames += other.frames;
        self.frames_skipped += other.frames_skipped;
        self.records += other.records;
        self.epochs.extend(other.epochs);
        self.issues.extend(other.issues);
    }
}

/// The segments a query needs, by scope then time.
pub(crate) fn segments(root: &Path, query: &Query) -> Result<Vec<SegmentFile>, StoreError> {
    list_segments(root, |scope| query.wants_scope(scope))
}

/// Reads every segment of `query` on `threads` threads, calling `f` for each record (from any
/// thread; records of one segment arrive in order, one segment on one thread).
pub(crate) fn replay(
    root: &Path,
    keyring: &Keyring,
    query: &Query,
    threads: usize,
    f: &(dyn Fn(RecordRef<'_>) + Sync),
) -> Result<ReadReport, StoreError> {
    let files = segments(root, query)?;
    let next = AtomicUsize::new(0);
    let mut report = ReadReport::default();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut local = ReadReport::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break };
                        local.merge(read_segment(file, keyring, query, &mut |r| f(r)));
                    }
                    local
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(local) => report.merge(local),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    Ok(report)
}

/// Reads one segment, calling `f` for each record of `query`.
pub(crate) fn read_segment(
    segment: &SegmentFile,
    keyring: &Keyring,
    query: &Query,
    f: &mut dyn FnMut(RecordRef<'_>),
) -> ReadReport {
    let mut reader = SegmentReader {
        path: &segment.path,
        report: ReadReport {
            segments: 1,
            ..ReadReport::default()
        },
    };
    if let Err(error) = reader.read(segment, keyring, query, f) {
        reader.issue(
            0,
            IssueKind::Io {
                error: error.to_string(),
            },
        );
    }
    reader.report
}

struct SegmentReader<'a> {
    path: &'a Path,
    report: ReadReport,
}

impl SegmentReader<'_> {
    fn issue(&mut self, offset: u64, kind: IssueKind) {
        self.report.issues.push(ReadIssue {
            path: self.path.to_owned(),
            offset,
            kind,
        });
    }

    /// The header (from whichever copy is intact), its bytes, and where frames start.
    fn header(
        &mut self,
        file: &File,
        len: u64,
    ) -> io::Result<Option<(SegmentHeader, Vec<u8>, u64)>> {
        let mut head = vec![0u8; len.min(2 * MAX_HEADER_LEN as u64) as usize];
        file.read_exact_at(&mut head, 0)?;
        if let Ok((header, n)) = SegmentHeader::decode(&head) {
            if head.get(n..2 * n) != Some(&head[..n]) {
                self.issue(n as u64, IssueKind::HeaderCopyDamaged);
            }
            return Ok(Some((header, head[..n].to_vec(), 2 * n as u64)));
        }
        self.issue(0, IssueKind::HeaderCopyDamaged);
        let second = head
            .windows(SEGMENT_MAGIC.len())
            .skip(1)
            .position(|w| w == SEGMENT_MAGIC)
            .map(|p| p + 1);
        if let Some(at) = second
            && let Ok((header, n)) = SegmentHeader::decode(&head[at..])
        {
            return Ok(Some((header, head[at..at + n].to_vec(), (at + n) as u64)));
        }
        self.issue(0, IssueKind::HeaderUnreadable);
        Ok(None)
    }

    fn read(
        &mut self,
        segment: &SegmentFile,
        keyring: &Keyring,
        query: &Query,
        f: &mut dyn FnMut(RecordRef<'_>),
    ) -> io::Result<()> {
        let file = File::open(self.path)?;
        let len = file.metadata()?.len();
        let Some((header, header_bytes, start)) = self.header(&file, len)? else {
            return Ok(());
        };
        if header.scope != segment.scope {
            self.issue(
                0,
                IssueKind::Misplaced {
                    found: header.scope,
                },
            );
            return Ok(());
        }
        self.report
            .epochs
            .insert((header.scope.clone(), header.epoch));
        let data_key = match keyring.key(&header.scope, header.epoch) {
            Ok(key) if key.key_id == header.key_id => key,
            Ok(key) => {
                let reason = format!(
                    "key id {} where the segment says {}",
                    key.key_id, header.key_id
                );
                self.issue(
                    0,
                    IssueKind::KeyUnavailable {
                        epoch: header.epoch,
                        reason,
                    },
                );
                return Ok(());
            }
            Err(error) => {
                self.issue(
                    0,
                    IssueKind::KeyUnavailable {
                        epoch: header.epoch,
                        reason: error.to_string(),
                    },
                );
                return Ok(());
            }
        };
        let key = seal::segment_key(&data_key, &header);
        let mut aad = header_bytes;
        let header_len = aad.len();
        let mut buf = Zeroizing::new(Vec::new());
        let mut frame = [0u8; FRAME_HEADER_LEN];
        let mut seen = BTreeSet::new();
        let (mut pos, mut expected, mut closed) = (start, 0u64, false);
        while pos < len {
            let remaining = len - pos;
            let decoded = if remaining >= FRAME_HEADER_LEN as u64 {
                file.read_exact_at(&mut frame, pos)?;
                FrameHeader::decode(&frame)
                    .filter(|h| pos + (FRAME_HEADER_LEN as u64) + u64::from(h.ct_len) <= len)
            } else {
                None
            };
            let Some(h) = decoded else {
                // A bad header or a length past the end: damage if a frame follows, else the
                // tail of a write that never finished.
                match find_marker(&file, pos + 1, len)? {
                    Some(next) => {
                        self.issue(
                            pos,
                            IssueKind::FrameDamaged {
                                skipped: next - pos,
                            },
                        );
                        pos = next;
                        continue;
                    }
                    None => {
                        self.issue(pos, IssueKind::TornTail { bytes: remaining });
                        break;
                    }
                }
            };
            let end = pos + FRAME_HEADER_LEN as u64 + u64::from(h.ct_len);
            if h.t_max < query.from_ns || h.t_min >= query.until_ns {
                self.report.frames_skipped += 1;
                expected = expected.max(h.seq.saturating_add(1));
                pos = end;
                if h.last {
                    closed = true;
                    break;
                }
                continue;
            }
            buf.resize(h.ct_len as usize, 0);
            file.read_exact_at(&mut buf, pos + FRAME_HEADER_LEN as u64)?;
            aad.truncate(header_len);
            aad.extend_from_slice(&frame);
            let opened = key.open_in_place(seal::nonce(h.seq), aead::Aad::from(&aad), &mut buf);
            let Ok(plain) = opened else {
                let next = find_marker(&file, pos + 1, len)?.unwrap_or(len);
                self.issue(
                    pos,
                    IssueKind::FrameDamaged {
                        skipped: next - pos,
                    },
                );
                pos = next;
                continue;
            };
            if !seen.insert(h.seq) {
                self.issue(pos, IssueKind::FrameDuplicate { seq: h.seq });
                pos = end;
                continue;
            }
            if h.seq > expected {
                self.issue(
                    pos,
                    IssueKind::FramesMissing {
                        expected,
                        found: h.seq,
                    },
                );
            } else if h.seq < expected {
                self.issue(
                    pos,
                    IssueKind::FrameOutOfOrder {
                        seq: h.seq,
                        expected,
                    },
                );
            }
            expected = expected.max(h.seq + 1);
            self.report.frames += 1;
            for record in format::records(plain) {
                match record {
                    Some((time_ns, data)) if query.wants_time(time_ns) => {
                        self.report.records += 1;
                        f(RecordRef {
                            scope: &header.scope,
                            time_ns,
                            data,
                        });
                    }
                    Some(_) => {}
                    None => self.issue(pos, IssueKind::RecordsMalformed),
                }
            }
            pos = end;
            if h.last {
                closed = true;
                if end < len {
                    self.issue(end, IssueKind::TrailingData { bytes: len - end });
                }
                break;
            }
        }
        if closed {
            self.report.segments_closed += 1;
        } else {
            self.issue(pos.min(len), IssueKind::NotClosed);
        }
        Ok(())
    }
}

/// The offset of the next frame marker in `[from, end)`.
fn find_marker(file: &File, from: u64, end: u64) -> io::Result<Option<u64>> {
    const CHUNK: usize = 64 << 10;
    let overlap = FRAME_MARKER.len() - 1;
    let mut buf = vec![0u8; CHUNK + overlap];
    let mut at = from;
    while at < end {
        let n = (end - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        if let Some(i) = buf[..n]
            .windows(FRAME_MARKER.len())
            .position(|w| w == FRAME_MARKER)
        {
            return Ok(Some(at + i as u64));
        }
        if n < buf.len() {
            break;
        }
        at += (n - overlap) as u64;
    }
    Ok(None)
}
