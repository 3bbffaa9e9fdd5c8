//! The parsed expression, with byte spans into the source, and its pretty-printer.

use std::{fmt, ops::Range};

/// A byte range in the expression text.
pub(crate) type Span = Range<usize>;

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lit {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A quoted string (unescaped).
    Str(String),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operand {
    /// An attribute name, e.g. `peer.tenant`.
    Attr(String, Span),
    /// A literal.
    Lit(Lit, Span),
    /// `attr("key")`: an application span's own attribute.
    AppAttr(String, Span),
}

impl Operand {
    /// Where the operand is.
    pub(crate) fn span(&self) -> Span {
        match self {
            Operand::Attr(_, s) | Operand::Lit(_, s) | Operand::AppAttr(_, s) => s.clone(),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CmpOp {
    /// How it is written.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A string test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextOp {
    /// `starts_with`.
    StartsWith,
    /// `contains`.
    Contains,
}

impl TextOp {
    /// How it is written.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TextOp::StartsWith => "starts_with",
            TextOp::Contains => "contains",
        }
    }
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `not a`; the span covers the `not`.
    Not(Box<Expr>, Span),
    /// `trace.has(<name>)` with an optional `.where(<cond>)`; the span covers `<name>`.
    Has {
        /// The span name or pattern (`net.connect`, `net.*`, `*`).
        name: String,
        /// Where the name is.
        span: Span,
        /// The `.where(...)` condition.
        cond: Option<Box<Expr>>,
    },
    /// `a == b` and the other comparisons.
    Cmp(Operand, CmpOp, Operand),
    /// `a in [..]`; the span covers the list.
    In(Operand, Vec<(Lit, Span)>, Span),
    /// `a starts_with b`, `a contains b`.
    Text(Operand, TextOp, Operand),
    /// A bare operand used as a condition (a bool attribute or literal).
    Truthy(Operand),
    /// `trace.count(<name>).where(<cond>) <op> <n>`: the whole expression.
    Count {
        name: String,
        span: Span,
        cond: Option<Box<Expr>>,
        op: CmpOp,
        n: i64,
        /// Where `<op> <n>` is.
        limit_span: Span,
    },
}

impl Expr {
    /// The same expression with every span set to `0..0` (to compare structure).
    #[cfg(test)]
    pub(crate) fn without_spans(&self) -> Expr {
        let op = |o: &Operand| match o {
            Operand::Attr(a, _) => Operand::Attr(a.clone(), 0..0),
            Operand::Lit(l, _) => Operand::Lit(l.clone(), 0..0),
            Operand::AppAttr(k, _) => Operand::AppAttr(k.clone(), 0..0),
        };
        match self {
            Expr::Or(a, b) => Expr::Or(Box::new(a.without_spans()), Box::new(b.without_spans())),
            Expr::And(a, b) => Expr::And(Box::new(a.without_spans()), Box::new(b.without_spans())),
            Expr::Not(a, _) => Expr::Not(Box::new(a.without_spans()), 0..0),
            Expr::Has { name, cond, .. } => Expr::Has {
                name: name.clone(),
                span: 0..0,
                cond: cond.as_ref().map(|c| Box::new(c.without_spans())),
            },
            Expr::Cmp(a, o, b) => Expr::Cmp(op(a), *o, op(b)),
            Expr::In(a, list, _) => Expr::In(
                op(a),
                list.iter().map(|(l, _)| (l.clone(), 0..0)).collect(),
                0..0,
            ),
            Expr::Text(a, o, b) => Expr::Text(op(a), *o, op(b)),
            Expr::Truthy(a) => Expr::Truthy(op(a)),
            Expr::Count {
                name,
                cond,
                op: o,
                n,
                ..
            } => Expr::Count {
                name: name.clone(),
                span: 0..0,
                cond: cond.as_ref().map(|c| Box::new(c.without_spans())),
                op: *o,
                n: *n,
                limit_span: 0..0,
            },
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Null => f.write_str("null"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Int(i) => write!(f, "{i}"),
            Lit::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Attr(a, _) => f.write_str(a),
            Operand::Lit(l, _) => write!(f, "{l}"),
            Operand::AppAttr(k, _) => write!(f, "attr({})", Lit::Str(k.clone())),
        }
    }
}

/// Binding strength, loosest first, for minimal parentheses.
fn level(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 0,
        Expr::And(..) => 1,
        Expr::Not(..) => 2,
        _ => 3,
    }
}

fn child(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if level(e) < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

/// Prints the expression so that parsing the text gives the same tree.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Left-associative: the right child of `a or b` needs parentheses if it is an `or`.
            Expr::Or(a, b) => {
                child(f, a, 0)?;
                f.write_str(" or ")?;
                child(f, b, 1)
            }
            Expr::And(a, b) => {
                child(f, a, 1)?;
                f.write_str(" and ")?;
                child(f, b, 2)
            }
            Expr::Not(a, _) => {
                f.write_str("not ")?;
                child(f, a, 2)
            }
            Expr::Has { name, cond, .. } => {
                write!(f, "trace.has({name})")?;
                match cond {
                    Some(c) => write!(f, ".where({c})"),
                    None => Ok(()),
                }
            }
            Expr::Cmp(a, op, b) => write!(f, "{a} {} {b}", op.as_str()),
            Expr::In(a, list, _) => {
                write!(f, "{a} in [")?;
                for (i, (l, _)) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str("]")
            }
            Expr::Text(a, op, b) => write!(f, "{a} {} {b}", op.as_str()),
            Expr::Truthy(a) => write!(f, "{a}"),
            Expr::Count {
                name, cond, op, n, ..
            } => {
                write!(f, "trace.count({name})")?;
                if let Some(c) = cond {
                    write!(f, ".where({c})")?;
                }
                write!(f, " {} {n}", op.as_str())
            }
        }
    }
}
