//! Type checking: each operand's type resolved against the catalogue and the enclosing
//! `trace.has` scope, comparisons checked side by side, literals converted to the type of the
//! attribute they are compared with.

use std::net::IpAddr;

use super::{
    super::{
        ast::{CmpOp, Expr, Lit, Operand, Span},
        error::ExprError,
    },
    Compiler, Const, Node, Term, span_pattern,
    suggest::suggest,
};
use crate::model::catalogue::{Attr, Family, SpanSet, Type};

/// The static type of an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Attr(Attr),
    /// `attr("...")`: a string.
    AppAttr,
    Null,
    Bool,
    Int,
    Str,
}

impl Ty {
    fn describe(self) -> String {
        match self {
            Ty::Attr(a) => format!("`{a}` ({})", a.ty().describe()),
            Ty::AppAttr => "`attr(...)` (string)".to_owned(),
            Ty::Null => "null".to_owned(),
            Ty::Bool => "a bool".to_owned(),
            Ty::Int => "an int".to_owned(),
            Ty::Str => "a string".to_owned(),
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Ty::Int) || matches!(self, Ty::Attr(a) if a.ty() == Type::Int)
    }

    fn is_text(self) -> bool {
        matches!(self, Ty::Str | Ty::AppAttr) || matches!(self, Ty::Attr(a) if a.ty().is_text())
    }
}

impl Compiler<'_> {
    /// `scope`: the spans of the enclosing `trace.has`, `None` at the top level.
    pub(super) fn node(&mut self, e: &Expr, scope: Option<SpanSet>) -> Option<Node> {
        match e {
            Expr::Or(a, b) => {
                let (a, b) = (self.node(a, scope), self.node(b, scope));
                Some(Node::Or(Box::new(a?), Box::new(b?)))
            }
            Expr::And(a, b) => {
                let (a, b) = (self.node(a, scope), self.node(b, scope));
                Some(Node::And(Box::new(a?), Box::new(b?)))
            }
            Expr::Not(a, _) => Some(Node::Not(Box::new(self.node(a, scope)?))),
            Expr::Has { name, span, cond } => {
                if scope.is_some() {
                    self.errors
                        .push(ExprError::NestedHas { span: span.clone() });
                    return None;
                }
                let Some(spans) = span_pattern(name) else {
                    self.errors.push(ExprError::UnknownSpan {
                        span: span.clone(),
                        name: name.clone(),
                    });
                    return None;
                };
                let cond = match cond {
                    Some(c) => Some(Box::new(self.node(c, Some(spans))?)),
                    None => None,
                };
                Some(Node::Has { spans, cond })
            }
            Expr::Cmp(a, op, b) => self.cmp(a, *op, b, scope),
            Expr::In(a, list, list_span) => self.in_list(a, list, list_span, scope),
            Expr::Text(a, op, b) => {
                let (ta, tb) = (self.operand(a, scope), self.operand(b, scope));
                let (ta, tb) = (ta?, tb?);
                if !ta.is_text() || !tb.is_text() {
                    self.type_error(a.span().start..b.span().end, op.as_str(), ta, tb);
                    return None;
                }
                Some(Node::Text(self.term(a, ta), *op, self.term(b, tb)))
            }
            Expr::Count { span, .. } => {
                self.errors.push(ExprError::Count { span: span.clone() });
                None
            }
            Expr::Truthy(a) => {
                let t = self.operand(a, scope)?;
                let is_bool =
                    matches!(t, Ty::Bool) || matches!(t, Ty::Attr(attr) if attr.ty() == Type::Bool);
                if !is_bool {
                    self.errors.push(ExprError::NotBool {
                        span: a.span(),
                        text: a.to_string(),
                    });
                    return None;
                }
                Some(Node::Truthy(self.term(a, t)))
            }
        }
    }

    pub(super) fn type_error(&mut self, span: Span, op: &'static str, a: Ty, b: Ty) {
        self.errors.push(ExprError::Type {
            span,
            op,
            left: a.describe(),
            right: b.describe(),
        });
    }

    /// Resolves an operand's type, checking attribute names and scope.
    pub(super) fn operand(&mut self, o: &Operand, scope: Option<SpanSet>) -> Option<Ty> {
        match o {
            Operand::Lit(Lit::Null, _) => Some(Ty::Null),
            Operand::Lit(Lit::Bool(_), _) => Some(Ty::Bool),
            Operand::Lit(Lit::Int(_), _) => Some(Ty::Int),
            Operand::Lit(Lit::Str(_), _) => Some(Ty::Str),
            Operand::AppAttr(_, span) => {
                let Some(scope) = scope else {
                    self.errors.push(ExprError::AttrOutsideWhere {
                        span: span.clone(),
                        name: "attr(...)".to_owned(),
                    });
                    return None;
                };
                if let Some(missing) = scope.names().find(|s| s.family() != Family::App) {
                    self.errors.push(ExprError::NotOnSpan {
                        span: span.clone(),
                        attr: "attr(...)",
                        span_name: missing.as_str(),
                    });
                    return None;
                }
                Some(Ty::AppAttr)
            }
            Operand::Attr(name, span) => {
                let Some(attr) = Attr::parse(name) else {
                    self.errors.push(ExprError::UnknownAttr {
                        span: span.clone(),
                        name: name.clone(),
                        suggestions: suggest(name),
                    });
                    return None;
                };
                let Some(scope) = scope else {
                    self.errors.push(ExprError::AttrOutsideWhere {
                        span: span.clone(),
                        name: name.clone(),
                    });
                    return None;
                };
                if let Some(missing) = scope.names().find(|s| !attr.available_on(*s)) {
                    self.errors.push(ExprError::NotOnSpan {
                        span: span.clone(),
                        attr: attr.name(),
                        span_name: missing.as_str(),
                    });
                    return None;
                }
                Some(Ty::Attr(attr))
            }
        }
    }

    /// The compiled term for an operand whose type is `ty`.
    pub(super) fn term(&self, o: &Operand, ty: Ty) -> Term {
        match (o, ty) {
            (_, Ty::Attr(a)) => Term::Attr(a),
            (Operand::AppAttr(key, _), _) => Term::AppAttr(key.as_str().into()),
            (Operand::Lit(l, _), _) => Term::Const(plain(l)),
            (Operand::Attr(..), _) => Term::Const(Const::Null),
        }
    }

    fn cmp(&mut self, a: &Operand, op: CmpOp, b: &Operand, scope: Option<SpanSet>) -> Option<Node> {
        let (ta, tb) = (self.operand(a, scope), self.operand(b, scope));
        let (ta, tb) = (ta?, tb?);
        let whole = a.span().start..b.span().end;
        if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            if !(ta.is_int() && tb.is_int()) {
                self.type_error(whole, op.as_str(), ta, tb);
                return None;
            }
            return Some(Node::Cmp(self.term(a, ta), op, self.term(b, tb)));
        }
        let left = self.side(a, ta, tb, &whole, op)?;
        let right = self.side(b, tb, ta, &whole, op)?;
        Some(Node::Cmp(left, op, right))
    }

    /// Checks operand `o` (type `t`) against the other side's type `other` for `==`/`!=` and
    /// converts a literal to the other side's attribute type.
    fn side(&mut self, o: &Operand, t: Ty, other: Ty, whole: &Span, op: CmpOp) -> Option<Term> {
        let ok = match (t, other) {
            (Ty::Null, _) | (_, Ty::Null) => true,
            (Ty::AppAttr, o) | (o, Ty::AppAttr) => o.is_text(),
            (Ty::Attr(x), Ty::Attr(y)) => compatible(x.ty(), y.ty()),
            (Ty::Attr(x), lit) | (lit, Ty::Attr(x)) => match x.ty() {
                Type::Int => lit == Ty::Int,
                Type::Bool => lit == Ty::Bool,
                Type::Str | Type::Tenant | Type::Enum(_) | Type::Addr => lit == Ty::Str,
            },
            (x, y) => x == y,
        };
        if !ok {
            let (l, r) = (t, other);
            self.type_error(whole.clone(), op.as_str(), l, r);
            return None;
        }
        match (o, other) {
            (Operand::Lit(lit, span), Ty::Attr(attr)) => self.convert(lit, span, attr),
            _ => Some(self.term(o, t)),
        }
    }

    /// Converts a literal compared with `attr` to its type, checking its value.
    pub(super) fn convert(&mut self, lit: &Lit, span: &Span, attr: Attr) -> Option<Term> {
        let Lit::Str(text) = lit else {
            return Some(Term::Const(plain(lit)));
        };
        let bad = |why: String| ExprError::BadValue {
            span: span.clone(),
            attr: attr.name(),
            literal: lit.to_string(),
            why,
        };
        match attr.ty() {
            Type::Addr => match text.parse::<IpAddr>() {
                Ok(ip) => Some(Term::Const(Const::Addr(ip.to_canonical()))),
                Err(_) => {
                    let why = "not an IP address (use `in [\"10.0.0.0/8\"]` for networks)";
                    self.errors.push(bad(why.to_owned()));
                    None
                }
            },
            Type::Enum(values) if !values.contains(&text.as_str()) => {
                self.errors
                    .push(bad(format!("expected one of {}", values.join(", "))));
                None
            }
            Type::Tenant
                if self
                    .env
                    .tenants
                    .is_some_and(|t| !t.contains(&text.as_str())) =>
            {
                let known = self.env.tenants.unwrap_or_default().join(", ");
                self.errors
                    .push(bad(format!("no such tenant (defined: {known})")));
                None
            }
            _ => Some(Term::Const(plain(lit))),
        }
    }
}

/// Whether attributes of types `a` and `b` can be compared with `==`/`!=`.
fn compatible(a: Type, b: Type) -> bool {
    match (a, b) {
        (Type::Int, Type::Int) | (Type::Bool, Type::Bool) | (Type::Addr, Type::Addr) => true,
        (Type::Enum(x), Type::Enum(y)) => x == y,
        (Type::Enum(_), _) | (_, Type::Enum(_)) => false,
        (x, y) => x.is_text() && y.is_text(),
    }
}

/// A literal as it is written (no conversion to an attribute's type).
pub(super) fn plain(lit: &Lit) -> Const {
    match lit {
        Lit::Null => Const::Null,
        Lit::Bool(b) => Const::Bool(*b),
        Lit::Int(i) => Const::Int(*i),
        Lit::Str(s) => Const::Str(s.as_str().into()),
    }
}
