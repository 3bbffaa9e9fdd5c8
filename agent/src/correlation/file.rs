//! File spans: one span per path a file syscall touched (a rename touches two: from and to,
//! sharing one trace).
use seam_common::{FileOp, fmode};

pub use crate::events::file::{FileEvent, FilePath, PathConfidence};
use crate::{
    attribution::Caller,
    correlation::span::{SpanId, TraceId},
};

/// The access a span records, from the operation and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAccess {
    Read,
    Write,
    Create,
    Delete,
    Rename,
    Truncate,
    Exec,
}

impl std::fmt::Display for FileAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Rename => "rename",
            Self::Truncate => "truncate",
            Self::Exec => "exec",
        })
    }
}

/// Whether the access happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The syscall succeeded: an access.
    Ok,
    /// EACCES or EPERM: an attempt the kernel refused.
    Denied,
    /// Any other failure (ENOENT, EEXIST, ...): an attempt.
    Error,
}

/// `open(2)` flags the access mode depends on.
const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const EPERM: i64 = 1;
const EACCES: i64 = 13;

/// The access an event represents.
pub fn access(event: &FileEvent) -> FileAccess {
    match event.op {
        FileOp::Open if event.ret >= 0 => {
            if event.f_mode & fmode::CREATED != 0 {
                FileAccess::Create
            } else if event.f_mode & fmode::WRITE != 0 {
                FileAccess::Write
            } else {
                FileAccess::Read
            }
        }
        FileOp::Open => {
            if event.flags & O_CREAT != 0 {
                FileAccess::Create
            } else if event.flags & O_ACCMODE != 0 || event.flags & O_TRUNC != 0 {
                FileAccess::Write
            } else {
                FileAccess::Read
            }
        }
        FileOp::Unlink => FileAccess::Delete,
        FileOp::Rename => FileAccess::Rename,
        FileOp::Truncate => FileAccess::Truncate,
        FileOp::Exec => FileAccess::Exec,
    }
}

/// The outcome of an event's syscall.
pub fn outcome(ret: i64) -> Outcome {
    match ret {
        r if r >= 0 => Outcome::Ok,
        r if r == -EACCES || r == -EPERM => Outcome::Denied,
        _ => Outcome::Error,
    }
}

/// One path touched by one file syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub start_ns: u64,
    pub caller: Caller,
    pub access: FileAccess,
    pub outcome: Outcome,
    /// The syscall's return value (-errno for attempts).
    pub ret: i64,
    pub path: FilePath,
    /// For a rename: "from" or "to".
    pub role: Option<&'static str>,
}

/// The spans of one file event.
pub fn spans(event: &FileEvent, caller: &Caller, time_ns: u64) -> Vec<FileSpan> {
    let trace_id = TraceId::random();
    let access = access(event);
    let outcome = outcome(event.ret);
    let roles: &[Option<&'static str>] = if event.paths.len() == 2 {
        &[Some("from"), Some("to")]
    } else {
        &[None]
    };
    event
        .paths
        .iter()
        .zip(roles)
        .map(|(path, role)| FileSpan {
            trace_id,
            span_id: SpanId::random(),
            start_ns: time_ns,
            caller: caller.clone(),
            access,
            outcome,
            ret: event.ret,
            path: path.clone(),
            role: *role,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(op: FileOp, ret: i64, flags: u32, f_mode: u32) -> FileEvent {
        FileEvent {
            op,
            ret,
            flags,
            f_mode,
            paths: vec![FilePath {
                path: "/srv/b/x".into(),
                confidence: PathConfidence::Full,
                truncated: false,
            }],
        }
    }

    #[test]
    fn access_from_f_mode_on_success_and_flags_on_failure() {
        assert_eq!(
            access(&event(FileOp::Open, 3, 0, fmode::READ)),
            FileAccess::Read
        );
        assert_eq!(
            access(&event(FileOp::Open, 3, 0, fmode::WRITE)),
            FileAccess::Write
        );
        assert_eq!(
            access(&event(
                FileOp::Open,
                3,
                O_CREAT,
                fmode::WRITE | fmode::CREATED
            )),
            FileAccess::Create
        );
        assert_eq!(access(&event(FileOp::Open, -13, 0o2, 0)), FileAccess::Write);
        assert_eq!(
            access(&event(FileOp::Open, -2, O_CREAT | 1, 0)),
            FileAccess::Create
        );
        assert_eq!(access(&event(FileOp::Unlink, 0, 0, 0)), FileAccess::Delete);
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(3), Outcome::Ok);
        assert_eq!(outcome(-13), Outcome::Denied);
        assert_eq!(outcome(-1), Outcome::Denied);
        assert_eq!(outcome(-2), Outcome::Error);
    }
}
