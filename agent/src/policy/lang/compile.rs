//! [`Expr`] -> [`Matcher`]: names resolved to [`Attr`]s and [`SpanSet`]s, literals converted
//! to the attribute's type, every type error collected.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    ast::{CmpOp, Expr, Lit, Operand, Span, TextOp},
    error::ExprError,
};
use crate::model::catalogue::{Attr, Family, SpanName, SpanSet, Type};

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

/// The static type of an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
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

impl Compiler<'_> {
    /// `scope`: the spans of the enclosing `trace.has`, `None` at the top level.
    fn node(&mut self, e: &Expr, scope: Option<SpanSet>) -> Option<Node> {
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

    fn type_error(&mut self, span: Span, op: &'static str, a: Ty, b: Ty) {
        self.errors.push(ExprError::Type {
            span,
            op,
            left: a.describe(),
            right: b.describe(),
        });
    }

    /// Resolves an operand's type, checking attribute names and scope.
    fn operand(&mut self, o: &Operand, scope: Option<SpanSet>) -> Option<Ty> {
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
    fn term(&self, o: &Operand, ty: Ty) -> Term {
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
    fn convert(&mut self, lit: &Lit, span: &Span, attr: Attr) -> Option<Term> {
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

    fn in_list(
        &mut self,
        a: &Operand,
        list: &[(Lit, Span)],
        list_span: &Span,
        scope: Option<SpanSet>,
    ) -> Option<Node> {
        let t = self.operand(a, scope)?;
        if t == Ty::AppAttr {
            let mut values = Vec::with_capacity(list.len());
            for (lit, span) in list {
                match lit {
                    Lit::Str(_) | Lit::Null => values.push(plain(lit)),
                    _ => self.errors.push(ExprError::BadValue {
                        span: span.clone(),
                        attr: "attr(...)",
                        literal: lit.to_string(),
                        why: "expected a string".to_owned(),
                    }),
                }
            }
            return Some(Node::In(self.term(a, t), Set::Values(values.into())));
        }
        let Ty::Attr(attr) = t else {
            self.type_error(a.span().start..list_span.end, "in", t, Ty::Str);
            return None;
        };
        let errors_before = self.errors.len();
        if attr.ty() == Type::Addr {
            let mut nets = Vec::with_capacity(list.len());
            let mut null_too = false;
            for (lit, span) in list {
                match lit {
                    Lit::Null => null_too = true,
                    Lit::Str(s) => match parse_net(s) {
                        Some(net) => nets.push(net),
                        None => self.errors.push(ExprError::BadValue {
                            span: span.clone(),
                            attr: attr.name(),
                            literal: lit.to_string(),
                            why: "not an IP address or CIDR network".to_owned(),
                        }),
                    },
                    _ => self.literal_type_error(attr, lit, span),
                }
            }
            return (self.errors.len() == errors_before).then(|| {
                Node::In(
                    Term::Attr(attr),
                    Set::Nets {
                        nets: nets.into(),
                        null_too,
                    },
                )
            });
        }
        let mut values = Vec::with_capacity(list.len());
        for (lit, span) in list {
            let lit_ty = match lit {
                Lit::Null => Ty::Null,
                Lit::Bool(_) => Ty::Bool,
                Lit::Int(_) => Ty::Int,
                Lit::Str(_) => Ty::Str,
            };
            let ok = match (attr.ty(), lit_ty) {
                (_, Ty::Null) => true,
                (Type::Int, Ty::Int) | (Type::Bool, Ty::Bool) => true,
                (ty, Ty::Str) => ty.is_text(),
                _ => false,
            };
            if !ok {
                self.literal_type_error(attr, lit, span);
                continue;
            }
            if let Some(Term::Const(c)) = self.convert(lit, span, attr) {
                values.push(c);
            }
        }
        (self.errors.len() == errors_before)
            .then(|| Node::In(Term::Attr(attr), Set::Values(values.into())))
    }

    fn literal_type_error(&mut self, attr: Attr, lit: &Lit, span: &Span) {
        self.errors.push(ExprError::BadValue {
            span: span.clone(),
            attr: attr.name(),
            literal: lit.to_string(),
            why: format!("expected {}", attr.ty().describe()),
        });
    }
}

fn compatible(a: Type, b: Type) -> bool {
    match (a, b) {
        (Type::Int, Type::Int) | (Type::Bool, Type::Bool) | (Type::Addr, Type::Addr) => true,
        (Type::Enum(x), Type::Enum(y)) => x == y,
        (Type::Enum(_), _) | (_, Type::Enum(_)) => false,
        (x, y) => x.is_text() && y.is_text(),
    }
}

fn plain(lit: &Lit) -> Const {
    match lit {
        Lit::Null => Const::Null,
        Lit::Bool(b) => Const::Bool(*b),
        Lit::Int(i) => Const::Int(*i),
        Lit::Str(s) => Const::Str(s.as_str().into()),
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    let net = if s.contains('/') {
        s.parse::<IpNet>().ok()?
    } else {
        IpNet::from(s.parse::<IpAddr>().ok()?.to_canonical())
    };
    Some(net.trunc())
}

/// Catalogue names close to `name` (same last segment, or at most two edits away).
fn suggest(name: &str) -> Vec<&'static str> {
    let last = name.rsplit('.').next().unwrap_or(name);
    Attr::ALL
        .iter()
        .map(|a| a.name())
        .filter(|cand| {
            edit_distance(cand, name) <= 2
                || (last.len() > 2 && cand.rsplit('.').next() == Some(last))
        })
        .take(3)
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
