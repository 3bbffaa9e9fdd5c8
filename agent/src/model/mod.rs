//! What every stage speaks (a leaf: imports nothing else of the crate): the span model and its
//! catalogue of names and attributes, trace and span ids, the closed vocabularies, time, and
//! tenant-controlled text made safe to report.
pub(crate) mod app;
pub(crate) mod catalogue;
pub(crate) mod clock;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod handoff;
pub(crate) mod ids;
pub(crate) mod loss;
pub(crate) mod spans;
pub(crate) mod text;
pub(crate) mod vocab;
