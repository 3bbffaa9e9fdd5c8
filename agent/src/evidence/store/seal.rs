//! Per-segment AEAD keys and nonces.
//!
//! Each segment gets a fresh 32-byte random salt. Its AES-256-GCM key is
//! HKDF-SHA256(salt = segment salt, ikm = the scope's data key, info = "seam/v1/segment" ||
//! scope || epoch). Frame `n` of the segment is sealed with nonce `0u32 || n` (big-endian), and
//! `n` only grows; a segment is written by one writer, once, and never reopened (a restart
//! opens a new segment with a new salt). So a (key, nonce) pair repeats only if two segments
//! draw the same 256-bit salt. A frame whose write failed still consumes its number.
use ring::{aead, hkdf};

use super::format::SegmentHeader;
use crate::evidence::keys::DataKey;

fn info(header: &SegmentHeader) -> Vec<u8> {
    let mut info = b"seam/v1/segment".to_vec();
    header.scope.bind(&mut info);
    info.extend_from_slice(&header.epoch.to_le_bytes());
    info
}

/// The segment's AEAD key.
pub(crate) fn segment_key(data_key: &DataKey, header: &SegmentHeader) -> aead::LessSafeKey {
    let info = info(header);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header.salt).extract(data_key.bytes());
    let info = [info.as_slice()];
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .expect("AES-256 key length is a valid HKDF-SHA256 output length");
    aead::LessSafeKey::new(aead::UnboundKey::from(okm))
}

/// The segment key's bytes (the same HKDF output), for tests that check (key, nonce) pairs.
#[cfg(test)]
pub(crate) fn segment_key_bytes(data_key: &DataKey, header: &SegmentHeader) -> [u8; 32] {
    let info = info(header);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header.salt).extract(data_key.bytes());
    let mut out = [0u8; 32];
    prk.expand(&[&info], crate::evidence::keys::master::Len(32))
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// The nonce of frame `seq`.
pub(crate) fn nonce_bytes(seq: u64) -> [u8; aead::NONCE_LEN] {
    let mut nonce = [0u8; aead::NONCE_LEN];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

pub(crate) fn nonce(seq: u64) -> aead::Nonce {
    aead::Nonce::assume_unique_for_key(nonce_bytes(seq))
}
