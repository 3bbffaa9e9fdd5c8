//! `seam keys list`: every scope's epochs as stored, without key material.
use std::{fs, path::Path};

use serde::Serialize;

use super::{
    Scope,
    keyring::{Keyring, KeyringError, SCOPES_DIR, ScopeKeys, io_error, read_scope_file},
};

/// What became of an epoch's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EpochState {
    /// New records are sealed under it.
    Active,
    /// An older epoch whose key still exists: its records stay readable.
    Readable,
    /// Its key was destroyed by `seam keys retire`.
    Retired,
    /// Its key was destroyed by `seam keys shred`.
    Shredded,
}

impl EpochState {
    /// As written in listings and reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Readable => "readable",
            Self::Retired => "retired",
            Self::Shredded => "shredded",
        }
    }
}

/// One epoch as listed: never key material.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EpochInfo {
    pub epoch: u32,
    pub key_id: String,
    pub created_ns: u64,
    pub retired_ns: Option<u64>,
    pub state: EpochState,
}

/// One scope's keys as listed.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ScopeInfo {
    pub scope: Scope,
    pub shredded_ns: Option<u64>,
    pub epochs: Vec<EpochInfo>,
}

impl From<&ScopeKeys> for ScopeInfo {
    fn from(keys: &ScopeKeys) -> Self {
        let active = keys.active().map(|a| a.epoch);
        let epochs = keys
            .epochs
            .iter()
            .map(|e| EpochInfo {
                epoch: e.epoch,
                key_id: e.key_id.clone(),
                created_ns: e.created_ns,
                retired_ns: e.retired_ns,
                state: match (&e.wrapped, keys.shredded_ns) {
                    (Some(_), _) if active == Some(e.epoch) => EpochState::Active,
                    (Some(_), _) => EpochState::Readable,
                    (None, Some(shred)) if e.retired_ns.is_some_and(|r| r >= shred) => {
                        EpochState::Shredded
                    }
                    (None, _) => EpochState::Retired,
                },
            })
            .collect();
        Self {
            scope: keys.scope.clone(),
            shredded_ns: keys.shredded_ns,
            epochs,
        }
    }
}

/// Every scope's keys in `dir`, without key material (no master key needed).
pub(crate) fn list(dir: &Path) -> Result<Vec<ScopeInfo>, KeyringError> {
    Keyring::check_value(dir)?;
    let scopes = dir.join(SCOPES_DIR);
    let entries = fs::read_dir(&scopes).map_err(io_error("list", &scopes))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error("list", &scopes))?.path();
        let Some(scope) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(Scope::from_stem)
        else {
            continue;
        };
        if let Some(keys) = read_scope_file(&path, Some(&scope))? {
            out.push(ScopeInfo::from(&keys));
        }
    }
    out.sort_by(|a, b| a.scope.cmp(&b.scope));
    Ok(out)
}
