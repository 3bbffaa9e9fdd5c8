//! Unit tests of the rule language, on a stand-in for spans ([`fixtures::Fake`]): the language
//! knows spans only through `Attributes`.
mod doc;
mod eval;
mod fixtures;
mod grammar;
mod hostile;
mod props;
