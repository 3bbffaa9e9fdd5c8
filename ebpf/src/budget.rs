//! The per-tenant event budget, checked right before an event takes ring-buffer space.
use aya_ebpf::{helpers::bpf_ktime_get_boot_ns, macros::map, maps::PerCpuArray};
use seam_common::{
    BUDGET_TOTAL_INDEX, BudgetConfig, MAX_BUDGET_TENANTS, TenantBudget, is_priority,
};

use crate::maps::TENANT_CGROUPS;

/// Written by the agent before load (`EbpfLoader::override_global`); all zero means no budget.
#[unsafe(no_mangle)]
pub static SEAM_BUDGET: BudgetConfig = BudgetConfig::OFF;

/// Each tenant's buckets, per CPU (no atomics, no cross-CPU cache line traffic).
#[map]
static TENANT_BUDGETS: PerCpuArray<TenantBudget> =
    PerCpuArray::with_max_entries(MAX_BUDGET_TENANTS, 0);

/// Events dropped over budget, per tenant index and CPU; the last index sums all tenants.
#[map]
static TENANT_FLOODS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_BUDGET_TENANTS + 1, 0);

/// True when the tenant of `cgroup_id` may send one more event of `kind`; otherwise the drop is
/// counted against that tenant. One hash lookup (the filter) and one per-CPU array slot; no
/// loops. A cgroup missing from the filter (unwatched meanwhile) is not budgeted.
#[inline(always)]
pub fn within_budget(cgroup_id: u64, kind: u32) -> bool {
    // SAFETY: reading plain statics; volatile so the loads from `.rodata` stay (the verifier
    // sees them as constants once the agent froze the values).
    let (interval_ns, burst_ns) = unsafe {
        (
            core::ptr::read_volatile(&SEAM_BUDGET.interval_ns),
            core::ptr::read_volatile(&SEAM_BUDGET.burst_ns),
        )
    };
    if interval_ns == 0 {
        return true;
    }
    // SAFETY: the value is copied out at once.
    let Some(tenant) = (unsafe { TENANT_CGROUPS.get(&cgroup_id) }).map(|s| s.tenant_index) else {
        return true;
    };
    let index = if tenant < MAX_BUDGET_TENANTS {
        tenant
    } else {
        0
    };
    let Some(budget) = TENANT_BUDGETS.get_ptr_mut(index) else {
        return true;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: per-CPU slot owned by this CPU while the program runs.
    let bucket = unsafe {
        if is_priority(kind) {
            &mut (*budget).priority
        } else {
            &mut (*budget).ordinary
        }
    };
    let booked = if *bucket > now { *bucket } else { now };
    if booked - now > burst_ns {
        count_flood(index);
        count_flood(BUDGET_TOTAL_INDEX);
        return false;
    }
    *bucket = booked + interval_ns;
    true
}

#[inline(always)]
fn count_flood(index: u32) {
    if let Some(counter) = TENANT_FLOODS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot owned by this CPU while the program runs.
        unsafe { *counter += 1 };
    }
}
