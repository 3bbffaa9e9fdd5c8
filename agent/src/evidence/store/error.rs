//! What can go wrong writing the store, and what is dropped when it does.
use std::{io, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::evidence::keys::{KeyringError, Scope};

/// Why an append, flush or retention pass failed. Records lost by a failure are counted in
/// [`super::StoreStats`] and reported as a [`Gap`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A store directory could not be created or listed.
    #[error("cannot use store directory {path}: {source}; check it exists and is writable by Seam")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file system is full (ENOSPC or EDQUOT): the records of one frame were dropped and
    /// counted as a gap; appends go on and succeed once space returns.
    #[error(
        "disk full writing {path}: {records} record(s) of {scope} dropped; free space on the store's file system or lower --store retention"
    )]
    DiskFull {
        scope: Scope,
        path: PathBuf,
        records: u64,
        #[source]
        source: io::Error,
    },
    /// Another write error: the records of one frame were dropped and counted as a gap.
    #[error(
        "cannot write {path}: {records} record(s) of {scope} dropped; check the store's disk and permissions"
    )]
    Write {
        scope: Scope,
        path: PathBuf,
        records: u64,
        #[source]
        source: io::Error,
    },
    /// The scope's data key could not be had: its records were dropped and counted as a gap.
    #[error(
        "no data key for {scope}: {records} record(s) dropped; check the keyring (`seam keys list`)"
    )]
    Key {
        scope: Scope,
        records: u64,
        #[source]
        source: KeyringError,
    },
    /// A record larger than the store accepts; dropped and counted.
    #[error(
        "a {len}-byte record of {scope} is larger than the {max} bytes a record may have; it was dropped"
    )]
    RecordTooLarge {
        scope: Scope,
        len: usize,
        max: usize,
    },
    /// A segment could not be removed by retention.
    #[error(
        "cannot remove expired segment {path}: {source}; check the store directory's permissions"
    )]
    Retention {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why records were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GapReason {
    DiskFull,
    WriteError,
    NoKey,
}

impl GapReason {
    /// As written in loss records (`probe`) and reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::WriteError => "write_error",
            Self::NoKey => "no_key",
        }
    }
}

/// A run of records of one scope that never reached the disk. Consecutive drops of one scope
/// for one reason, with no successful write between them, are one gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Gap {
    pub scope: Scope,
    pub reason: GapReason,
    pub records: u64,
    /// Record times (Unix ns) of the first and last record dropped.
    pub from_ns: u64,
    pub to_ns: u64,
    /// When the gap started and when it last grew (Unix ns, wall clock).
    pub started_ns: u64,
    pub updated_ns: u64,
}

pub(crate) fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    )
}
