//! The keyring: per-scope data keys with epochs, wrapped by the master key, one JSON file per
//! scope in `scopes/` (0600), changed under a lock shared by the agent and `seam keys`, and
//! every change audited.
use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ring::hmac;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    Actor, MasterKey, Scope,
    audit::{self, AuditAction, AuditSubject},
    files, hex,
    master::{KEY_LEN, random},
};
pub(crate) use super::{
    error::KeyringError,
    listing::{ScopeInfo, list},
};

/// The keyring's own file (format version and master key check value).
pub(crate) const KEYRING_FILE: &str = "keyring.json";
pub(crate) const SCOPES_DIR: &str = "scopes";
const LOCK_FILE: &str = ".lock";
const VERSION: u32 = 1;

/// Identifies a data key without revealing it: the first 8 bytes of HMAC-SHA256(key, "seam/v1/key-id").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct KeyId(pub [u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl KeyId {
    fn of(key: &[u8; KEY_LEN]) -> Self {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), b"seam/v1/key-id");
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag.as_ref()[..8]);
        Self(id)
    }
}

/// One scope's data key of one epoch, unwrapped. Zeroized on drop.
pub(crate) struct DataKey {
    pub scope: Scope,
    pub epoch: u32,
    pub key_id: KeyId,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataKey({} epoch {} id {})",
            self.scope, self.epoch, self.key_id
        )
    }
}

impl DataKey {
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
}

/// One epoch as stored: the wrapped key is gone once retired or shredded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EpochRecord {
    pub epoch: u32,
    pub key_id: String,
    pub created_ns: u64,
    pub retired_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) wrapped: Option<String>,
}

/// One scope's key file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ScopeKeys {
    pub version: u32,
    pub scope: Scope,
    pub shredded_ns: Option<u64>,
    pub epochs: Vec<EpochRecord>,
}

impl ScopeKeys {
    /// The epoch new records are sealed under: the newest one whose key still exists.
    pub(crate) fn active(&self) -> Option<&EpochRecord> {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.wrapped.is_some() && e.retired_ns.is_none())
    }
}

#[derive(Serialize, Deserialize)]
struct KeyringMeta {
    version: u32,
    master_kcv: String,
    created_ns: u64,
}

fn wrap_aad(scope: &Scope, epoch: u32, key_id: &str) -> Vec<u8> {
    let mut aad = b"seam/v1/data-key".to_vec();
    scope.bind(&mut aad);
    aad.extend_from_slice(&epoch.to_le_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> KeyringError {
    let path = path.to_owned();
    move |source| KeyringError::Io {
        action,
        path,
        source,
    }
}

/// Per-scope data keys under one master key, in one directory.
pub(crate) struct Keyring {
    dir: PathBuf,
    master: MasterKey,
    actor: Actor,
    /// Unwrapped keys for reading, by scope and epoch.
    cache: Mutex<HashMap<(Scope, u32), Arc<DataKey>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({})", self.dir.display())
    }
}

impl Keyring {
    /// Creates a keyring in `dir` (0700) for `master`, with the node key's first epoch.
    pub(crate) fn init(dir: &Path, master: MasterKey, actor: Actor) -> Result<Self, KeyringError> {
        files::private_dir(dir).map_err(io_error("create", dir))?;
        files::private_dir(&dir.join(SCOPES_DIR)).map_err(io_error("create", dir))?;
        let keyring = Self {
            dir: dir.to_owned(),
            master,
            actor,
            cache: Mutex::default(),
        };
        let _lock = keyring.lock()?;
        let path = dir.join(KEYRING_FILE);
        if path.exists() {
            return Err(KeyringError::AlreadyInitialized { dir: dir.into() });
        }
        let meta = KeyringMeta {
            version: VERSION,
            master_kcv: keyring.master.check_value().to_string(),
            created_ns: super::now_ns(),
        };
        let text = serde_json::to_string_pretty(&meta).expect("keyring meta serializes");
        files::write_atomic(&path, text.as_bytes()).map_err(io_error("write", &path))?;
        keyring.audit(
            AuditAction::Init,
            AuditSubject {
                detail: Some(format!("master key check value {}", meta.master_kcv)),
                ..AuditSubject::default()
            },
        )?;
        keyring.new_epoch_locked(&Scope::Node)?;
        Ok(keyring)
    }

    /// Opens the keyring in `dir`; `master` must be the one it was created with.
    pub(crate) fn open(dir: &Path, master: MasterKey, actor: Actor) -> Result<Self, KeyringError> {
        let expected = Self::check_value(dir)?;
        let found = master.check_value();
        if expected != found.to_string() {
            return Err(KeyringError::WrongMasterKey {
                dir: dir.into(),
                expected,
                found,
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            master,
            actor,
            cache: Mutex::default(),
        })
    }

    /// The check value (hex) of the master key the keyring in `dir` was created with.
    pub(crate) fn check_value(dir: &Path) -> Result<String, KeyringError> {
        let path = dir.join(KEYRING_FILE);
        let text = match fs::read_to_string(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyringError::NotInitialized { dir: dir.into() });
            }
            read => read.map_err(io_error("read", &path))?,
        };
        let meta: KeyringMeta = serde_json::from_str(&text).map_err(|e| KeyringError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(meta.master_kcv)
    }

    /// The key directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    pub(crate) fn lock(&self) -> Result<files::DirLock, KeyringError> {
        let path = self.dir.join(LOCK_FILE);
        files::DirLock::acquire(&path).map_err(io_error("lock", &path))
    }

    pub(crate) fn audit(
        &self,
        action: AuditAction,
        subject: AuditSubject,
    ) -> Result<audit::AuditEntry, KeyringError> {
        Ok(audit::append(
            &self.dir,
            &self.master,
            &self.actor,
            action,
            subject,
        )?)
    }

    fn scope_path(&self, scope: &Scope) -> PathBuf {
        scope_path(&self.dir, scope)
    }

    /// The scope's key file, None if it has none yet.
    fn read_scope(&self, scope: &Scope) -> Result<Option<ScopeKeys>, KeyringError> {
        read_scope_file(&self.scope_path(scope), Some(scope))
    }

    /// Writes a scope's key file; `erase` overwrites the old one first (keys were destroyed).
    fn write_scope(&self, keys: &ScopeKeys, erase: bool) -> Result<(), KeyringError> {
        let path = self.scope_path(&keys.scope);
        if erase {
            files::overwrite_with_zeros(&path).map_err(io_error("overwrite", &path))?;
        }
        let text = serde_json::to_string_pretty(keys).expect("scope keys serialize");
        files::write_atomic(&path, text.as_bytes()).map_err(io_error("write", &path))
    }

    fn unwrap_epoch(
        &self,
        scope: &Scope,
        record: &EpochRecord,
    ) -> Result<Arc<DataKey>, KeyringError> {
        let path = self.scope_path(scope);
        let unwrap_error = || KeyringError::Unwrap {
            path: path.clone(),
            scope: scope.clone(),
            epoch: record.epoch,
        };
        let wrapped = record
            .wrapped
            .as_deref()
            .ok_or_else(|| KeyringError::Retired {
                scope: scope.clone(),
                epoch: record.epoch,
            })?;
        let wrapped = BASE64.decode(wrapped).map_err(|_| unwrap_error())?;
        let key = self
            .master
            .unwrap(&wrap_aad(scope, record.epoch, &record.key_id), &wrapped)
            .ok_or_else(unwrap_error)?;
        let key_id = KeyId::of(&key);
        if key_id.to_string() != record.key_id {
            return Err(unwrap_error());
        }
        Ok(Arc::new(DataKey {
            scope: scope.clone(),
            epoch: record.epoch,
            key_id,
            key,
        }))
    }

    /// Adds an epoch (the first one: a create); the caller holds the lock.
    fn new_epoch_locked(&self, scope: &Scope) -> Result<(Arc<DataKey>, AuditAction), KeyringError> {
        let mut keys = self.read_scope(scope)?.unwrap_or_else(|| ScopeKeys {
            version: VERSION,
            scope: scope.clone(),
            shredded_ns: None,
            epochs: Vec::new(),
        });
        let epoch = keys.epochs.last().map_or(1, |e| e.epoch + 1);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random(key.as_mut())?;
        let key_id = KeyId::of(&key);
        let wrapped = self
            .master
            .wrap(&wrap_aad(scope, epoch, &key_id.to_string()), &key)?;
        let action = if keys.epochs.is_empty() || keys.active().is_none() {
            AuditAction::Create
        } else {
            AuditAction::Rotate
        };
        keys.epochs.push(EpochRecord {
            epoch,
            key_id: key_id.to_string(),
            created_ns: super::now_ns(),
            retired_ns: None,
            wrapped: Some(BASE64.encode(wrapped)),
        });
        self.write_scope(&keys, false)?;
        self.audit(
            action,
            AuditSubject {
                scope: Some(scope.clone()),
                epoch: Some(epoch),
                key_id: Some(key_id.to_string()),
                detail: keys
                    .shredded_ns
                    .map(|_| "new key after an earlier shred".to_owned()),
            },
        )?;
        let data_key = Arc::new(DataKey {
            scope: scope.clone(),
            epoch,
            key_id,
            key,
        });
        Ok((data_key, action))
    }

    /// The key new records of `scope` are sealed under; the scope's first key is created (and
    /// audited) if it has none. Reads the scope's file each time, so rotations, retirements
    /// and shreds made by `seam keys` take effect at the next segment.
    pub(crate) fn active_key(&self, scope: &Scope) -> Result<Arc<DataKey>, KeyringError> {
        if let Some(keys) = self.read_scope(scope)?
            && let Some(record) = keys.active()
        {
            return self.unwrap_epoch(scope, record);
        }
        let _lock = self.lock()?;
        if let Some(keys) = self.read_scope(scope)?
            && let Some(record) = keys.active()
        {
            return self.unwrap_epoch(scope, record);
        }
        let (key, _) = self.new_epoch_locked(scope)?;
        tracing::info!(%scope, epoch = key.epoch, key_id = %key.key_id, "created a data key");
        Ok(key)
    }

    /// The key of `scope` at `epoch`, for reading (cached).
    pub(crate) fn key(&self, scope: &Scope, epoch: u32) -> Result<Arc<DataKey>, KeyringError> {
        let cache_key = (scope.clone(), epoch);
        if let Some(key) = self.cache.lock().expect("key cache lock").get(&cache_key) {
            return Ok(Arc::clone(key));
        }
        let keys = self
            .read_scope(scope)?
            .ok_or_else(|| KeyringError::UnknownScope {
                scope: scope.clone(),
            })?;
        let record = keys
            .epochs
            .iter()
            .find(|e| e.epoch == epoch)
            .ok_or_else(|| KeyringError::UnknownEpoch {
                scope: scope.clone(),
                epoch,
            })?;
        if record.wrapped.is_none() && keys.shredded_ns.is_some() {
            return Err(KeyringError::Shredded {
                scope: scope.clone(),
            });
        }
        let key = self.unwrap_epoch(scope, record)?;
        self.cache
            .lock()
            .expect("key cache lock")
            .insert(cache_key, Arc::clone(&key));
        Ok(key)
    }

    fn forget(&self, scope: &Scope) {
        self.cache
            .lock()
            .expect("key cache lock")
            .retain(|(s, _), _| s != scope);
    }

    /// Starts a new epoch for `scope` (its first key if it has none); older epochs stay
    /// readable until retired.
    pub(crate) fn rotate(&self, scope: &Scope) -> Result<Arc<DataKey>, KeyringError> {
        let _lock = self.lock()?;
        Ok(self.new_epoch_locked(scope)?.0)
    }

    /// Destroys the key of one epoch (not the active one): records sealed under it become
    /// unreadable.
    pub(crate) fn retire(&self, scope: &Scope, epoch: u32) -> Result<EpochRecord, KeyringError> {
        let _lock = self.lock()?;
        let mut keys = self
            .read_scope(scope)?
            .ok_or_else(|| KeyringError::UnknownScope {
                scope: scope.clone(),
            })?;
        if keys.active().is_some_and(|a| a.epoch == epoch) {
            return Err(KeyringError::ActiveEpoch {
                scope: scope.clone(),
                epoch,
            });
        }
        let record = keys
            .epochs
            .iter_mut()
            .find(|e| e.epoch == epoch)
            .ok_or_else(|| KeyringError::UnknownEpoch {
                scope: scope.clone(),
                epoch,
            })?;
        if record.wrapped.is_none() {
            return Err(KeyringError::Retired {
                scope: scope.clone(),
                epoch,
            });
        }
        record.wrapped = None;
        record.retired_ns = Some(super::now_ns());
        let retired = record.clone();
        self.write_scope(&keys, true)?;
        self.forget(scope);
        self.audit(
            AuditAction::Retire,
            AuditSubject {
                scope: Some(scope.clone()),
                epoch: Some(epoch),
                key_id: Some(retired.key_id.clone()),
                detail: None,
            },
        )?;
        Ok(retired)
    }

    /// Destroys every epoch of `scope`'s keys (crypto-erasure at offboarding); returns how many
    /// keys were destroyed. A later record of the scope gets a new key.
    pub(crate) fn shred(&self, scope: &Scope) -> Result<usize, KeyringError> {
        let _lock = self.lock()?;
        let mut keys = self
            .read_scope(scope)?
            .ok_or_else(|| KeyringError::UnknownScope {
                scope: scope.clone(),
            })?;
        let now = super::now_ns();
        let mut destroyed = 0;
        for record in &mut keys.epochs {
            if record.wrapped.take().is_some() {
                destroyed += 1;
            }
            record.retired_ns.get_or_insert(now);
        }
        keys.shredded_ns = Some(now);
        self.write_scope(&keys, true)?;
        self.forget(scope);
        self.audit(
            AuditAction::Shred,
            AuditSubject {
                scope: Some(scope.clone()),
                detail: Some(format!("{destroyed} key(s) destroyed")),
                ..AuditSubject::default()
            },
        )?;
        Ok(destroyed)
    }
}

pub(crate) fn scope_path(dir: &Path, scope: &Scope) -> PathBuf {
    dir.join(SCOPES_DIR).join(format!("{}.json", scope.stem()))
}

pub(crate) fn read_scope_file(
    path: &Path,
    expect: Option<&Scope>,
) -> Result<Option<ScopeKeys>, KeyringError> {
    let text = match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        read => read.map_err(io_error("read", path))?,
    };
    let corrupt = |reason: String| KeyringError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let keys: ScopeKeys = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if let Some(scope) = expect
        && &keys.scope != scope
    {
        return Err(corrupt(format!("it holds the keys of {}", keys.scope)));
    }
    Ok(Some(keys))
}
