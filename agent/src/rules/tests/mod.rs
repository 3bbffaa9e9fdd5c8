//! Unit tests of the rule language.
mod doc;
mod eval;
pub(crate) mod fixtures;
mod grammar;
mod props;
mod shipped;
