//! The kernel filter: only watched cgroups produce events. Implemented over the probes' map
//! ([`super::probes::maps::KernelTenantFilter`]) and, for tests and the user-space benchmarks,
//! by `NoFilter` (unit tests and testkit builds only), so the pipeline holds no kernel object.

/// Why a cgroup could not be watched: its activity is not observed until it is.
#[derive(Debug, thiserror::Error)]
#[error("cannot add cgroup {cgroup_id} to the kernel's tenant filter: {source}")]
pub(crate) struct WatchError {
    pub cgroup_id: u64,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Which cgroups the probes report on.
pub(crate) trait TenantFilter: Send {
    /// Starts watching a cgroup of `tenant` (whose event budget it shares); an error says why
    /// it could not be added (e.g. the map is full): that cgroup's activity is not observed.
    fn watch(&mut self, cgroup_id: u64, tenant: &str) -> Result<(), WatchError>;
    /// Stops watching a cgroup (already gone is fine).
    fn unwatch(&mut self, cgroup_id: u64);
}

/// No kernel filter (the pipeline's tests and user-space benchmarks have no kernel).
#[cfg(any(test, feature = "testkit"))]
pub(crate) struct NoFilter;

#[cfg(any(test, feature = "testkit"))]
impl TenantFilter for NoFilter {
    fn watch(&mut self, _cgroup_id: u64, _tenant: &str) -> Result<(), WatchError> {
        Ok(())
    }

    fn unwatch(&mut self, _cgroup_id: u64) {}
}
