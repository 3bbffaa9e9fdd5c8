//! Errors in rule expressions, each with the byte span it is about.

use super::ast::Span;

/// Why an expression was rejected. `span` is a byte range in the expression text; the config
/// loader maps it back to the rules file's line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExprError {
    /// The text does not follow the grammar.
    #[error("syntax error: expected {expected}, found {found}")]
    Syntax {
        /// Where parsing stopped.
        span: Span,
        /// What the parser would have accepted there.
        expected: String,
        /// What it found instead.
        found: String,
    },
    /// An attribute name the catalogue does not define.
    #[error("unknown attribute `{name}`")]
    UnknownAttr {
        /// Where the name is.
        span: Span,
        /// The name.
        name: String,
        /// The closest catalogue names.
        suggestions: Vec<&'static str>,
    },
    /// A span name the catalogue does not define.
    #[error("unknown span name `{name}`")]
    UnknownSpan {
        /// Where the name is.
        span: Span,
        /// The name.
        name: String,
    },
    /// The attribute exists but not on every span `trace.has` selects.
    #[error("attribute `{attr}` is not defined on `{span_name}` spans")]
    NotOnSpan {
        /// Where the attribute is.
        span: Span,
        /// The attribute.
        attr: &'static str,
        /// A selected span without it.
        span_name: &'static str,
    },
    /// An attribute used outside `.where(...)`.
    #[error("attribute `{name}` used outside `trace.has(...).where(...)`")]
    AttrOutsideWhere {
        /// Where the attribute is.
        span: Span,
        /// The attribute.
        name: String,
    },
    /// `trace.has` nested inside a `.where(...)` condition.
    #[error("`trace.has` inside `.where(...)`")]
    NestedHas {
        /// Where the nested span name is.
        span: Span,
    },
    /// Operands whose types cannot be compared with this operator.
    #[error("cannot apply `{op}` to {left} and {right}")]
    Type {
        /// The whole comparison.
        span: Span,
        /// The operator.
        op: &'static str,
        /// The left operand's type.
        left: String,
        /// The right operand's type.
        right: String,
    },
    /// A literal that is not a valid value of the attribute it is compared with.
    #[error("{literal} is not a valid {attr}: {why}")]
    BadValue {
        /// Where the literal is.
        span: Span,
        /// The attribute.
        attr: &'static str,
        /// The literal as written.
        literal: String,
        /// What is wrong.
        why: String,
    },
    /// A condition that is not a boolean (e.g. a bare string attribute).
    #[error("`{text}` is not a condition")]
    NotBool {
        /// Where it is.
        span: Span,
        /// The operand as written.
        text: String,
    },
    /// `trace.count(...)` inside a larger expression, or compared with `<`, `==`, ...
    #[error("`trace.count` must be the whole expression, compared with `>` or `>=`")]
    Count {
        /// Where the offending part is.
        span: Span,
    },
    /// Longer or more deeply nested than a rule needs (and than the parser safely handles).
    #[error("the expression has {found} {what}; at most {limit} are allowed")]
    TooComplex {
        /// Where the limit was crossed.
        span: Span,
        /// What was counted: "bytes", "levels of nesting", "`not`s", "and/or terms".
        what: &'static str,
        /// How many there are (at least).
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// A whole-number literal outside the 64-bit range.
    #[error("integer {text} is out of range")]
    IntRange {
        /// Where it is.
        span: Span,
        /// The literal.
        text: String,
    },
}

impl ExprError {
    /// The byte range in the expression the error is about.
    pub(crate) fn span(&self) -> Span {
        match self {
            ExprError::Syntax { span, .. }
            | ExprError::UnknownAttr { span, .. }
            | ExprError::UnknownSpan { span, .. }
            | ExprError::NotOnSpan { span, .. }
            | ExprError::AttrOutsideWhere { span, .. }
            | ExprError::NestedHas { span }
            | ExprError::Type { span, .. }
            | ExprError::BadValue { span, .. }
            | ExprError::NotBool { span, .. }
            | ExprError::Count { span }
            | ExprError::TooComplex { span, .. }
            | ExprError::IntRange { span, .. } => span.clone(),
        }
    }

    /// What to do about it.
    pub(crate) fn hint(&self) -> String {
        match self {
            ExprError::Syntax { .. } => {
                "expected `trace.has(<span>).where(<condition>)`; docs/rules.md shows the grammar"
                    .to_owned()
            }
            ExprError::UnknownAttr { suggestions, .. } if !suggestions.is_empty() => format!(
                "did you mean {}? docs/span-attributes.md lists every attribute",
                suggestions
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            ExprError::UnknownAttr { .. } => {
                "docs/span-attributes.md lists every attribute".to_owned()
            }
            ExprError::UnknownSpan { .. } => format!(
                "expected one of {}, or a family pattern `net.*`, `file.*`, `*`",
                super::SpanName::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ExprError::NotOnSpan { .. } => {
                "narrow `trace.has(...)` to spans that carry it; docs/span-attributes.md".to_owned()
            }
            ExprError::AttrOutsideWhere { .. } => {
                "conditions go inside `trace.has(<span>).where(...)`".to_owned()
            }
            ExprError::NestedHas { .. } => {
                "combine `trace.has(...)` terms with and/or/not at the top level".to_owned()
            }
            ExprError::Type { .. } => {
                "compare values of the same type; `<`, `<=`, `>`, `>=` need ints".to_owned()
            }
            ExprError::BadValue { .. } => "use a value the attribute can take".to_owned(),
            ExprError::NotBool { .. } => {
                "compare it: `x == ...`, `x != null`, `x in [...]`".to_owned()
            }
            ExprError::IntRange { .. } => "use a number between -2^63 and 2^63-1".to_owned(),
            ExprError::TooComplex { .. } => {
                "split it into several rules; a rule is matched if any of them is".to_owned()
            }
            ExprError::Count { .. } => "write `trace.count(<span>).where(<condition>) > N` on \
                 its own, with the rule's `window` (and `group_by`); docs/rules.md"
                .to_owned(),
        }
    }
}
