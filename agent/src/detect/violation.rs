//! The violation record: one JSON object per line in the feed, built from any span a rule
//! matched.
use rand::RngCore;
use serde::Serialize;

use super::Evidence;
use crate::{
    attribution::{Caller, CallerRecord},
    config::{Rule, Severity},
    correlation::file::{FileAccess, Outcome, PathConfidence},
    events::Transport,
    rules::{Attr, EvalContext, Value},
};

/// Whose network resource was touched, and which.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TargetRecord {
    /// `null` when no tenant owns the destination.
    pub tenant: Option<String>,
    pub addr: String,
    pub port: u16,
    pub protocol: Transport,
    /// The process behind the target socket, when it is on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<CallerRecord>,
}

/// A file that was touched (or that an attempt aimed at).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FileTargetRecord {
    /// `null` when no tenant owns the path.
    pub tenant: Option<String>,
    pub path: String,
    pub op: FileAccess,
    pub outcome: Outcome,
    pub path_confidence: PathConfidence,
    /// Leading path components are missing (too deep or too long for the kernel walk).
    pub path_truncated: bool,
    /// For a rename: whether this is the "from" or the "to" path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

/// What a violation touched.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Target {
    /// A connection's destination.
    Network(TargetRecord),
    /// A file.
    File(FileTargetRecord),
}

/// A broken isolation rule.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    pub signal_id: String,
    pub rule_id: String,
    pub severity: Severity,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    pub node: String,
    /// `network` for `net.*` spans, `file` for `file.*` spans.
    pub kind: &'static str,
    /// The caller's tenant: the one the access should have stayed within (`null`: none).
    pub intended_tenant: Option<String>,
    /// The tenant whose resource was touched (`null`: none).
    pub actual_tenant: Option<String>,
    pub caller: CallerRecord,
    pub target: Target,
    pub trace_id: String,
    pub span_id: String,
    pub message: String,
}

fn signal_id() -> String {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tenant attribute as an owned name.
pub(super) fn tenant_name(value: Value<'_>) -> Option<String> {
    match value {
        Value::Str(s) => Some(s.to_owned()),
        _ => None,
    }
}

/// [`Caller`] as it appears in the feed; a tenant id from an older rule set shows as `null`.
pub fn caller_record(caller: Option<&Caller>, ctx: &EvalContext<'_>) -> CallerRecord {
    match caller {
        Some(c) => CallerRecord {
            tenant: tenant_name(ctx.tenant(c.tenant)),
            pid: c.pid,
            comm: c.comm.clone(),
            uid: c.uid,
            cgroup_id: c.cgroup_id,
            cgroup_path: c.cgroup_path.clone(),
        },
        None => CallerRecord {
            tenant: None,
            pid: 0,
            comm: String::new(),
            uid: 0,
            cgroup_id: 0,
            cgroup_path: String::new(),
        },
    }
}

impl Violation {
    /// The violation of `rule` by `span`.
    pub fn new<S: Evidence + ?Sized>(
        node: &str,
        rule: &Rule,
        span: &S,
        ctx: &EvalContext<'_>,
        wall_time: &str,
    ) -> Self {
        let family = span.name().family();
        let target_tenant = Attr::target_tenant(family).map_or(Value::Null, |a| span.get(a, ctx));
        Self {
            signal_id: signal_id(),
            rule_id: rule.id.clone(),
            severity: rule.severity,
            time: wall_time.to_owned(),
            node: node.to_owned(),
            kind: family.kind(),
            intended_tenant: tenant_name(span.get(Attr::Tenant, ctx)),
            actual_tenant: tenant_name(target_tenant),
            caller: caller_record(span.caller(), ctx),
            target: span.target(ctx),
            trace_id: span.trace_id().to_hex(),
            span_id: span.span_id().to_hex(),
            message: span.describe(ctx),
        }
    }
}
