//! [`SpanView`] and [`Evidence`] for file spans (`file.*`).
use super::{Evidence, FileTargetRecord, Target, violation::tenant_name};
use crate::{
    attribution::Caller,
    config::TenantId,
    correlation::{
        FileSpan, SpanId, TraceId,
        file::{FileAccess, Outcome, PathConfidence},
    },
    rules::{Attr, EvalContext, SpanName, SpanView, Value, caller_attr},
};

impl FileSpan {
    /// The tenant owning the path.
    pub fn path_tenant(&self, ctx: &EvalContext<'_>) -> Option<TenantId> {
        ctx.rules.tenant_for_path(&self.path.path)
    }
}

impl SpanView for FileSpan {
    fn name(&self) -> SpanName {
        match self.access {
            FileAccess::Read | FileAccess::Write => SpanName::FileOpen,
            FileAccess::Create => SpanName::FileCreate,
            FileAccess::Delete => SpanName::FileDelete,
            FileAccess::Rename => SpanName::FileRename,
            FileAccess::Truncate => SpanName::FileTruncate,
            FileAccess::Exec => SpanName::FileExec,
        }
    }

    fn get<'a>(&'a self, attr: Attr, ctx: &'a EvalContext<'_>) -> Value<'a> {
        if let Some(v) = caller_attr(Some(&self.caller), attr, ctx) {
            return v;
        }
        match attr {
            Attr::FilePath => Value::Str(&self.path.path),
            Attr::FileTenant => ctx.tenant(self.path_tenant(ctx)),
            Attr::FileShared => ctx.shared(self.path_tenant(ctx)),
            Attr::FileOp => Value::Str(match self.access {
                FileAccess::Read => "read",
                FileAccess::Write => "write",
                FileAccess::Create => "create",
                FileAccess::Delete => "delete",
                FileAccess::Rename => "rename",
                FileAccess::Truncate => "truncate",
                FileAccess::Exec => "exec",
            }),
            Attr::FileOutcome => Value::Str(match self.outcome {
                Outcome::Ok => "ok",
                Outcome::Denied => "denied",
                Outcome::Error => "error",
            }),
            Attr::FilePathConfidence => Value::Str(match self.path.confidence {
                PathConfidence::Full => "full",
                PathConfidence::Partial => "partial",
            }),
            _ => Value::Null,
        }
    }

    fn caller(&self) -> Option<&Caller> {
        Some(&self.caller)
    }

    fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    fn span_id(&self) -> SpanId {
        self.span_id
    }

    fn start_ns(&self) -> u64 {
        self.start_ns
    }
}

impl Evidence for FileSpan {
    fn target(&self, ctx: &EvalContext<'_>) -> Target {
        Target::File(FileTargetRecord {
            tenant: tenant_name(ctx.tenant(self.path_tenant(ctx))),
            path: self.path.path.clone(),
            op: self.access,
            outcome: self.outcome,
            path_confidence: self.path.confidence,
            path_truncated: self.path.truncated,
            role: self.role,
        })
    }

    fn describe(&self, ctx: &EvalContext<'_>) -> String {
        let from = tenant_name(ctx.tenant(self.caller.tenant))
            .unwrap_or_else(|| "a process outside any tenant:".to_owned());
        let owner = tenant_name(ctx.tenant(self.path_tenant(ctx)))
            .map_or_else(|| "an unowned path".to_owned(), |t| format!("{t}'s"));
        let verb = match self.outcome {
            Outcome::Ok => "touched",
            Outcome::Denied => "was denied",
            Outcome::Error => "tried",
        };
        format!(
            "{from} process {comm} (pid {pid}) {verb} {op} on {owner} {path}",
            comm = self.caller.comm,
            pid = self.caller.pid,
            op = self.access,
            path = self.path.path,
        )
    }
}
