//! Seam's agent. The modules follow the data flow:
//! probes -> events -> attribution -> spans -> rules/detect -> sinks.
//! Only the command line is public; everything else is crate-private, so the compiler finds
//! what nothing uses.
pub(crate) mod agent;
pub(crate) mod attribution;
pub(crate) mod chaos;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod detect;
pub(crate) mod events;
pub(crate) mod export;
pub(crate) mod fingerprint;
pub(crate) mod fleet;
pub(crate) mod history;
pub(crate) mod host;
pub(crate) mod input;
pub(crate) mod k8s;
pub(crate) mod keys;
pub(crate) mod listen;
pub(crate) mod metrics;
pub(crate) mod pipeline;
pub(crate) mod preflight;
pub(crate) mod privileges;
pub(crate) mod probes;
pub(crate) mod receive;
pub(crate) mod reload;
pub(crate) mod rules;
pub(crate) mod sinks;
pub(crate) mod spans;
pub(crate) mod stats;
pub(crate) mod store;
pub(crate) mod text;
pub(crate) mod vocab;
pub(crate) mod workload;
pub(crate) mod workload_file;
pub(crate) mod workload_landlock;
