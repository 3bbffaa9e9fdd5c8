//! The rule language: `trace.has(<span>).where(<condition>)` over spans and their attributes.
//!
//! Text is parsed once ([`parse`], pest, `grammar.pest`), type-checked and compiled against the
//! span catalogue ([`catalogue`]) into a [`Matcher`]; evaluating a matcher on a [`SpanView`]
//! neither parses nor allocates. Errors carry byte spans into the expression, which the config
//! loader maps back to the rules file (`file:line:col`).

pub mod ast;
pub mod catalogue;
mod compile;
mod connection;
pub mod doc;
mod error;
mod eval;
mod local;
mod parse;
#[cfg(test)]
pub(crate) mod tests;

pub use self::{
    catalogue::{Attr, Family, SpanName, SpanSet, Type},
    compile::{CompileEnv, Matcher, span_pattern},
    error::ExprError,
    eval::{EvalContext, SpanView, Value, caller_attr},
    local::LocalAddrs,
    parse::parse,
};

/// Parses and compiles `text`; a syntax error stops there, otherwise every type error is
/// returned.
pub fn compile(text: &str, env: &CompileEnv<'_>) -> Result<Matcher, Vec<ExprError>> {
    let expr = parse(text).map_err(|e| vec![e])?;
    compile::compile(&expr, env)
}
