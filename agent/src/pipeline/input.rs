//! What the pipeline task receives. Producers (the ring-buffer reader, the cgroup watcher, the
//! rules reload, the ticker, the OTLP receiver) depend on this module, not on the pipeline.
use crate::{
    kernel::events::{DecodeError, KernelEvent},
    policy::RuleSet,
    receive::AppSpanIn,
};

/// A batch of ring-buffer records, decoded (or why one could not be).
pub(crate) type KernelBatch = Vec<Result<KernelEvent, DecodeError>>;

/// One input to the pipeline.
#[derive(Debug)]
pub(crate) enum Input {
    /// Decoded ring-buffer records.
    Kernel(KernelBatch),
    /// The kernel's loss counters changed: running totals per probe family (label, total).
    KernelLosses(Vec<(&'static str, u64)>),
    /// The kernel dropped events of flooding tenants over their budget: running totals per
    /// tenant name.
    TenantFloods(crate::kernel::probes::budget::FloodTotals),
    /// The cgroup tree may have changed: rescan it.
    CgroupsChanged,
    /// Periodic housekeeping: pairing windows, idle spans, aggregation windows, the clock.
    Tick,
    /// New, validated rules (SIGHUP or a change in the rules directory): swap and rescan.
    Reload(Box<RuleSet>),
    /// Spans applications sent over OTLP, to be joined to the kernel's view.
    App(Vec<AppSpanIn>),
}
