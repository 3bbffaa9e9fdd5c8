//! The per-tenant event budget as the agent sets and reads it: each watched cgroup's tenant gets
//! an index into the kernel's buckets, and the kernel's drops are summed back per tenant name.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use aya::maps::{MapData, PerCpuArray};
use seam_common::{BUDGET_TOTAL_INDEX, BudgetConfig, MAX_BUDGET_TENANTS};

/// Default events per second per tenant, CPU and class (ordinary or connect intent): far above
/// what a tenant's normal activity produces (ten thousand connections a second cost about five
/// events each, spread over CPUs) and well under what the agent drains (hundreds of thousands
/// of events a second), so only a flood meets it.
pub(crate) const DEFAULT_RATE: u32 = 20_000;
/// Default burst per tenant, CPU and class: a fraction of the 4 MiB ring (~32k small events),
/// so one tenant's burst on every CPU of a small node cannot fill it.
pub(crate) const DEFAULT_BURST: u32 = 4_096;
/// The default budget.
pub(crate) const DEFAULT: BudgetConfig = BudgetConfig::new(DEFAULT_RATE, DEFAULT_BURST);

/// Tenant names by kernel index, shared by the filter (which assigns) and the reader (which
/// reports). Index 0 stands for cgroups registered without a tenant of this agent's and for
/// tenants beyond [`MAX_BUDGET_TENANTS`].
#[derive(Clone, Default)]
pub(crate) struct TenantIndexes(Arc<Mutex<Indexes>>);

#[derive(Default)]
struct Indexes {
    by_name: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

/// The tenant index 0 is reported under.
pub(crate) const SHARED_SLOT_NAME: &str = "(other tenants)";

impl TenantIndexes {
    /// The index of `tenant`, assigned on first sight and never reused (a reload may rename
    /// or drop tenants; their counters stay theirs).
    pub(crate) fn index(&self, tenant: &str) -> u32 {
        let mut indexes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = indexes.by_name.get(tenant) {
            return *index;
        }
        let next = indexes.names.len() as u32 + 1;
        if next >= MAX_BUDGET_TENANTS {
            return 0;
        }
        let name: Arc<str> = Arc::from(tenant);
        indexes.names.push(name.clone());
        indexes.by_name.insert(name, next);
        next
    }

    /// Names by index, index 0 first.
    fn names(&self) -> Vec<Arc<str>> {
        let indexes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::once(Arc::from(SHARED_SLOT_NAME))
            .chain(indexes.names.iter().cloned())
            .collect()
    }
}

/// Running totals of events dropped over budget, per tenant (only tenants that lost some).
pub(crate) type FloodTotals = Vec<(Arc<str>, u64)>;

/// Reads the kernel's flood counters: the all-tenants total every time, the per-tenant ones
/// only when it moved since `last_total`.
pub(crate) struct FloodReader {
    pub floods: PerCpuArray<MapData, u64>,
    pub indexes: TenantIndexes,
    last_total: u64,
}

impl FloodReader {
    pub(crate) fn new(floods: PerCpuArray<MapData, u64>, indexes: TenantIndexes) -> Self {
        Self {
            floods,
            indexes,
            last_total: 0,
        }
    }

    fn sum(&self, index: u32) -> u64 {
        self.floods
            .get(&index, 0)
            .map(|values| values.iter().sum())
            .unwrap_or(0)
    }

    /// New totals when some tenant lost events since the last call.
    pub(crate) fn poll(&mut self) -> Option<FloodTotals> {
        let total = self.sum(BUDGET_TOTAL_INDEX);
        if total == self.last_total {
            return None;
        }
        self.last_total = total;
        let totals = per_tenant(self.indexes.names(), |index| self.sum(index));
        Some(totals)
    }
}

/// Nonzero totals by tenant name, from a per-index reader.
fn per_tenant(names: Vec<Arc<str>>, read: impl Fn(u32) -> u64) -> FloodTotals {
    names
        .into_iter()
        .enumerate()
        .filter_map(|(index, name)| {
            let total = read(index as u32);
            (total > 0).then_some((name, total))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_stable_and_start_at_one() {
        let indexes = TenantIndexes::default();
        assert_eq!(indexes.index("a"), 1);
        assert_eq!(indexes.index("b"), 2);
        assert_eq!(indexes.index("a"), 1);
        let names = indexes.names();
        assert_eq!(&*names[0], SHARED_SLOT_NAME);
        assert_eq!(&*names[1], "a");
        assert_eq!(&*names[2], "b");
    }

    #[test]
    fn tenants_beyond_the_kernel_table_share_slot_zero() {
        let indexes = TenantIndexes::default();
        for n in 1..MAX_BUDGET_TENANTS {
            assert_eq!(indexes.index(&format!("t{n}")), n);
        }
        assert_eq!(indexes.index("one-too-many"), 0);
        assert_eq!(indexes.names().len(), MAX_BUDGET_TENANTS as usize);
    }

    #[test]
    fn only_tenants_that_lost_events_are_reported() {
        let names: Vec<Arc<str>> = vec!["(other tenants)".into(), "a".into(), "b".into()];
        let totals = per_tenant(names, |index| if index == 1 { 7 } else { 0 });
        assert_eq!(totals, vec![(Arc::from("a"), 7)]);
    }

    #[test]
    fn the_default_budget_is_on_and_generous() {
        assert_eq!(DEFAULT.interval_ns, 50_000);
        assert_eq!(DEFAULT.burst_ns, 50_000 * 4_096);
        assert_eq!(BudgetConfig::new(0, 10), BudgetConfig::OFF);
    }
}
