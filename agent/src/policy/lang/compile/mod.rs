//! [`Expr`] -> [`Matcher`]: names resolved to [`Attr`]s and [`SpanSet`]s, literals converted
//! to the attribute's type ([`check`], [`lists`]), every type error collected.

mod check;
mod lists;
mod suggest;

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    ast::{CmpOp, Expr, TextOp},
    error::ExprError,
};
use crate::model::catalogue::{Attr, SpanName, SpanSet};

/// A constant, converted at compile time to the type it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Str(Box<str>),
    Addr(IpAddr),
}

/// One side of a compiled comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Term {
    Attr(Attr),
    /// An application span's own attribute (`attr("key")`).
    AppAttr(Box<str>),
    Const(Const),
}

/// The values of a compiled `in [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Set {
    Values(Box<[Const]>),
    /// For address attributes: networks (a single IP is a /32 or /128); `null` in the list
    /// sets `null_too`.
    Nets {
        nets: Box<[IpNet]>,
        null_too: bool,
    },
}

/// A compiled expression node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Has {
        spans: SpanSet,
        cond: Option<Box<Node>>,
    },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cmp(Term, CmpOp, Term),
    In(Term, Set),
    Text(Term, TextOp, Term),
    Truthy(Term),
}

/// A compiled rule expression: evaluate it with [`Matcher::matches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    /// The spans the expression can match (others are skipped without evaluation).
    pub spans: SpanSet,
    pub(super) root: Node,
    /// For `trace.count(...) > N`: the limit; `matches` then says whether a span is counted.
    pub count: Option<CountLimit>,
}

/// The limit of a `trace.count(...)` expression: the rule fires when the count in its window
/// goes above `max` (`> N`: `max` = N; `>= N`: `max` = N - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountLimit {
    pub max: u64,
}

/// What compilation needs to know besides the catalogue.
pub(crate) struct CompileEnv<'a> {
    /// Defined tenant names: tenant literals must be one of them (`None`: not checked).
    pub tenants: Option<&'a [&'a str]>,
}

struct Compiler<'a> {
    env: &'a CompileEnv<'a>,
    errors: Vec<ExprError>,
}

/// Compiles `expr`; every error found is returned.
pub(crate) fn compile(expr: &Expr, env: &CompileEnv<'_>) -> Result<Matcher, Vec<ExprError>> {
    let mut c = Compiler {
        env,
        errors: Vec::new(),
    };
    let (root, count) = match expr {
        Expr::Count {
            name,
            span,
            cond,
            op,
            n,
            limit_span,
        } => {
            let has = Expr::Has {
                name: name.clone(),
                span: span.clone(),
                cond: cond.clone(),
            };
            let max = match op {
                CmpOp::Gt => u64::try_from(*n).ok(),
                CmpOp::Ge => u64::try_from(*n).ok().and_then(|n| n.checked_sub(1)),
                _ => None,
            };
            if max.is_none() {
                c.errors.push(ExprError::Count {
                    span: limit_span.clone(),
                });
            }
            (c.node(&has, None), max.map(|max| CountLimit { max }))
        }
        _ => (c.node(expr, None), None),
    };
    match root {
        Some(root) if c.errors.is_empty() => Ok(Matcher {
            spans: spans_of(&root),
            root,
            count,
        }),
        _ => Err(c.errors),
    }
}

impl Matcher {
    /// Every catalogue attribute the expression reads (`attr("...")` is reported as `None`).
    pub(crate) fn attrs(&self) -> Vec<Option<Attr>> {
        fn term(t: &Term, out: &mut Vec<Option<Attr>>) {
            match t {
                Term::Attr(a) => out.push(Some(*a)),
                Term::AppAttr(_) => out.push(None),
                Term::Const(_) => {}
            }
        }
        fn walk(n: &Node, out: &mut Vec<Option<Attr>>) {
            match n {
                Node::Has { cond, .. } => {
                    if let Some(c) = cond {
                        walk(c, out);
                    }
                }
                Node::And(a, b) | Node::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Node::Not(a) => walk(a, out),
                Node::Cmp(a, _, b) | Node::Text(a, _, b) => {
                    term(a, out);
                    term(b, out);
                }
                Node::In(a, _) | Node::Truthy(a) => term(a, out),
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

/// Spans a top-level node can be true for.
fn spans_of(node: &Node) -> SpanSet {
    match node {
        Node::Has { spans, .. } => *spans,
        Node::And(a, b) => spans_of(a).intersect(spans_of(b)),
        Node::Or(a, b) => spans_of(a).union(spans_of(b)),
        _ => SpanSet::ALL,
    }
}

/// The spans a `trace.has(...)` pattern selects: a name, `family.*` or `*`.
pub(crate) fn span_pattern(name: &str) -> Option<SpanSet> {
    if name == "*" {
        return Some(SpanSet::ALL);
    }
    if let Some(prefix) = name.strip_suffix(".*") {
        let set = SpanName::ALL
            .into_iter()
            .filter(|s| s.as_str().split('.').next() == Some(prefix))
            .fold(SpanSet::EMPTY, |acc, s| acc.union(SpanSet::one(s)));
        return (set != SpanSet::EMPTY).then_some(set);
    }
    SpanName::parse(name).map(SpanSet::one)
}
