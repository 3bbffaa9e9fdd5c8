//! Where segments live: `<store>/segments/<scope stem>/<window>-<created>-<salt>.seg`. Names
//! sort by time window, then creation time.
use std::{
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::{StoreError, format::SegmentHeader};
use crate::evidence::keys::{Scope, hex};

/// Directory of all segments under a store directory.
pub(crate) const SEGMENTS_DIR: &str = "segments";
const SUFFIX: &str = ".seg";

pub(crate) fn scope_dir(root: &Path, scope: &Scope) -> PathBuf {
    root.join(SEGMENTS_DIR).join(scope.stem())
}

pub(crate) fn segment_name(header: &SegmentHeader) -> String {
    format!(
        "{:020}-{:020}-{}{SUFFIX}",
        header.window_start_ns,
        header.created_ns,
        hex(&header.salt[..4])
    )
}

/// One segment file found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    /// The scope whose directory the file is in.
    pub scope: Scope,
    pub path: PathBuf,
    pub len: u64,
    /// Last modification (Unix ns): when its last frame was written.
    pub modified_ns: u64,
}

impl SegmentFile {
    /// The start of the time window the segment was opened in (Unix ns), from its name.
    pub(crate) fn window_start_ns(&self) -> Option<u64> {
        let name = self.path.file_name()?.to_str()?;
        name.get(..20)?.parse().ok()
    }
}

fn dir_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Dir { path, source }
}

/// The segment files of every scope that `keep` accepts, by scope then name. A store without
/// segments yet has none.
pub(crate) fn list_segments(
    root: &Path,
    keep: impl Fn(&Scope) -> bool,
) -> Result<Vec<SegmentFile>, StoreError> {
    let segments = root.join(SEGMENTS_DIR);
    let entries = match fs::read_dir(&segments) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries.map_err(dir_error(&segments))?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let dir = entry.map_err(dir_error(&segments))?.path();
        let Some(scope) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(Scope::from_stem)
        else {
            continue;
        };
        if !keep(&scope) {
            continue;
        }
        for file in fs::read_dir(&dir).map_err(dir_error(&dir))? {
            let file = file.map_err(dir_error(&dir))?;
            let path = file.path();
            if !path.to_string_lossy().ends_with(SUFFIX) {
                continue;
            }
            // A file removed meanwhile (retention) is skipped.
            let Ok(meta) = file.metadata() else { continue };
            out.push(SegmentFile {
                scope: scope.clone(),
                path,
                len: meta.len(),
                modified_ns: u64::try_from(meta.mtime()).unwrap_or(0) * 1_000_000_000
                    + u64::try_from(meta.mtime_nsec()).unwrap_or(0),
            });
        }
    }
    out.sort_by(|a, b| (&a.scope, &a.path).cmp(&(&b.scope, &b.path)));
    Ok(out)
}
