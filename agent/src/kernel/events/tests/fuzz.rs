//! Hostile ring-buffer records: whatever bytes arrive (a build mismatch, a truncated or
//! corrupt record), decoding returns a value or an error, never panics, and what it returns
//! stays within bounds. Bounded property runs, part of `cargo test`.
use proptest::prelude::*;
use seam_common::{EventInfo, EventKind, FILE_BUF, FileHead};

use crate::kernel::events::{DecodeError, KernelEventKind, decode};

const KINDS: [u32; 8] = [
    EventKind::Exec as u32,
    EventKind::Exit as u32,
    EventKind::Connect as u32,
    EventKind::SendMsg as u32,
    EventKind::TcpState as u32,
    EventKind::TcpClose as u32,
    EventKind::File as u32,
    EventKind::FlowStart as u32,
];

/// A record of `kind` (known or not) followed by arbitrary bytes of any length.
fn record() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        4 => prop::sample::select(KINDS.to_vec()),
        1 => any::<u32>(),
    ];
    let len = 0usize..(size_of::<EventInfo>() + size_of::<FileHead>() + 512);
    (kind, prop::collection::vec(any::<u8>(), len)).prop_map(|(kind, mut bytes)| {
        if bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&kind.to_ne_bytes());
        }
        bytes
    })
}

/// A file record with a plausible head (op, npaths, lengths) over arbitrary path bytes.
fn file_record() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..7,
        0u8..4,
        prop::collection::vec((any::<u16>(), any::<u16>(), 0u8..2, 0u8..2), 2),
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(op, npaths, lens, buf)| {
            let mut bytes = vec![0u8; size_of::<EventInfo>() + size_of::<FileHead>()];
            bytes[..4].copy_from_slice(&(EventKind::File as u32).to_ne_bytes());
            let head = size_of::<EventInfo>();
            // FileHead: ret i64, flags u32, f_mode u32, op u8, npaths u8, pad[6], paths[2].
            bytes[head + 16] = op;
            bytes[head + 17] = npaths;
            for (i, (base, user, truncated, resolved)) in lens.into_iter().enumerate() {
                let at = head + 24 + i * 8;
                bytes[at..at + 2].copy_from_slice(&base.to_ne_bytes());
                bytes[at + 2..at + 4].copy_from_slice(&user.to_ne_bytes());
                bytes[at + 4] = truncated;
                bytes[at + 5] = resolved;
                bytes[at + 6] = 1;
            }
            bytes.extend(buf);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_record_decodes_or_is_an_error(bytes in record(), counted in any::<bool>()) {
        match decode(&bytes, counted) {
            Ok(event) => {
                // The comm is at most 16 bytes, each escaped to at most 4 characters.
                prop_assert!(event.header.comm.as_str().len() <= 16 * 4);
            }
            // A short record says how long it was (the whole record, or a file payload).
            Err(DecodeError::Truncated { len, .. }) => prop_assert!(len <= bytes.len()),
            // An unknown record kind, or (in a file record) an unknown operation.
            Err(DecodeError::UnknownKind(kind)) => {
                let record = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                prop_assert!(
                    (record == kind && !KINDS.contains(&kind)) || record == EventKind::File as u32
                );
            }
            Err(DecodeError::Family(_)) => {}
        }
    }

    #[test]
    fn any_file_record_gives_at_most_two_bounded_absolute_paths(bytes in file_record()) {
        if let Ok(event) = decode(&bytes, false) {
            let KernelEventKind::File(file) = event.kind else {
                return Err(TestCaseError::fail("a file record decoded as another kind"));
            };
            prop_assert!(file.paths.len() <= 2);
            for p in &file.paths {
                prop_assert!(p.path.starts_with('/') || p.path.starts_with(".../"), "{}", p.path);
                prop_assert!(p.path.len() <= 4 * (FILE_BUF + 8), "{}", p.path.len());
            }
        }
    }
}
