//! Keys for sealed history: one data key per scope (each tenant, and the node) and epoch,
//! wrapped by a node master key that stays outside the data path.
//!
//! - **Master key** ([`MasterKey`]): 32 random bytes, base64, from `--master-key-file` (mode
//!   0600 enforced) or `SEAM_MASTER_KEY` (e.g. a Kubernetes Secret). It wraps data keys
//!   (AES-256-GCM under an HKDF-derived wrapping key, random nonce, associated data = scope,
//!   epoch and key id, so a wrapped key cannot be moved to another tenant or epoch), and is
//!   identified by a key check value (KCV) that never reveals it.
//! - **Keyring** ([`Keyring`]), a directory (0700; `<store>/keys` by convention):
//!   `keyring.json` (format version, master KCV), `scopes/<stem>.json` (one per scope: epochs
//!   with key id, created and retired times, and the wrapped key while it exists), `audit.log`
//!   and `audit.head` ([`audit`]), and `.lock` (flock, shared by the agent and `seam keys`).
//!   Every file is 0600 and replaced atomically.
//! - **Epochs**: a scope's first key is created when its first record arrives (audited as done
//!   by the agent). `rotate` starts a new epoch; older epochs stay readable until `retire`
//!   destroys one; `shred` destroys every epoch of a tenant (crypto-erasure at offboarding).
//!   Destroyed keys are overwritten in place before their file is replaced. Data keys are
//!   random, not derived from the master key, so a destroyed key cannot be re-derived; a copy
//!   of an older key file (a backup, or blocks a copy-on-write file system keeps) plus the
//!   master key would still open it.
//! - **Escrow** ([`escrow`]): Shamir shares of the master key with its KCV, so a recovery is
//!   verified.
//!
//! Key material lives in [`zeroize::Zeroizing`] buffers and is wiped on drop.
pub(crate) mod audit;
mod error;
pub(crate) mod escrow;
pub(crate) mod files;
pub(crate) mod keyring;
mod listing;
pub(crate) mod master;
pub(crate) mod scope;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub(crate) use audit::{Actor, ActorKind, AuditAction, AuditError};
pub(crate) use keyring::{DataKey, KeyId, Keyring, KeyringError};
pub(crate) use master::{
    KeyCheckValue, MASTER_KEY_ENV, MasterKey, MasterKeyError, MasterKeySource,
};
pub(crate) use scope::{Scope, ScopeError};

/// The key directory of a store directory: `<store>/keys`.
pub(crate) fn keyring_dir(store: &Path) -> PathBuf {
    store.join("keys")
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Wall-clock nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
