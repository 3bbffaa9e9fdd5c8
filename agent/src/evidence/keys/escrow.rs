//! Escrow of the master key: Shamir's secret sharing over GF(256) (the `blahaj` crate, the
//! maintained fork of `sharks`). Each share file holds one share and the master key's check
//! value, so a recovery is verified before the rebuilt key is used; fewer shares than the
//! threshold recover nothing.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use blahaj::{Share, Sharks};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{KeyCheckValue, MasterKey, files};

const VERSION: u32 = 1;

/// Why shares could not be made or a master key not rebuilt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EscrowError {
    /// The share count or threshold is out of range.
    #[error(
        "cannot split into {shares} share(s) with threshold {threshold}: need 2 <= threshold <= shares <= 255"
    )]
    Parameters { shares: u8, threshold: u8 },
    /// A share file could not be read or written.
    #[error("cannot {action} share file {path}: {source}; check the path and permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A share file is not one `seam keys escrow split` wrote.
    #[error("{path} is not a Seam escrow share ({reason})")]
    Format { path: PathBuf, reason: String },
    /// A share's bytes do not decode.
    #[error("share {index} is damaged ({reason}); use another share of the split")]
    BadShare { index: u8, reason: String },
    /// The shares come from different splits.
    #[error(
        "the shares come from different splits (check values {first} and {other}); give shares of one split"
    )]
    Mixed { first: String, other: String },
    /// Fewer distinct shares than the threshold.
    #[error("{given} distinct share(s) given, {threshold} needed; give more shares of this split")]
    NotEnough { given: usize, threshold: u8 },
    /// The rebuilt key does not match the check value: a share is damaged or forged.
    #[error(
        "the rebuilt master key's check value {found} is not {expected}: a share is damaged or altered"
    )]
    Mismatch {
        expected: String,
        found: KeyCheckValue,
    },
}

/// One share as written to its file (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EscrowShare {
    pub version: u32,
    /// Check value of the master key the shares rebuild.
    pub master_kcv: String,
    pub threshold: u8,
    pub shares: u8,
    /// The share's x coordinate (1-based, as in its file name).
    pub index: u8,
    /// The share (x and y bytes), base64.
    pub share: String,
}

impl Drop for EscrowShare {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.share);
    }
}

/// Splits `master` into `shares` shares, any `threshold` of which rebuild it.
pub(crate) fn split(
    master: &MasterKey,
    shares: u8,
    threshold: u8,
) -> Result<Vec<EscrowShare>, EscrowError> {
    if threshold < 2 || threshold > shares {
        return Err(EscrowError::Parameters { shares, threshold });
    }
    let kcv = master.check_value().to_string();
    Ok(Sharks(threshold)
        .dealer(master.bytes())
        .take(usize::from(shares))
        .map(|share| {
            let bytes = Zeroizing::new(Vec::from(&share));
            EscrowShare {
                version: VERSION,
                master_kcv: kcv.clone(),
                threshold,
                shares,
                index: bytes[0],
                share: BASE64.encode(&*bytes),
            }
        })
        .collect())
}

/// Rebuilds the master key from shares of one split and checks it against their check value.
pub(crate) fn recover(shares: &[EscrowShare]) -> Result<MasterKey, EscrowError> {
    let Some(first) = shares.first() else {
        return Err(EscrowError::NotEnough {
            given: 0,
            threshold: 2,
        });
    };
    let mut decoded = Vec::with_capacity(shares.len());
    let mut xs = std::collections::BTreeSet::new();
    for share in shares {
        if share.master_kcv != first.master_kcv || share.threshold != first.threshold {
            return Err(EscrowError::Mixed {
                first: first.master_kcv.clone(),
                other: share.master_kcv.clone(),
            });
        }
        let bad = |reason: String| EscrowError::BadShare {
            index: share.index,
            reason,
        };
        let bytes = Zeroizing::new(
            BASE64
                .decode(&share.share)
                .map_err(|e| bad(e.to_string()))?,
        );
        let share = Share::try_from(bytes.as_slice()).map_err(|reason| bad(reason.into()))?;
        xs.insert(share.x.0);
        decoded.push(share);
    }
    if xs.len() < usize::from(first.threshold) {
        return Err(EscrowError::NotEnough {
            given: xs.len(),
            threshold: first.threshold,
        });
    }
    let secret = Zeroizing::new(Sharks(first.threshold).recover(&decoded).map_err(|_| {
        EscrowError::NotEnough {
            given: xs.len(),
            threshold: first.threshold,
        }
    })?);
    let mismatch = |found| EscrowError::Mismatch {
        expected: first.master_kcv.clone(),
        found,
    };
    let master = MasterKey::from_bytes(&secret).ok_or(mismatch(KeyCheckValue([0; 8])))?;
    let found = master.check_value();
    if found.to_string() != first.master_kcv {
        return Err(mismatch(found));
    }
    Ok(master)
}

/// Writes each share to `dir/share-<index>-of-<n>.json` (dir 0700, files 0600, never
/// overwriting); returns the paths.
pub(crate) fn write_shares(
    dir: &Path,
    shares: &[EscrowShare],
) -> Result<Vec<PathBuf>, EscrowError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| EscrowError::Io {
            action,
            path,
            source,
        }
    };
    files::private_dir(dir).map_err(io("create the directory of", dir))?;
    let mut paths = Vec::new();
    for share in shares {
        let path = dir.join(format!("share-{}-of-{}.json", share.index, share.shares));
        let text = Zeroizing::new(serde_json::to_string_pretty(share).expect("shares serialize"));
        let mut file = files::create_new(&path).map_err(io("create", &path))?;
        io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io("write", &path))?;
        paths.push(path);
    }
    files::sync_dir(dir).map_err(io("sync the directory of", dir))?;
    Ok(paths)
}

/// Reads one share file.
pub(crate) fn read_share(path: &Path) -> Result<EscrowShare, EscrowError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| EscrowError::Io {
        action: "read",
        path: path.into(),
        source,
    })?);
    let share: EscrowShare = serde_json::from_str(&text).map_err(|e| EscrowError::Format {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if share.version != VERSION {
        return Err(EscrowError::Format {
            path: path.into(),
            reason: format!("version {} (this Seam reads {VERSION})", share.version),
        });
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_shares_recover_and_one_share_recovers_nothing() {
        let master = MasterKey::generate().unwrap();
        let shares = split(&master, 3, 2).unwrap();
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let chosen = [shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert_eq!(
                recover(&chosen).unwrap().check_value(),
                master.check_value()
            );
        }
        let one = [shares[0].clone()];
        assert!(matches!(
            recover(&one),
            Err(EscrowError::NotEnough {
                given: 1,
                threshold: 2
            })
        ));
        // The same share twice is still one share.
        let twice = [shares[1].clone(), shares[1].clone()];
        assert!(matches!(
            recover(&twice),
            Err(EscrowError::NotEnough { .. })
        ));
        // Lying about the threshold does not help: one share alone is not the key.
        let mut forged = shares[0].clone();
        forged.threshold = 1;
        assert!(matches!(
            recover(&[forged]),
            Err(EscrowError::Mismatch { .. })
        ));
        // A share's bytes are not the key's.
        let bytes = BASE64.decode(&shares[0].share).unwrap();
        assert_ne!(&bytes[1..], master.bytes());
    }

    #[test]
    fn damaged_or_mixed_shares_are_refused() {
        let master = MasterKey::generate().unwrap();
        let shares = split(&master, 3, 2).unwrap();
        let mut damaged = shares[1].clone();
        let mut bytes = BASE64.decode(&damaged.share).unwrap();
        bytes[5] ^= 1;
        damaged.share = BASE64.encode(bytes);
        assert!(matches!(
            recover(&[shares[0].clone(), damaged]),
            Err(EscrowError::Mismatch { .. })
        ));
        let other = split(&MasterKey::generate().unwrap(), 3, 2).unwrap();
        assert!(matches!(
            recover(&[shares[0].clone(), other[1].clone()]),
            Err(EscrowError::Mixed { .. })
        ));
        assert!(matches!(
            split(&master, 3, 1),
            Err(EscrowError::Parameters { .. })
        ));
        assert!(matches!(
            split(&master, 2, 3),
            Err(EscrowError::Parameters { .. })
        ));
    }

    #[test]
    fn share_files_are_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let dir = tmp.path().join("escrow");
        let paths = write_shares(&dir, &split(&master, 3, 2).unwrap()).unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for path in &paths {
            assert_eq!(
                fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let read: Vec<_> = paths[1..].iter().map(|p| read_share(p).unwrap()).collect();
        assert_eq!(recover(&read).unwrap().check_value(), master.check_value());
        assert!(
            write_shares(&dir, &split(&master, 3, 2).unwrap()).is_err(),
            "no overwrite"
        );
    }
}
