//! Text that a tenant controls (comms, paths, cgroup names) made safe to report: valid UTF-8 is
//! kept as is, each invalid byte becomes `\xNN`, so two different names never collapse into
//! one and nothing is silently replaced. Control characters stay in the string; every feed is
//! JSON (which escapes them) and logs print these fields with `?` (which escapes them too).
use std::{ffi::OsStr, os::unix::ffi::OsStrExt as _};

/// `bytes` as a string: valid UTF-8 kept, invalid bytes as `\xNN`.
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(bytes, &mut out);
    out
}

/// [`escape_bytes`], appended to `out` (no allocation when `out` has room).
pub(crate) fn escape_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// An OS string (a path, a directory name) as [`escape_bytes`] renders it.
pub(crate) fn escape_os(s: &OsStr) -> String {
    escape_bytes(s.as_bytes())
}

/// Resolves `.` and `..` lexically (`..` at the root stays at the root).
pub(crate) fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn normalize_never_climbs_above_root() {
        assert_eq!(normalize_path("/../../etc/./passwd"), "/etc/passwd");
        assert_eq!(normalize_path("a//b/"), "/a/b");
    }

    #[test]
    fn invalid_bytes_are_spelled_out_and_valid_text_is_kept() {
        assert_eq!(escape_bytes(b"/srv/b/\xffx\xc3"), "/srv/b/\\xffx\\xc3");
        assert_eq!(escape_bytes("caf\u{e9}\n".as_bytes()), "caf\u{e9}\n");
    }

    proptest! {
        /// Valid UTF-8 round-trips unchanged; different invalid inputs stay different.
        #[test]
        fn valid_text_is_unchanged(s in ".*") {
            prop_assert_eq!(escape_bytes(s.as_bytes()), s);
        }

        #[test]
        fn distinct_invalid_bytes_stay_distinct(a in any::<u8>(), b in any::<u8>()) {
            prop_assume!(a != b && a >= 0x80 && b >= 0x80);
            prop_assert_ne!(escape_bytes(&[b'x', a]), escape_bytes(&[b'x', b]));
        }
    }
}
