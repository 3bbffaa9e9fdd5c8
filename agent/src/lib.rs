//! Seam's agent library. The folders follow the data flow:
//! probes -> events -> attribution -> correlation (spans) -> detect (rules) -> sinks.
pub mod agent;
pub mod attribution;
pub mod clock;
pub mod config;
pub mod correlation;
pub mod demo;
pub mod detect;
pub mod events;
pub mod fingerprint;
pub mod fleet;
pub mod metrics;
pub mod pipeline;
pub mod preflight;
pub mod probes;
pub mod reload;
pub mod rules;
pub mod sinks;
pub mod stats;
pub mod workload;
pub mod workload_file;
pub mod workload_landlock;
