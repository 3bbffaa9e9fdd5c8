//! The node master key: 32 random bytes kept outside the data path (a file or the
//! `SEAM_MASTER_KEY` environment variable, base64), used only to wrap data keys, to check
//! itself (key check value) and to authenticate the audit log's head.
use std::{
    fmt, fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ring::{
    aead, hkdf, hmac,
    rand::{SecureRandom, SystemRandom},
};
use zeroize::{Zeroize, Zeroizing};

use super::files;

/// Environment variable holding the master key (base64), e.g. from a Kubernetes Secret.
pub(crate) const MASTER_KEY_ENV: &str = "SEAM_MASTER_KEY";
/// Bytes in a master key and in every data key.
pub(crate) const KEY_LEN: usize = 32;
const WRAP_NONCE_LEN: usize = 12;

/// Why the master key cannot be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MasterKeyError {
    /// Neither `--master-key-file` nor `SEAM_MASTER_KEY` was given.
    #[error(
        "no master key: pass --master-key-file PATH or set {MASTER_KEY_ENV} (base64 of 32 bytes)"
    )]
    Missing,
    /// The master key file could not be read.
    #[error("cannot read master key file {path}: {source}; check the path and that it is readable")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The master key file can be read by others than its owner.
    #[error("master key file {path} has mode {mode:o}; make it private: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    /// The text is not base64 of exactly 32 bytes.
    #[error(
        "master key from {origin} is not base64 of {KEY_LEN} bytes ({reason}); check it was copied whole"
    )]
    Format { origin: String, reason: String },
    /// The master key file could not be written.
    #[error(
        "cannot write master key file {path}: {source}; check the directory is writable and the file does not exist yet"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed; check /dev/urandom and getrandom(2)")]
    Random,
}

/// Where the master key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MasterKeySource {
    /// A file holding the base64 key (mode 0600).
    File(PathBuf),
    /// The `SEAM_MASTER_KEY` environment variable.
    Env,
}

impl MasterKeySource {
    /// The file if given, else the environment variable if set, else None.
    pub(crate) fn choose(file: Option<PathBuf>) -> Option<Self> {
        match file {
            Some(path) => Some(Self::File(path)),
            None => std::env::var_os(MASTER_KEY_ENV).map(|_| Self::Env),
        }
    }
}

impl fmt::Display for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env => write!(f, "environment variable {MASTER_KEY_ENV}"),
        }
    }
}

/// The first 8 bytes of HMAC-SHA256(master, "seam/v1/kcv"): identifies a master key (to check
/// the right one is in use, or that escrow shares rebuilt it) without revealing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyCheckValue(pub [u8; 8]);

impl fmt::Display for KeyCheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::hex(&self.0))
    }
}

/// Fills `out` with random bytes from the system generator.
pub(crate) fn random(out: &mut [u8]) -> Result<(), MasterKeyError> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| MasterKeyError::Random)
}

/// Output length for HKDF expansion into raw bytes.
#[cfg(test)]
pub(crate) struct Len(pub usize);

#[cfg(test)]
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The node master key. Zeroized on drop; never printed.
pub(crate) struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(kcv {})", self.check_value())
    }
}

impl MasterKey {
    /// A new random master key.
    pub(crate) fn generate() -> Result<Self, MasterKeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random(key.as_mut())?;
        Ok(Self { key })
    }

    /// From raw bytes (escrow recovery); the caller zeroizes its copy.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(Self { key })
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// Parses base64 text (surrounding whitespace ignored); `origin` names it in errors.
    pub(crate) fn from_base64(text: &str, origin: &str) -> Result<Self, MasterKeyError> {
        let format = |reason: String| MasterKeyError::Format {
            origin: origin.into(),
            reason,
        };
        let decoded = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|e| format(e.to_string()))?,
        );
        Self::from_bytes(&decoded).ok_or_else(|| format(format!("{} bytes", decoded.len())))
    }

    /// Loads the key from `source`; a file must not be readable by group or others.
    pub(crate) fn load(source: &MasterKeySource) -> Result<Self, MasterKeyError> {
        match source {
            MasterKeySource::File(path) => {
                let read = |source| MasterKeyError::Read {
                    path: path.clone(),
                    source,
                };
                let mode = fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(MasterKeyError::Permissions {
                        path: path.clone(),
                        mode,
                    });
                }
                let text = Zeroizing::new(fs::read_to_string(path).map_err(read)?);
                Self::from_base64(&text, &source.to_string())
            }
            MasterKeySource::Env => {
                let mut text =
                    std::env::var(MASTER_KEY_ENV).map_err(|_| MasterKeyError::Missing)?;
                let key = Self::from_base64(&text, &source.to_string());
                text.zeroize();
                key
            }
        }
    }

    /// The key as base64 text.
    pub(crate) fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.key.as_ref()))
    }

    /// Writes the key (base64 and a newline) to a new 0600 file; an existing file is an error.
    pub(crate) fn write_new_file(&self, path: &Path) -> Result<(), MasterKeyError> {
        use std::io::Write as _;
        let write = |source| MasterKeyError::Write {
            path: path.to_owned(),
            source,
        };
        let mut file = files::create_new(path).map_err(write)?;
        let mut text = self.to_base64();
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(write)?;
        file.sync_all().map_err(write)
    }

    /// The key check value.
    pub(crate) fn check_value(&self) -> KeyCheckValue {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref());
        let tag = hmac::sign(&key, b"seam/v1/kcv");
        let mut kcv = [0u8; 8];
        kcv.copy_from_slice(&tag.as_ref()[..8]);
        KeyCheckValue(kcv)
    }

    fn prk(&self) -> hkdf::Prk {
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"seam/v1/master").extract(self.key.as_ref())
    }

    fn wrapping_key(&self) -> aead::LessSafeKey {
        let prk = self.prk();
        let okm = prk
            .expand(&[b"wrap"], &aead::AES_256_GCM)
            .expect("AES-256 key length is a valid HKDF-SHA256 output length");
        aead::LessSafeKey::new(aead::UnboundKey::from(okm))
    }

    /// The key that authenticates the audit log's head.
    pub(crate) fn audit_key(&self) -> hmac::Key {
        let prk = self.prk();
        let okm = prk
            .expand(&[b"audit"], hmac::HMAC_SHA256)
            .expect("HMAC-SHA256 key length is a valid HKDF-SHA256 output length");
        hmac::Key::from(okm)
    }

    /// Seals a data key under the wrapping key: random nonce || ciphertext || tag. `aad` binds
    /// it to its scope, epoch and key id, so it cannot be moved to another tenant or epoch.
    pub(crate) fn wrap(&self, aad: &[u8], key: &[u8; KEY_LEN]) -> Result<Vec<u8>, MasterKeyError> {
        let mut nonce = [0u8; WRAP_NONCE_LEN];
        random(&mut nonce)?;
        let mut out = Vec::with_capacity(WRAP_NONCE_LEN + KEY_LEN + aead::MAX_TAG_LEN);
        out.extend_from_slice(&nonce);
        let mut sealed = Zeroizing::new(key.to_vec());
        self.wrapping_key()
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut *sealed,
            )
            .map_err(|_| MasterKeyError::Random)?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a wrapped data key; None if it was not wrapped by this master key with this `aad`.
    pub(crate) fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        if wrapped.len() != WRAP_NONCE_LEN + KEY_LEN + aead::MAX_TAG_LEN {
            return None;
        }
        let (nonce, sealed) = wrapped.split_at(WRAP_NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self
            .wrapping_key()
            .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
            .ok()?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(plain);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_binds_the_associated_data() {
        let master = MasterKey::generate().unwrap();
        let key = [7u8; KEY_LEN];
        let wrapped = master.wrap(b"tenant a epoch 1", &key).unwrap();
        assert_eq!(*master.unwrap(b"tenant a epoch 1", &wrapped).unwrap(), key);
        assert!(master.unwrap(b"tenant b epoch 1", &wrapped).is_none());
        let other = MasterKey::generate().unwrap();
        assert!(other.unwrap(b"tenant a epoch 1", &wrapped).is_none());
        assert_ne!(master.check_value(), other.check_value());
    }

    #[test]
    fn files_round_trip_and_must_be_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        let master = MasterKey::generate().unwrap();
        master.write_new_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let source = MasterKeySource::File(path.clone());
        let loaded = MasterKey::load(&source).unwrap();
        assert_eq!(loaded.check_value(), master.check_value());
        assert!(matches!(
            master.write_new_file(&path),
            Err(MasterKeyError::Write { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load(&source),
            Err(MasterKeyError::Permissions { mode: 0o644, .. })
        ));
    }

    #[test]
    fn bad_text_is_refused_with_its_origin() {
        let error = MasterKey::from_base64("bm90IGEga2V5", "test").unwrap_err();
        assert!(error.to_string().contains("from test"), "{error}");
        assert!(MasterKey::from_base64("***", "test").is_err());
    }
}
