//! Test and benchmark harness (`--features testkit`; never in the release binary): the
//! `seam workload` commands the integration tests and `cargo xtask bench` run.
pub(crate) mod bench;
pub(crate) mod history;
pub(crate) mod store;
pub(crate) mod workload;
