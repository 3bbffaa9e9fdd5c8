//! Text -> [`Expr`], with pest and the grammar in `grammar.pest`.

use pest::{
    Parser as _,
    error::{ErrorVariant, InputLocation},
    iterators::Pair,
};

use super::{
    ast::{CmpOp, Expr, Lit, Operand, Span, TextOp},
    error::ExprError,
};

#[derive(pest_derive::Parser)]
#[grammar = "policy/lang/grammar.pest"]
struct Grammar;

/// Longest expression accepted, in bytes.
const MAX_BYTES: usize = 16 * 1024;
/// Deepest nesting of `(` and `[`.
const MAX_NESTING: usize = 32;
/// Most `not`s (each nests the parser one level deeper).
const MAX_NOTS: usize = 32;
/// Most `and`/`or` operators (each adds a level to the tree the later passes recurse over).
const MAX_TERMS: usize = 512;

/// Refuses expressions beyond the limits before the recursive parser sees them: hostile or
/// generated text must not overflow the stack.
fn check_size(text: &str) -> Result<(), ExprError> {
    let too = |at: usize, what, found, limit| {
        Err(ExprError::TooComplex {
            span: at..text.len().min(at + 1),
            what,
            found,
            limit,
        })
    };
    if text.len() > MAX_BYTES {
        return too(MAX_BYTES, "bytes", text.len(), MAX_BYTES);
    }
    let (mut depth, mut nots, mut terms) = (0usize, 0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    let bytes = text.as_bytes();
    let word_at = |i: usize, word: &[u8]| {
        bytes[i..].starts_with(word)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'_')
            && bytes
                .get(i + word.len())
                .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
    };
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return too(i, "levels of nesting", depth, MAX_NESTING);
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            b'n' if word_at(i, b"not") => {
                nots += 1;
                if nots > MAX_NOTS {
                    return too(i, "`not`s", nots, MAX_NOTS);
                }
            }
            b'a' | b'o' if word_at(i, b"and") || word_at(i, b"or") => {
                terms += 1;
                if terms > MAX_TERMS {
                    return too(i, "and/or terms", terms, MAX_TERMS);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses a rule expression.
pub(crate) fn parse(text: &str) -> Result<Expr, ExprError> {
    check_size(text)?;
    pest::set_error_detail(true);
    let mut pairs = Grammar::parse(Rule::rule_expr, text).map_err(|e| syntax_error(text, &e))?;
    let top = pairs.next().and_then(|p| p.into_inner().next());
    match top {
        Some(expr) => build_expr(expr),
        None => Err(ExprError::Syntax {
            span: 0..text.len(),
            expected: "an expression".to_owned(),
            found: "nothing".to_owned(),
        }),
    }
}

fn span(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    s.start()..s.end()
}

/// A pair the grammar guarantees is there; an internal error (never a panic) otherwise.
fn missing(at: Span) -> ExprError {
    ExprError::Syntax {
        span: at,
        expected: "a complete expression".to_owned(),
        found: "an incomplete one".to_owned(),
    }
}

fn build_expr(pair: Pair<'_, Rule>) -> Result<Expr, ExprError> {
    let at = span(&pair);
    match pair.as_rule() {
        Rule::expr | Rule::conj => {
            let is_or = pair.as_rule() == Rule::expr;
            let mut inner = pair
                .into_inner()
                .filter(|p| !matches!(p.as_rule(), Rule::or_op | Rule::and_op));
            let first = inner.next().ok_or_else(|| missing(at))?;
            let mut acc = build_expr(first)?;
            for next in inner {
                let rhs = Box::new(build_expr(next)?);
                acc = if is_or {
                    Expr::Or(Box::new(acc), rhs)
                } else {
                    Expr::And(Box::new(acc), rhs)
                };
            }
            Ok(acc)
        }
        Rule::negation => {
            let mut nots = Vec::new();
            let mut atom = None;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::not_op => nots.push(span(&p)),
                    _ => atom = Some(p),
                }
            }
            let mut acc = build_expr(atom.ok_or_else(|| missing(at))?)?;
            for not in nots.into_iter().rev() {
                acc = Expr::Not(Box::new(acc), not);
            }
            Ok(acc)
        }
        Rule::atom => build_expr(pair.into_inner().next().ok_or_else(|| missing(at))?),
        Rule::has => build_has(pair),
        Rule::test => build_test(pair),
        Rule::count => build_count(pair),
        _ => Err(missing(at)),
    }
}

/// `trace.has(<span>)`, with its `.where(...)` condition.
fn build_has(pair: Pair<'_, Rule>) -> Result<Expr, ExprError> {
    let at = span(&pair);
    let mut name = None;
    let mut cond = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::span_name => name = Some((p.as_str().to_owned(), span(&p))),
            Rule::expr => cond = Some(Box::new(build_expr(p)?)),
            _ => {}
        }
    }
    let (name, span) = name.ok_or_else(|| missing(at))?;
    Ok(Expr::Has { name, span, cond })
}

/// `trace.count(<span>).where(...) > N`: the limit's span runs from the operator to the end.
fn build_count(pair: Pair<'_, Rule>) -> Result<Expr, ExprError> {
    let at = span(&pair);
    let (mut name, mut cond, mut op, mut n) = (None, None, None, None);
    let mut limit_start = at.end;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::span_name => name = Some((p.as_str().to_owned(), span(&p))),
            Rule::expr => cond = Some(Box::new(build_expr(p)?)),
            Rule::cmp_op => {
                limit_start = span(&p).start;
                op = Some(cmp_op(p.as_str()));
            }
            Rule::int_lit => match build_literal(p)? {
                Lit::Int(i) => n = Some(i),
                _ => return Err(missing(at)),
            },
            _ => {}
        }
    }
    let (name, span) = name.ok_or_else(|| missing(at.clone()))?;
    Ok(Expr::Count {
        name,
        span,
        cond,
        op: op.ok_or_else(|| missing(at.clone()))?,
        n: n.ok_or_else(|| missing(at.clone()))?,
        limit_span: limit_start..at.end,
    })
}

fn build_test(pair: Pair<'_, Rule>) -> Result<Expr, ExprError> {
    let at = span(&pair);
    let mut inner = pair.into_inner();
    let left = build_operand(inner.next().ok_or_else(|| missing(at.clone()))?)?;
    let Some(op) = inner.next() else {
        return Ok(Expr::Truthy(left));
    };
    let right = inner.next().ok_or_else(|| missing(at.clone()))?;
    match op.as_rule() {
        Rule::cmp_op => Ok(Expr::Cmp(left, cmp_op(op.as_str()), build_operand(right)?)),
        Rule::in_op => {
            let list_span = span(&right);
            let items = right
                .into_inner()
                .map(|p| {
                    let s = span(&p);
                    build_literal(p).map(|l| (l, s))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Expr::In(left, items, list_span))
        }
        Rule::starts_op => Ok(Expr::Text(left, TextOp::StartsWith, build_operand(right)?)),
        _ => Ok(Expr::Text(left, TextOp::Contains, build_operand(right)?)),
    }
}

fn cmp_op(text: &str) -> CmpOp {
    match text {
        "==" => CmpOp::Eq,
        "!=" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        "<=" => CmpOp::Le,
        ">" => CmpOp::Gt,
        _ => CmpOp::Ge,
    }
}

fn build_operand(pair: Pair<'_, Rule>) -> Result<Operand, ExprError> {
    let s = span(&pair);
    if pair.as_rule() == Rule::path {
        return Ok(Operand::Attr(pair.as_str().to_owned(), s));
    }
    if pair.as_rule() == Rule::app_attr {
        let key = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .ok_or_else(|| missing(s.clone()))?;
        let Lit::Str(key) = build_literal(key)? else {
            return Err(missing(s));
        };
        return Ok(Operand::AppAttr(key, s));
    }
    Ok(Operand::Lit(build_literal(pair)?, s))
}

fn build_literal(pair: Pair<'_, Rule>) -> Result<Lit, ExprError> {
    let s = span(&pair);
    match pair.as_rule() {
        Rule::null_lit => Ok(Lit::Null),
        Rule::bool_lit => Ok(Lit::Bool(pair.as_str() == "true")),
        Rule::int_lit => pair
            .as_str()
            .parse()
            .map(Lit::Int)
            .map_err(|_| ExprError::IntRange {
                span: s,
                text: pair.as_str().to_owned(),
            }),
        Rule::string => {
            let inner = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
            Ok(Lit::Str(unescape(inner)))
        }
        _ => Err(missing(s)),
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Human name of what a grammar rule stands for, for "expected ..." messages.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::expr | Rule::conj | Rule::negation | Rule::atom | Rule::test => "a condition",
        Rule::has | Rule::trace_kw => "`trace.has(...)`",
        Rule::count => "`trace.count(...)`",
        Rule::has_kw => "`has`",
        Rule::count_kw => "`count`",
        Rule::app_attr | Rule::attr_kw => "`attr(\"...\")`",
        Rule::where_kw => "`where`",
        Rule::span_name => "a span name",
        Rule::cmp_op => "a comparison (==, !=, <, <=, >, >=)",
        Rule::or_op => "`or`",
        Rule::and_op => "`and`",
        Rule::not_op => "`not`",
        Rule::in_op => "`in`",
        Rule::starts_op => "`starts_with`",
        Rule::contains_op => "`contains`",
        Rule::path => "an attribute",
        Rule::null_lit | Rule::bool_lit | Rule::int_lit | Rule::string => "a value",
        Rule::list => "a list `[...]`",
        Rule::EOI => "the end of the expression",
        _ => return None,
    })
}

fn syntax_error(text: &str, err: &pest::error::Error<Rule>) -> ExprError {
    let mut pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let attempts = err.parse_attempts();
    // The furthest point any alternative reached, literal tokens included.
    if let Some(a) = &attempts
        && a.max_position > pos
        && text.is_char_boundary(a.max_position)
    {
        pos = a.max_position;
    }
    let mut expected: Vec<String> = Vec::new();
    if let ErrorVariant::ParsingError { positives, .. } = &err.variant
        && attempts.as_ref().is_none_or(|a| a.max_position == pos)
    {
        expected.extend(
            positives
                .iter()
                .filter_map(|r| describe(*r))
                .map(str::to_owned),
        );
    }
    if let Some(attempts) = attempts {
        for token in attempts.expected_tokens().iter().map(ToString::to_string) {
            // Punctuation only: words and operators are parts of the rules described above.
            if ["(", ")", "[", "]", ",", "."].contains(&token.as_str()) {
                expected.push(format!("`{token}`"));
            }
        }
    }
    expected.sort();
    expected.dedup();
    let expected = match expected.len() {
        0 => "valid syntax".to_owned(),
        1 => expected.remove(0),
        n => {
            let last = expected.remove(n - 1);
            format!("{} or {last}", expected.join(", "))
        }
    };
    let rest = &text[pos.min(text.len())..];
    let token_len = token_at(rest);
    let found = if rest.is_empty() {
        "the end of the expression".to_owned()
    } else {
        format!("`{}`", &rest[..token_len])
    };
    ExprError::Syntax {
        span: pos..pos + token_len,
        expected,
        found,
    }
}

/// Length of the token at the start of `rest`: a word, or one other character.
fn token_at(rest: &str) -> usize {
    let word: usize = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .map(char::len_utf8)
        .sum();
    if word > 0 {
        return word;
    }
    let ops = ["==", "!=", "<=", ">="];
    if ops.iter().any(|o| rest.starts_with(o)) {
        return 2;
    }
    rest.chars().next().map_or(0, char::len_utf8)
}
