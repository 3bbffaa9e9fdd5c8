//! Retention: closed segments older than the age limit go first, then the oldest ones until
//! the store fits its size limit. Segments open for writing are never removed.
use std::{collections::HashSet, path::PathBuf, time::Duration};

use serde::Serialize;

use super::{StoreError, layout::list_segments};

/// How long and how much history to keep (None: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Segments whose last write is older than this are removed.
    pub max_age: Option<Duration>,
    /// The oldest segments are removed while all segments together are larger than this.
    pub max_bytes: Option<u64>,
}

/// What a retention pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct RetentionReport {
    pub segments_removed: u64,
    pub bytes_removed: u64,
    /// Bytes of segments kept.
    pub bytes_kept: u64,
}

/// Applies `retention` to the store at `root` as of `now_ns`, sparing `open` segments.
pub(crate) fn apply(
    root: &std::path::Path,
    retention: &Retention,
    open: &HashSet<PathBuf>,
    now_ns: u64,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    if retention.max_age.is_none() && retention.max_bytes.is_none() {
        return Ok(report);
    }
    let mut segments: Vec<_> = list_segments(root, |_| true)?
        .into_iter()
        .filter(|s| !open.contains(&s.path))
        .collect();
    segments.sort_by_key(|s| (s.modified_ns, s.path.clone()));
    let open_bytes: u64 = list_segments(root, |_| true)?
        .iter()
        .filter(|s| open.contains(&s.path))
        .map(|s| s.len)
        .sum();
    let mut total: u64 = open_bytes + segments.iter().map(|s| s.len).sum::<u64>();
    let cutoff = retention
        .max_age
        .map(|age| now_ns.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)));
    for segment in segments {
        let expired = cutoff.is_some_and(|c| segment.modified_ns < c);
        let too_big = retention.max_bytes.is_some_and(|max| total > max);
        if !expired && !too_big {
            continue;
        }
        match std::fs::remove_file(&segment.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Retention {
                    path: segment.path,
                    source,
                });
            }
        }
        tracing::debug!(path = %segment.path.display(), expired, "retention removed a segment");
        total -= segment.len;
        report.segments_removed += 1;
        report.bytes_removed += segment.len;
    }
    report.bytes_kept = total;
    Ok(report)
}
