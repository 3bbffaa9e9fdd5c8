//! Evaluating a [`Matcher`] on anything that shows its attributes: no parsing, no allocation,
//! no lookups (spans carry their tenants by name, resolved when they were attributed).

use std::net::IpAddr;

use super::{
    ast::{CmpOp, TextOp},
    compile::{Const, Matcher, Node, Set, Term},
};
use crate::model::catalogue::{Attr, SpanName};

/// An attribute's value on one span, borrowed from the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
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

impl<'a> Value<'a> {
    /// `Str`, or `Null` for an empty string.
    pub(crate) fn text(s: &'a str) -> Self {
        if s.is_empty() {
            Value::Null
        } else {
            Value::Str(s)
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<Option<u32>> for Value<'_> {
    fn from(value: Option<u32>) -> Self {
        value.map_or(Value::Null, |v| Value::Int(i64::from(v)))
    }
}

/// What a rule can be evaluated on: a span name and attribute values. Spans implement it
/// (spans/view.rs); the rule language knows nothing else about them.
pub(crate) trait Attributes {
    /// The span's name.
    fn span_name(&self) -> SpanName;
    /// An attribute's value (`Null` when absent or not defined on this span).
    fn attr(&self, attr: Attr) -> Value<'_>;
    /// An application span's own attribute `key` (`attr("key")`); `Null` elsewhere.
    fn app_attr(&self, _key: &str) -> Value<'_> {
        Value::Null
    }
}

impl Matcher {
    /// Whether the expression holds for `span`.
    pub(crate) fn matches<S: Attributes + ?Sized>(&self, span: &S) -> bool {
        self.spans.contains(span.span_name()) && eval(&self.root, span)
    }
}

fn eval<S: Attributes + ?Sized>(node: &Node, span: &S) -> bool {
    match node {
        Node::Has { spans, cond } => {
            spans.contains(span.span_name()) && cond.as_ref().is_none_or(|c| eval(c, span))
        }
        Node::And(a, b) => eval(a, span) && eval(b, span),
        Node::Or(a, b) => eval(a, span) || eval(b, span),
        Node::Not(a) => !eval(a, span),
        Node::Cmp(a, op, b) => compare(value(a, span), *op, value(b, span)),
        Node::In(a, set) => {
            let v = value(a, span);
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
        Node::Text(a, op, b) => match (value(a, span), value(b, span)) {
            (Value::Str(x), Value::Str(y)) => match op {
                TextOp::StartsWith => x.starts_with(y),
                TextOp::Contains => x.contains(y),
            },
            _ => false,
        },
        Node::Truthy(a) => value(a, span) == Value::Bool(true),
    }
}

fn value<'a, S: Attributes + ?Sized>(term: &'a Term, span: &'a S) -> Value<'a> {
    match term {
        Term::Attr(attr) => span.attr(*attr),
        Term::AppAttr(key) => span.app_attr(key),
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
