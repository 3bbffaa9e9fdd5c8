//! Seam's agent. The folders follow the data flow, and imports only point down it:
//!
//! | stage | folder | holds |
//! |---|---|---|
//! | leaf | [`model`] | spans, ids, vocabularies, time, safe text |
//! | leaf | [`metrics`] | the metric registry and health |
//! | leaf | [`policy`] | tenants, rules and the rule language |
//! | 1 | [`kernel`] | probes, events, fingerprint, the kernel filter |
//! | 2 | [`attribution`] | cgroups, processes, pods from any runtime |
//! | 3 | [`assemble`] | spans from events |
//! | 4 | [`detect`] | rules on spans -> violations |
//! | 5 | [`output`] | feed, webhooks, OTLP export |
//! | 5 | [`evidence`] | sealed store, keys, history |
//! | around | [`serve`], [`receive`] | Seam's own listeners; OTLP in |
//! | around | [`pipeline`], [`daemon`] | one task owning every stage; wiring, reload, privileges |
//! | edge | [`chaos`], [`cli`] | the commands |
//! | top | `testkit` | `seam workload` for tests and benchmarks (`--features testkit` only) |
//!
//! Only the command line is public; everything else is crate-private, so the compiler finds
//! what nothing uses.
pub(crate) mod assemble;
pub(crate) mod attribution;
pub(crate) mod chaos;
pub mod cli;
pub(crate) mod daemon;
pub(crate) mod detect;
pub(crate) mod evidence;
pub(crate) mod kernel;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod output;
pub(crate) mod pipeline;
pub(crate) mod policy;
pub(crate) mod receive;
pub(crate) mod serve;
/// The test and benchmark harness (`seam workload`): `--features testkit` builds only.
#[cfg(feature = "testkit")]
pub mod testkit;
