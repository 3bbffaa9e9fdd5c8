//! Why a keyring operation failed.
use std::{io, path::PathBuf};

use super::{AuditError, KeyCheckValue, MasterKeyError, Scope};

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyringError {
    /// The directory holds no keyring.
    #[error("no keyring in {dir}; create one with `seam keys init --store <store>`")]
    NotInitialized { dir: PathBuf },
    /// `init` on a directory that already holds a keyring.
    #[error("{dir} already holds a keyring; use it as it is, or choose another --store")]
    AlreadyInitialized { dir: PathBuf },
    /// The master key is not the one the keyring was created with.
    #[error(
        "the master key (check value {found}) is not this keyring's (check value {expected}) in {dir}; use the master key the keyring was created with"
    )]
    WrongMasterKey {
        dir: PathBuf,
        expected: String,
        found: KeyCheckValue,
    },
    /// A keyring file could not be read or written.
    #[error(
        "cannot {action} {path}: {source}; check the key directory exists, is writable and has space"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A keyring file is not what Seam writes.
    #[error("{path} is corrupt ({reason}); restore it from a backup")]
    Corrupt { path: PathBuf, reason: String },
    /// No key was ever made for this scope.
    #[error("no keys for {scope}; `seam keys list` shows the scopes that have keys")]
    UnknownScope { scope: Scope },
    /// The scope has no such epoch.
    #[error("{scope} has no key epoch {epoch}; `seam keys list` shows its epochs")]
    UnknownEpoch { scope: Scope, epoch: u32 },
    /// The epoch's key was destroyed by `seam keys retire`.
    #[error(
        "{scope} key epoch {epoch} was retired (its key destroyed): its history is unreadable by design"
    )]
    Retired { scope: Scope, epoch: u32 },
    /// Every key of the scope was destroyed by `seam keys shred`.
    #[error("{scope}'s keys were shredded: its history is unreadable by design")]
    Shredded { scope: Scope },
    /// Retiring the epoch new records are sealed under.
    #[error("{scope} key epoch {epoch} is the active one; run `seam keys rotate` for it first")]
    ActiveEpoch { scope: Scope, epoch: u32 },
    /// A wrapped key does not open: the file was altered or moved, or another master key wrapped it.
    #[error(
        "{scope} key epoch {epoch} in {path} does not unwrap with this master key; restore the file from a backup"
    )]
    Unwrap {
        path: PathBuf,
        scope: Scope,
        epoch: u32,
    },
    /// The master key failed.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// The audit log could not be written.
    #[error(transparent)]
    Audit(#[from] AuditError),
}
