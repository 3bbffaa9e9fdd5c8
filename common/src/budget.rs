//! The per-tenant event budget: how many events a tenant may put in the ring buffer.
//!
//! Each tenant has two GCRA token buckets per CPU (a "theoretical arrival time" each): one for
//! events that open a channel to a peer (connect intent, a UDP destination or flow: where a
//! crossing shows first) and one for everything else. An event over its bucket is dropped in the
//! kernel and counted against its tenant in [`MAP_TENANT_FLOODS`], so a tenant that floods loses
//! its own events, reported as its flood, and never another tenant's ring space.

use crate::EventKind;

/// Global (`.rodata`, set by the agent before load) holding the [`BudgetConfig`].
pub const GLOBAL_BUDGET: &str = "SEAM_BUDGET";
/// Per-CPU array indexed by tenant index: [`TenantBudget`].
pub const MAP_TENANT_BUDGETS: &str = "TENANT_BUDGETS";
/// Per-CPU array of u64 indexed by tenant index: events dropped over budget. Index
/// [`BUDGET_TOTAL_INDEX`] holds the sum over all tenants, so the agent reads one counter per
/// drain and the per-tenant ones only when it moved.
pub const MAP_TENANT_FLOODS: &str = "TENANT_FLOODS";
/// Tenant indexes the kernel budgets apart. Index 0 is for cgroups registered without one
/// (e.g. by another writer of a pinned filter map); the agent gives its tenants 1.. and folds
/// any beyond the last index into it.
pub const MAX_BUDGET_TENANTS: u32 = 1024;
/// The all-tenants total in [`MAP_TENANT_FLOODS`].
pub const BUDGET_TOTAL_INDEX: u32 = MAX_BUDGET_TENANTS;

/// The budget, in GCRA terms: one event costs `interval_ns` of a bucket, which may run up to
/// `burst_ns` ahead of now. Zero `interval_ns` turns the budget off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetConfig {
    /// 1e9 / rate (events per second per tenant and CPU).
    pub interval_ns: u64,
    /// burst * interval_ns: how far ahead a bucket may be booked.
    pub burst_ns: u64,
}

impl BudgetConfig {
    /// No budget: every event goes to the ring buffer.
    pub const OFF: Self = Self {
        interval_ns: 0,
        burst_ns: 0,
    };

    /// `rate` events per second with bursts of `burst` (per tenant, per CPU, per class);
    /// a zero rate is [`Self::OFF`].
    pub const fn new(rate: u32, burst: u32) -> Self {
        if rate == 0 {
            return Self::OFF;
        }
        let interval_ns = 1_000_000_000 / rate as u64;
        let interval_ns = if interval_ns == 0 { 1 } else { interval_ns };
        Self {
            interval_ns,
            burst_ns: interval_ns * burst as u64,
        }
    }
}

/// A tenant's two buckets on one CPU (theoretical arrival times, boot-clock ns).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TenantBudget {
    pub ordinary: u64,
    pub priority: u64,
}

/// Events that draw on the priority bucket: a tenant flooding file syscalls or execs cannot
/// starve its own connect intent or new UDP destinations, where crossings show first.
pub const fn is_priority(kind: u32) -> bool {
    kind == EventKind::Connect as u32
        || kind == EventKind::SendMsg as u32
        || kind == EventKind::FlowStart as u32
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] u64 fields; every bit pattern is valid.
    unsafe impl aya::Pod for BudgetConfig {}
    unsafe impl aya::Pod for TenantBudget {}
}
