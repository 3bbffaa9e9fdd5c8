//! Byte layouts of a segment file: two copies of the segment header, then frames. All
//! integers are little-endian. See the module docs of [`crate::evidence::store`] for the whole picture.
use ring::digest;

use crate::evidence::keys::{KeyId, Scope, scope::MAX_TENANT_NAME};

/// First bytes of a segment header copy.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"SEAMSEG1";
/// First bytes of every frame: what a reader searches for to resynchronise after damage.
pub(crate) const FRAME_MARKER: [u8; 8] = [0xF5, b'S', b'e', b'a', b'M', b'f', b'R', 0x9C];
/// Bytes of a frame header (marker included).
pub(crate) const FRAME_HEADER_LEN: usize = 41;
/// Bytes of the AEAD tag after each frame's ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a frame adds to the plaintext records it carries.
#[cfg(feature = "testkit")]
pub(crate) const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + TAG_LEN;
/// Bytes each record adds inside a frame (time and length).
pub(crate) const RECORD_HEADER_LEN: usize = 12;
/// Largest record accepted.
pub(crate) const MAX_RECORD_LEN: usize = 16 << 20;
/// Largest frame ciphertext a reader accepts (a record and a full batch, with room to spare).
pub(crate) const MAX_CIPHERTEXT_LEN: usize = 64 << 20;
/// Longest segment header copy.
pub(crate) const MAX_HEADER_LEN: usize = 8 + 2 + 1 + 3 + MAX_TENANT_NAME + 4 + 8 + 32 + 8 + 8 + 16;
const DIGEST_LEN: usize = 16;
const FORMAT_VERSION: u8 = 1;

/// Bytes of per-segment salt.
pub(crate) const SALT_LEN: usize = 32;

/// What a segment is sealed for and under; written twice at the start of the file and bound
/// into every frame's associated data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub scope: Scope,
    pub epoch: u32,
    pub key_id: KeyId,
    pub salt: [u8; SALT_LEN],
    pub window_start_ns: u64,
    pub created_ns: u64,
}

/// Why a header copy could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    Magic,
    Length,
    Digest,
    Fields,
}

impl SegmentHeader {
    /// One copy: magic, length, version, scope, epoch, key id, salt, window, created, and the
    /// first 16 bytes of the SHA-256 of all that.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        out.extend_from_slice(&SEGMENT_MAGIC);
        out.extend_from_slice(&[0, 0]);
        out.push(FORMAT_VERSION);
        self.scope.bind(&mut out);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.window_start_ns.to_le_bytes());
        out.extend_from_slice(&self.created_ns.to_le_bytes());
        let len = (out.len() + DIGEST_LEN) as u16;
        out[8..10].copy_from_slice(&len.to_le_bytes());
        let digest = digest::digest(&digest::SHA256, &out);
        out.extend_from_slice(&digest.as_ref()[..DIGEST_LEN]);
        out
    }

    /// Decodes the copy at the start of `bytes`; returns it and its length.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Self, usize), HeaderFault> {
        if bytes.len() < 10 || bytes[..8] != SEGMENT_MAGIC {
            return Err(HeaderFault::Magic);
        }
        let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        if len > MAX_HEADER_LEN || len > bytes.len() || len < 11 + 3 + DIGEST_LEN {
            return Err(HeaderFault::Length);
        }
        let (body, digest) = bytes[..len].split_at(len - DIGEST_LEN);
        if digest::digest(&digest::SHA256, body).as_ref()[..DIGEST_LEN] != *digest {
            return Err(HeaderFault::Digest);
        }
        let header = Self::fields(&body[10..]).ok_or(HeaderFault::Fields)?;
        Ok((header, len))
    }

    fn fields(body: &[u8]) -> Option<Self> {
        let mut r = Cursor(body);
        if r.take(1)?[0] != FORMAT_VERSION {
            return None;
        }
        let kind = r.take(1)?[0];
        let name_len = usize::from(u16::from_le_bytes(r.array()?));
        let name = r.take(name_len)?;
        let scope = match kind {
            0 if name_len == 0 => Scope::Node,
            1 => Scope::tenant(std::str::from_utf8(name).ok()?).ok()?,
            _ => return None,
        };
        let header = Self {
            scope,
            epoch: u32::from_le_bytes(r.array()?),
            key_id: KeyId(r.array()?),
            salt: r.array()?,
            window_start_ns: u64::from_le_bytes(r.array()?),
            created_ns: u64::from_le_bytes(r.array()?),
        };
        r.0.is_empty().then_some(header)
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// A frame's header: in clear (a reader skips frames outside a time range without
/// decrypting them) and authenticated as associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Ciphertext bytes, tag included.
    pub ct_len: u32,
    pub seq: u64,
    /// The segment's last frame: written when the segment is closed.
    pub last: bool,
    pub records: u32,
    pub t_min: u64,
    pub t_max: u64,
}

impl FrameHeader {
    pub(crate) fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[..8].copy_from_slice(&FRAME_MARKER);
        out[8..12].copy_from_slice(&self.ct_len.to_le_bytes());
        out[12..20].copy_from_slice(&self.seq.to_le_bytes());
        out[20] = u8::from(self.last);
        out[21..25].copy_from_slice(&self.records.to_le_bytes());
        out[25..33].copy_from_slice(&self.t_min.to_le_bytes());
        out[33..41].copy_from_slice(&self.t_max.to_le_bytes());
        out
    }

    /// None unless the marker, flags and length are plausible.
    pub(crate) fn decode(bytes: &[u8; FRAME_HEADER_LEN]) -> Option<Self> {
        if bytes[..8] != FRAME_MARKER || bytes[20] > 1 {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        let header = Self {
            ct_len: u32_at(8),
            seq: u64_at(12),
            last: bytes[20] == 1,
            records: u32_at(21),
            t_min: u64_at(25),
            t_max: u64_at(33),
        };
        let len = header.ct_len as usize;
        ((TAG_LEN..=MAX_CIPHERTEXT_LEN).contains(&len) && header.t_min <= header.t_max)
            .then_some(header)
    }
}

/// Appends one record (time, length, bytes) to a frame's plaintext.
#[inline]
pub(crate) fn push_record(buf: &mut Vec<u8>, time_ns: u64, record: &[u8]) {
    let mut head = [0u8; RECORD_HEADER_LEN];
    head[..8].copy_from_slice(&time_ns.to_le_bytes());
    head[8..].copy_from_slice(&(record.len() as u32).to_le_bytes());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(record);
}

/// The records of a frame's plaintext; yields None once if the plaintext is malformed.
pub(crate) fn records(plain: &[u8]) -> impl Iterator<Item = Option<(u64, &[u8])>> {
    let mut rest = plain;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let time = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            let len = u32::from_le_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
            let data = rest.get(12..12 + len)?;
            Some((time, data, 12 + len))
        })();
        match parsed {
            Some((time, data, used)) => {
                rest = &rest[used..];
                Some(Some((time, data)))
            }
            None => {
                done = true;
                Some(None)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(scope: Scope) -> SegmentHeader {
        SegmentHeader {
            scope,
            epoch: 3,
            key_id: KeyId([9; 8]),
            salt: [7; SALT_LEN],
            window_start_ns: 1,
            created_ns: 2,
        }
    }

    #[test]
    fn headers_round_trip_and_reject_any_flip() {
        for scope in [Scope::Node, Scope::tenant("acme").unwrap()] {
            let h = header(scope);
            let bytes = h.encode();
            assert_eq!(SegmentHeader::decode(&bytes), Ok((h, bytes.len())));
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x10;
                assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i} accepted");
            }
        }
        let longest = header(Scope::tenant(&"x".repeat(MAX_TENANT_NAME)).unwrap()).encode();
        assert_eq!(longest.len(), MAX_HEADER_LEN);
    }

    #[test]
    fn frame_headers_round_trip() {
        let h = FrameHeader {
            ct_len: 100,
            seq: 5,
            last: true,
            records: 2,
            t_min: 10,
            t_max: 20,
        };
        assert_eq!(FrameHeader::decode(&h.encode()), Some(h));
        let mut bad = h.encode();
        bad[0] ^= 1;
        assert_eq!(FrameHeader::decode(&bad), None);
    }

    #[test]
    fn records_round_trip_and_flag_malformed_plaintext() {
        let mut buf = Vec::new();
        push_record(&mut buf, 1, b"one");
        push_record(&mut buf, 2, b"");
        let got: Vec<_> = records(&buf).collect();
        assert_eq!(got, [Some((1, &b"one"[..])), Some((2, &b""[..]))]);
        buf.pop();
        let got: Vec<_> = records(&buf).collect();
        assert_eq!(got, [Some((1, &b"one"[..])), None]);
    }
}
