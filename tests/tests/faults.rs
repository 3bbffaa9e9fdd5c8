//! Faults, each tested on the real kernel: the agent killed and restarted (with and without a
//! sealed history), cgroups churning, a tenant cgroup removed under an open connection, hung
//! webhook and OTLP receivers, the wall clock stepped, and rules rewritten under load. Each
//! test checks that crossings are still reported, to the right tenant, and that same-tenant
//! activity is not flagged.
#[path = "faults/churn.rs"]
mod churn;
#[path = "faults/clock.rs"]
mod clock;
#[path = "faults/common.rs"]
mod common;
#[path = "faults/evicted.rs"]
mod evicted;
#[path = "faults/hung.rs"]
mod hung;
#[path = "faults/killed_history.rs"]
mod killed_history;
#[path = "faults/reload.rs"]
mod reload;
#[path = "faults/removed.rs"]
mod removed;
#[path = "faults/restart.rs"]
mod restart;
