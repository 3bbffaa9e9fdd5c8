//! File spans: one per path a file syscall touched (a rename touches two: from and to), each
//! a child of the process's execution.
use seam_common::fmode;

use super::Ctx;
use crate::{
    kernel::events::file::FileEvent,
    model::{
        spans::{FileAccess, ProcessRef, Span, SpanBody, SpanId, TraceId},
        vocab::{EndReason, FileOp, Outcome, PathRole},
    },
};

/// `open(2)` flags the access mode depends on.
const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const EPERM: i64 = 1;
const EACCES: i64 = 13;

/// What an event did, from the kernel's operation and its flags (what the kernel granted for a
/// successful open, what was asked for a failed one).
pub(crate) fn op(event: &FileEvent) -> FileOp {
    use seam_common::FileSyscall as Kernel;
    match event.op {
        Kernel::Open if event.ret >= 0 => {
            if event.f_mode & fmode::CREATED != 0 {
                FileOp::Create
            } else if event.f_mode & fmode::WRITE != 0 {
                FileOp::Write
            } else {
                FileOp::Read
            }
        }
        Kernel::Open => {
            if event.flags & O_CREAT != 0 {
                FileOp::Create
            } else if event.flags & O_ACCMODE != 0 || event.flags & O_TRUNC != 0 {
                FileOp::Write
            } else {
                FileOp::Read
            }
        }
        Kernel::Unlink => FileOp::Delete,
        Kernel::Rename => FileOp::Rename,
        Kernel::Truncate => FileOp::Truncate,
        Kernel::Exec => FileOp::Exec,
    }
}

/// Whether the syscall's result means the access happened.
pub(crate) fn outcome(ret: i64) -> Outcome {
    match ret {
        r if r >= 0 => Outcome::Ok,
        r if r == -EACCES || r == -EPERM => Outcome::Denied,
        _ => Outcome::Error,
    }
}

/// The spans of one file event by `process` at boot time `time_ns`.
pub(super) fn spans(
    event: &FileEvent,
    process: ProcessRef,
    time_ns: u64,
    ctx: &Ctx<'_>,
) -> Vec<Span> {
    let op = op(event);
    let outcome = outcome(event.ret);
    let roles: &[Option<PathRole>] = if event.paths.len() == 2 {
        &[Some(PathRole::From), Some(PathRole::To)]
    } else {
        &[None]
    };
    let at = ctx.clock.unix(time_ns);
    let parent = process.execution;
    event
        .paths
        .iter()
        .zip(roles)
        .map(|(path, role)| {
            let mut span = Span {
                trace_id: parent.map_or_else(TraceId::random, |p| p.trace_id),
                span_id: SpanId::random(),
                parent_span_id: parent.map(|p| p.span_id),
                start: at,
                end: Some(at),
                end_reason: Some(EndReason::Instant),
                body: SpanBody::File(FileAccess {
                    process: process.clone(),
                    op,
                    outcome,
                    ret: event.ret,
                    path: path.path.clone(),
                    path_confidence: path.confidence,
                    path_truncated: path.truncated,
                    owner: ctx.rules.tenant_for_path(&path.path),
                    role: *role,
                    tier: None,
                }),
            };
            crate::assemble::tier::classify(&mut span, ctx.rules);
            span
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use seam_common::FileSyscall as Kernel;

    use super::*;
    use crate::{kernel::events::file::FilePath, model::vocab::PathConfidence};

    fn event(op: Kernel, ret: i64, flags: u32, f_mode: u32) -> FileEvent {
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
            dir: None,
        }
    }

    #[test]
    fn op_from_f_mode_on_success_and_flags_on_failure() {
        assert_eq!(op(&event(Kernel::Open, 3, 0, fmode::READ)), FileOp::Read);
        assert_eq!(op(&event(Kernel::Open, 3, 0, fmode::WRITE)), FileOp::Write);
        assert_eq!(
            op(&event(
                Kernel::Open,
                3,
                O_CREAT,
                fmode::WRITE | fmode::CREATED
            )),
            FileOp::Create
        );
        assert_eq!(op(&event(Kernel::Open, -13, 0o2, 0)), FileOp::Write);
        assert_eq!(op(&event(Kernel::Open, -2, O_CREAT | 1, 0)), FileOp::Create);
        assert_eq!(op(&event(Kernel::Unlink, 0, 0, 0)), FileOp::Delete);
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(3), Outcome::Ok);
        assert_eq!(outcome(-13), Outcome::Denied);
        assert_eq!(outcome(-1), Outcome::Denied);
        assert_eq!(outcome(-2), Outcome::Error);
    }
}
