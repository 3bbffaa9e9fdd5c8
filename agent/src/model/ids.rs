//! OpenTelemetry trace and span ids: hex strings in JSON, raw bytes in binary encodings.
//!
//! The trace scheme (docs/spans.md): a process execution is one trace. Its id is derived from
//! the node's boot id, the process id and the boot-time nanosecond of its exec (or of its start,
//! for a process that was running before Seam saw it exec), so the same execution gets the same
//! trace id across agent restarts. The process span's own id comes from the same digest; child
//! spans (connections, file accesses) get random span ids.
use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// 16-byte OpenTelemetry trace id (never all zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TraceId(pub [u8; 16]);

/// 8-byte OpenTelemetry span id (never all zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SpanId(pub [u8; 8]);

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

macro_rules! id_type {
    ($name:ident, $len:literal) => {
        impl $name {
            /// A random id.
            pub(crate) fn random() -> Self {
                let mut id = [0u8; $len];
                rand::rng().fill_bytes(&mut id);
                id[0] |= 1; // never all-zero (invalid in OTel)
                Self(id)
            }

            /// From bytes; `None` for the all-zero (invalid) id or a wrong length.
            pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
                let id: [u8; $len] = bytes.try_into().ok()?;
                (id != [0u8; $len]).then_some(Self(id))
            }

            /// Lowercase hex.
            pub(crate) fn to_hex(self) -> String {
                hex(&self.0)
            }

            /// Parses lowercase or uppercase hex.
            pub(crate) fn from_hex(text: &str) -> Option<Self> {
                unhex::<$len>(text).and_then(|b| Self::from_slice(&b))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = String::deserialize(deserializer)?;
                    Self::from_hex(&text).ok_or_else(|| {
                        D::Error::custom(format!(
                            "{text:?} is not a {} hex {}",
                            $len * 2,
                            stringify!($name)
                        ))
                    })
                } else {
                    let bytes = <[u8; $len]>::deserialize(deserializer)?;
                    Self::from_slice(&bytes)
                        .ok_or_else(|| D::Error::custom(concat!("all-zero ", stringify!($name))))
                }
            }
        }
    };
}

id_type!(TraceId, 16);
id_type!(SpanId, 8);

/// The ids of one process execution's trace: the trace id and the process span's id, derived
/// from `(boot_id, pid, start_boot_ns)` (SHA-256), so they are the same after an agent restart.
pub(crate) fn process_ids(boot_id: &[u8; 16], pid: u32, start_boot_ns: u64) -> (TraceId, SpanId) {
    let mut input = [0u8; 28];
    input[..16].copy_from_slice(boot_id);
    input[16..20].copy_from_slice(&pid.to_le_bytes());
    input[20..].copy_from_slice(&start_boot_ns.to_le_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let bytes = digest.as_ref();
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    trace.copy_from_slice(&bytes[..16]);
    span.copy_from_slice(&bytes[16..24]);
    trace[0] |= 1;
    span[0] |= 1;
    (TraceId(trace), SpanId(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_zero_is_invalid() {
        let id = TraceId::random();
        assert_eq!(TraceId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(SpanId::from_hex("0000000000000000"), None);
        assert_eq!(SpanId::from_hex("00000000000000zz"), None);
        assert_eq!(SpanId::from_hex("01"), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), id);
    }

    #[test]
    fn process_ids_are_stable_and_distinct() {
        let boot = [7u8; 16];
        assert_eq!(process_ids(&boot, 10, 5), process_ids(&boot, 10, 5));
        assert_ne!(process_ids(&boot, 10, 5).0, process_ids(&boot, 10, 6).0);
        assert_ne!(process_ids(&boot, 10, 5).0, process_ids(&[8; 16], 10, 5).0);
    }
}
