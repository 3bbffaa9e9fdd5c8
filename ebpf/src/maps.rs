//! Maps shared with the agent (names and value types come from seam-common).
use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use seam_common::{
    EVENTS_RING_BYTES, FlowKey, LOSS_SLOTS, LossSlot, MAX_FLOWS, MAX_TENANT_CGROUPS, TenantSlot,
};

/// Events to user space.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

/// Registered tenant cgroups: only these produce events.
#[map]
pub static TENANT_CGROUPS: HashMap<u64, TenantSlot> =
    HashMap::with_max_entries(MAX_TENANT_CGROUPS, 0);

/// Events that could not be reserved, per probe family and CPU.
#[map]
pub static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_SLOTS, 0);

/// UDP (socket, peer) pairs whose first packet was reported.
#[map]
pub static FLOWS: LruHashMap<FlowKey, u8> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// (socket, destination) pairs already reported by sendmsg4/6, so a busy UDP sender costs one
/// event per destination, not one per datagram.
#[map]
pub static SENDS: LruHashMap<FlowKey, u8> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// True when `cgroup_id` is a registered tenant cgroup.
#[inline(always)]
pub fn is_tenant_cgroup(cgroup_id: u64) -> bool {
    TENANT_CGROUPS.get_ptr(cgroup_id).is_some()
}

/// Counts one event lost in `slot` (per-CPU, so no atomics needed).
#[inline(always)]
pub fn count_loss(slot: LossSlot) {
    if let Some(counter) = LOSSES.get_ptr_mut(slot as u32) {
        // SAFETY: per-CPU slot owned by this CPU while the program runs.
        unsafe { *counter += 1 };
    }
}
