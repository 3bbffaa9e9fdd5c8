//! The rule language: `trace.has(<span>).where(<condition>)` over spans and their attributes.
//!
//! Text is parsed once ([`parse`], pest, `grammar.pest`), type-checked and compiled against the
//! span catalogue ([`crate::model::catalogue`]) into a [`Matcher`]; evaluating a matcher on anything that
//! implements [`Attributes`] neither parses, allocates nor looks anything up. Errors carry byte
//! spans into the expression, which the config loader maps back to the rules file
//! (`file:line:col`). The language depends on nothing in the crate but [`crate::model::vocab`]: spans
//! implement [`Attributes`], and what a violation is stays with detection.

pub(crate) mod ast;
mod compile;
pub(crate) mod doc;
mod error;
mod eval;
mod parse;
#[cfg(test)]
mod tests;

pub(crate) use self::{
    compile::{CompileEnv, CountLimit, Matcher},
    error::ExprError,
    eval::{Attributes, Value},
    parse::parse,
};
pub(crate) use crate::model::catalogue::{Attr, Family, SpanName, Type};

/// Parses and compiles `text`; a syntax error stops there, otherwise every type error is
/// returned.
pub(crate) fn compile(text: &str, env: &CompileEnv<'_>) -> Result<Matcher, Vec<ExprError>> {
    let expr = parse(text).map_err(|e| vec![e])?;
    compile::compile(&expr, env)
}
