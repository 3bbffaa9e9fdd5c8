//! Names and value types of the maps the agent and the probes share.

/// Ring buffer carrying [`crate::Event`]s to user space.
pub const MAP_EVENTS: &str = "EVENTS";
/// Hash: cgroup id (u64) -> [`TenantSlot`]. Only cgroups in here produce events.
pub const MAP_TENANT_CGROUPS: &str = "TENANT_CGROUPS";
/// Per-CPU array indexed by [`LossSlot`]: events a probe could not reserve in the ring buffer.
pub const MAP_LOSSES: &str = "LOSSES";

/// Size of the ring buffer in bytes (power of two, multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 1 << 22;
/// Hash: pid_tgid (u64) -> a tenant task's file syscall in flight (args kept for the exit).
pub const MAP_FILE_CALLS: &str = "FILE_CALLS";
/// Capacity of [`MAP_FILE_CALLS`] (one per thread in a file syscall at a time).
pub const MAX_FILE_CALLS: u32 = 16_384;

/// Capacity of [`MAP_TENANT_CGROUPS`].
pub const MAX_TENANT_CGROUPS: u32 = 16_384;
/// Capacity of the probes' `FLOWS` and `SENDS` sets of UDP (socket, peer) pairs already
/// reported (LRU: the least recently seen pairs are forgotten first).
pub const MAX_FLOWS: u32 = 65_536;

/// Capacity of the probes' `CALLERS` map: TCP sockets between connect() and established (or
/// closed), each with the task that called connect().
pub const MAX_CONNECTING: u32 = 16_384;

/// Value of [`MAP_TENANT_CGROUPS`]: which tenant a cgroup belongs to (an index into the agent's
/// tenant table; the kernel only checks presence).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TenantSlot {
    pub tenant_index: u32,
    pub _pad: u32,
}

/// Slots of [`MAP_LOSSES`]: one per probe family that reserves ring-buffer space.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossSlot {
    Process = 0,
    SockAddr = 1,
    TcpState = 2,
    Flow = 3,
    File = 4,
}

/// Number of [`LossSlot`]s.
pub const LOSS_SLOTS: u32 = 5;

impl LossSlot {
    /// All slots with a stable label, for reports and metrics.
    pub const ALL: [(LossSlot, &'static str); LOSS_SLOTS as usize] = [
        (LossSlot::Process, "process"),
        (LossSlot::SockAddr, "sock_addr"),
        (LossSlot::TcpState, "tcp_state"),
        (LossSlot::Flow, "flow"),
        (LossSlot::File, "file"),
    ];
}

/// A UDP socket talking to one peer (the key of the probes' `FLOWS` and `SENDS` sets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub cookie: u64,
    /// Peer address (network byte order; IPv4 in the first 4 bytes).
    pub raddr: [u8; 16],
    /// Peer port, host order.
    pub rport: u16,
    /// Local port, host order.
    pub lport: u16,
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] data without pointers; every bit pattern is valid.
    unsafe impl aya::Pod for TenantSlot {}
    unsafe impl aya::Pod for FlowKey {}
}
