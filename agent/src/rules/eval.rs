//! Evaluating a [`Matcher`] on a span: no parsing, no allocation.

use std::net::IpAddr;

use super::{
    ast::{CmpOp, TextOp},
    catalogue::{Attr, SpanName},
    compile::{Const, Matcher, Node, Set, Term},
    local::LocalAddrs,
};
use crate::{
    attribution::Caller,
    config::{RuleSet, TenantId},
    correlation::{SpanId, TraceId},
};

/// An attribute's value on one span, borrowed from the span or the rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Absent (e.g. no tenant, unknown process).
    Null,
    /// A bool attribute.
    Bool(bool),
    /// An int attribute.
    Int(i64),
    /// A string, tenant or enum attribute.
    Str(&'a str),
    /// An address attribute.
    Addr(IpAddr),
}

/// What evaluation may look up besides the span itself.
#[derive(Clone, Copy)]
pub struct EvalContext<'r> {
    /// Tenants (names, `shared`) and endpoint ownership.
    pub rules: &'r RuleSet,
    /// This node's own addresses (for `peer.local`, `caller.local`).
    pub local: &'r LocalAddrs,
}

impl<'r> EvalContext<'r> {
    /// A tenant's name, or `Null` (also for an id from an older rule set).
    pub fn tenant(&self, id: Option<TenantId>) -> Value<'r> {
        match id.and_then(|id| self.rules.tenants.get(id.index())) {
            Some(t) => Value::Str(&t.name),
            None => Value::Null,
        }
    }

    /// Whether a tenant is shared (`false` when there is none).
    pub fn shared(&self, id: Option<TenantId>) -> Value<'r> {
        let shared = id
            .and_then(|id| self.rules.tenants.get(id.index()))
            .is_some_and(|t| t.shared);
        Value::Bool(shared)
    }
}

/// A span rules can be evaluated on. Implement [`SpanView::get`] with [`caller_attr`] for the
/// common attributes and a `match` for the span's own; return `Value::Null` for anything else.
pub trait SpanView {
    /// The span's name.
    fn name(&self) -> SpanName;
    /// An attribute's value (`Null` when absent or not defined on this span).
    fn get<'a>(&'a self, attr: Attr, ctx: &'a EvalContext<'_>) -> Value<'a>;
    /// The acting process (the client of a connection), when it is known on this node.
    fn caller(&self) -> Option<&Caller>;
    /// The process behind the touched resource (a connection's server), when on this node.
    fn peer(&self) -> Option<&Caller> {
        None
    }
    /// OpenTelemetry trace id.
    fn trace_id(&self) -> TraceId;
    /// OpenTelemetry span id.
    fn span_id(&self) -> SpanId;
    /// Boot-time nanoseconds of the span's start.
    fn start_ns(&self) -> u64;
}

/// The common attributes (`tenant`, `process.*`, `cgroup.*`) of `caller`: `Some(value)` for a
/// common attribute (`Null` when there is no caller), `None` for any other attribute.
pub fn caller_attr<'a>(
    caller: Option<&'a Caller>,
    attr: Attr,
    ctx: &'a EvalContext<'_>,
) -> Option<Value<'a>> {
    let text = |s: &'a str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::Str(s)
        }
    };
    let Some(c) = caller else {
        return matches!(
            attr,
            Attr::Tenant
                | Attr::ProcessPid
                | Attr::ProcessComm
                | Attr::ProcessUid
                | Attr::CgroupId
                | Attr::CgroupPath
        )
        .then_some(Value::Null);
    };
    Some(match attr {
        Attr::Tenant => ctx.tenant(c.tenant),
        // pid 0: the event ran in softirq and no owner was seen.
        Attr::ProcessPid if c.pid == 0 => Value::Null,
        Attr::ProcessPid => Value::Int(i64::from(c.pid)),
        Attr::ProcessComm => text(&c.comm),
        Attr::ProcessUid if c.pid == 0 => Value::Null,
        Attr::ProcessUid => Value::Int(i64::from(c.uid)),
        Attr::CgroupId => Value::Int(i64::try_from(c.cgroup_id).unwrap_or(i64::MAX)),
        Attr::CgroupPath => text(&c.cgroup_path),
        _ => return None,
    })
}

impl Matcher {
    /// Whether the expression holds for `span`.
    pub fn matches<S: SpanView + ?Sized>(&self, span: &S, ctx: &EvalContext<'_>) -> bool {
        self.spans.contains(span.name()) && eval(&self.root, span, ctx)
    }
}

fn eval<S: SpanView + ?Sized>(node: &Node, span: &S, ctx: &EvalContext<'_>) -> bool {
    match node {
        Node::Has { spans, cond } => {
            spans.contains(span.name()) && cond.as_ref().is_none_or(|c| eval(c, span, ctx))
        }
        Node::And(a, b) => eval(a, span, ctx) && eval(b, span, ctx),
        Node::Or(a, b) => eval(a, span, ctx) || eval(b, span, ctx),
        Node::Not(a) => !eval(a, span, ctx),
        Node::Cmp(a, op, b) => compare(value(a, span, ctx), *op, value(b, span, ctx)),
        Node::In(a, set) => {
            let v = value(a, span, ctx);
            match set {
                Set::Values(values) => values.iter().any(|c| equal(v, constant(c))),
                Set::Nets { nets, null_too } => match v {
                    Value::Null => *null_too,
                    Value::Addr(ip) => {
                        let ip = ip.to_canonical();
                        nets.iter().any(|n| n.contains(&ip))
                    }
                    _ => false,
                },
            }
        }
        Node::Text(a, op, b) => match (value(a, span, ctx), value(b, span, ctx)) {
            (Value::Str(x), Value::Str(y)) => match op {
                TextOp::StartsWith => x.starts_with(y),
                TextOp::Contains => x.contains(y),
            },
            _ => false,
        },
        Node::Truthy(a) => value(a, span, ctx) == Value::Bool(true),
    }
}

fn value<'a, S: SpanView + ?Sized>(
    term: &'a Term,
    span: &'a S,
    ctx: &'a EvalContext<'_>,
) -> Value<'a> {
    match term {
        Term::Attr(attr) => span.get(*attr, ctx),
        Term::Const(c) => constant(c),
    }
}

fn constant(c: &Const) -> Value<'_> {
    match c {
        Const::Null => Value::Null,
        Const::Bool(b) => Value::Bool(*b),
        Const::Int(i) => Value::Int(*i),
        Const::Str(s) => Value::Str(s),
        Const::Addr(ip) => Value::Addr(*ip),
    }
}

/// `null == null`; `null` equals nothing else; values of different types are never equal.
pub(super) fn equal(a: Value<'_>, b: Value<'_>) -> bool {
    match (a, b) {
        (Value::Addr(x), Value::Addr(y)) => x.to_canonical() == y.to_canonical(),
        (x, y) => x == y,
    }
}

/// `!=` is the negation of `==`; ordering holds only between two ints.
pub(super) fn compare(a: Value<'_>, op: CmpOp, b: Value<'_>) -> bool {
    match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => !equal(a, b),
        _ => match (a, b) {
            (Value::Int(x), Value::Int(y)) => match op {
                CmpOp::Lt => x < y,
                CmpOp::Le => x <= y,
                CmpOp::Gt => x > y,
                _ => x >= y,
            },
            _ => false,
        },
    }
}
