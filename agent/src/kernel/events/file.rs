//! File events: decoding the variable-length record and composing its paths.
use seam_common::{FILE_BUF, FileHead, FileSyscall, PathMeta};

use super::DecodeError;
use crate::model::{text::normalize_path, vocab::PathConfidence};

/// One path of a file event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilePath {
    /// Absolute path; starts with `.../` when leading components were cut.
    pub path: String,
    pub confidence: PathConfidence,
    /// Leading components are missing (too deep or too long).
    pub truncated: bool,
}

/// A decoded file event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileEvent {
    pub op: FileSyscall,
    /// The syscall's result: fd or 0 on success, -errno on failure.
    pub ret: i64,
    /// open flags as passed (0 for other operations).
    pub flags: u32,
    /// `f_mode` of the opened file (0 unless an open succeeded).
    pub f_mode: u32,
    /// One path, or two for a rename (from, to).
    pub paths: Vec<FilePath>,
    /// For an open on a tier that can silence repeats: what to silence it by.
    pub dir: Option<DirTag>,
}

/// The directory an opened file was found in, by identity, with the file generation and access
/// class the probe saw: with the caller's cgroup, the key the agent may silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirTag {
    pub ino: u64,
    pub dev: u32,
    pub generation: u64,
    pub class: u8,
}

/// `prefix`, then the directory `bytes` names (components leaf first, each NUL-terminated)
/// root first, each component escaped: `{prefix}/a/b`, or `{prefix}/` for none. One allocation.
fn base_path(prefix: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(prefix.len() + bytes.len() + 1);
    out.push_str(prefix);
    for part in bytes.split(|&b| b == 0).rev().filter(|p| !p.is_empty()) {
        out.push('/');
        crate::model::text::escape_into(part, &mut out);
    }
    if out.len() == prefix.len() {
        out.push('/');
    }
    out
}

/// Builds the path from its parts (see seam_common::file).
pub(crate) fn compose(meta: &PathMeta, base: &[u8], user: Option<&str>) -> FilePath {
    let truncated = meta.truncated != 0;
    let prefix = if truncated { "..." } else { "" };
    let base_path = base_path(prefix, base);
    if meta.resolved != 0 || user.is_none() {
        return FilePath {
            path: base_path,
            confidence: if truncated || meta.rooted == 0 {
                PathConfidence::Partial
            } else {
                PathConfidence::Full
            },
            truncated,
        };
    }
    let user = user.unwrap_or_default();
    let plain_name = !user.contains('/') && user != "." && user != ".." && !user.is_empty();
    // An absolute user path starts from the task's root, a relative one from the dirfd or cwd;
    // either way `base` holds that directory, so the two join the same way (`normalize` folds
    // the doubled `/`).
    let joined = format!("{}/{user}", &base_path[prefix.len()..]);
    let path = format!("{prefix}{}", normalize_path(&joined));
    FilePath {
        path,
        confidence: if plain_name && !truncated && meta.rooted != 0 {
            PathConfidence::Full
        } else {
            PathConfidence::Partial
        },
        truncated,
    }
}

/// Decodes the payload after the common header.
pub(crate) fn decode(payload: &[u8]) -> Result<FileEvent, DecodeError> {
    let head_len = size_of::<FileHead>();
    if payload.len() < head_len {
        return Err(DecodeError::Truncated {
            kind: "file",
            len: payload.len(),
        });
    }
    // SAFETY: length checked; FileHead is a #[repr(C)] Pod type; unaligned read.
    let head: FileHead = unsafe { std::ptr::read_unaligned(payload.as_ptr().cast()) };
    let op = FileSyscall::from_u8(head.op).ok_or(DecodeError::UnknownKind(u32::from(head.op)))?;
    let buf = &payload[head_len..payload.len().min(head_len + FILE_BUF)];
    let mut paths = Vec::with_capacity(2);
    let mut off = 0usize;
    for meta in head.paths.iter().take(usize::from(head.npaths.min(2))) {
        let base_end = (off + usize::from(meta.base_len)).min(buf.len());
        let base = &buf[off.min(base_end)..base_end];
        let user_end = (base_end + usize::from(meta.user_len)).min(buf.len());
        let user = (meta.user_len > 0).then(|| {
            let raw = &buf[base_end..user_end];
            let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
            crate::model::text::escape_bytes(raw)
        });
        paths.push(compose(meta, base, user.as_deref()));
        off = user_end;
    }
    Ok(FileEvent {
        op,
        ret: head.ret,
        flags: head.flags,
        f_mode: head.f_mode,
        paths,
        dir: (head.dir_ino != 0).then_some(DirTag {
            ino: head.dir_ino,
            dev: head.dir_dev,
            generation: head.generation,
            class: head.class,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(base: &[u8], user: Option<&str>, resolved: bool) -> PathMeta {
        PathMeta {
            base_len: base.len() as u16,
            user_len: user.map_or(0, |u| u.len() as u16 + 1),
            truncated: 0,
            resolved: u8::from(resolved),
            rooted: 1,
            _pad: 0,
        }
    }

    #[test]
    fn resolved_components_are_reversed() {
        let base = b"x\0b\0srv\0";
        let p = compose(&meta(base, None, true), base, None);
        assert_eq!(p.path, "/srv/b/x");
        assert_eq!(p.confidence, PathConfidence::Full);
    }

    #[test]
    fn user_paths_join_the_base_and_resolve_dotdot() {
        let base = b"a\0srv\0";
        let p = compose(&meta(base, Some("../b/x"), false), base, Some("../b/x"));
        assert_eq!(p.path, "/srv/b/x");
        assert_eq!(p.confidence, PathConfidence::Partial);
        let p = compose(&meta(base, Some("new"), false), base, Some("new"));
        assert_eq!(p.path, "/srv/a/new");
        assert_eq!(
            p.confidence,
            PathConfidence::Full,
            "plain name in a resolved dir"
        );
        // Absolute: the base is the task's root.
        let root: &[u8] = b"";
        let p = compose(
            &meta(root, Some("/srv/b/../b/y"), false),
            root,
            Some("/srv/b/../b/y"),
        );
        assert_eq!(p.path, "/srv/b/y");
    }

    #[test]
    fn truncation_is_explicit() {
        let base = b"leaf\0d63\0";
        let mut m = meta(base, None, true);
        m.truncated = 1;
        let p = compose(&m, base, None);
        assert_eq!(p.path, ".../d63/leaf");
        assert!(p.truncated);
        assert_eq!(p.confidence, PathConfidence::Partial);
    }
}
