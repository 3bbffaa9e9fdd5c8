//! Filling the common header and handing events to the ring buffer (or counting the loss).
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};
use seam_common::{COMM_LEN, Event, EventInfo, EventKind, LossSlot};

/// Submit flags: 0 lets the kernel wake the reader only when it had caught up (the first record
/// after a drain), so an idle agent sleeps without a timer and a busy one is woken once per
/// batch, not per event.
pub const WAKEUP: u64 = 0;

use crate::{
    budget::within_budget,
    maps::{EVENTS, count_loss},
};

/// Whether the current task is the one the event is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Syscall or process context: pid, uid and comm describe the caller.
    Task,
    /// Possibly softirq: the current task is unrelated, so pid/uid/comm are zeroed.
    Interrupt,
}

/// The common header for an event of `kind` attributed to `cgroup_id`.
#[inline(always)]
pub fn header(kind: EventKind, cgroup_id: u64, context: Context) -> EventInfo {
    // SAFETY: helper without arguments.
    let time_ns = unsafe { bpf_ktime_get_boot_ns() };
    let mut info = EventInfo {
        kind: kind as u32,
        pid: 0,
        tid: 0,
        uid: 0,
        time_ns,
        cgroup_id,
        comm: [0; COMM_LEN],
    };
    if context == Context::Task {
        let pid_tgid = bpf_get_current_pid_tgid();
        info.pid = (pid_tgid >> 32) as u32;
        info.tid = pid_tgid as u32;
        info.uid = bpf_get_current_uid_gid() as u32;
        info.comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    }
    info
}

/// Sends `data` with its header, or counts it in `slot` when the ring buffer is full.
#[inline(always)]
pub fn emit<T: Copy + 'static>(
    kind: EventKind,
    cgroup_id: u64,
    context: Context,
    data: T,
    slot: LossSlot,
) {
    emit_info(header(kind, cgroup_id, context), data, slot);
}

/// Sends `data` after a header built by the caller (e.g. one saved when a task acted, for an
/// event raised later in softirq), or counts it in `slot`.
#[inline(always)]
pub fn emit_info<T: Copy + 'static>(info: EventInfo, data: T, slot: LossSlot) {
    if !within_budget(info.cgroup_id, info.kind) {
        return;
    }
    match EVENTS.reserve::<Event<T>>(0) {
        Some(mut entry) => {
            entry.write(Event { info, data });
            entry.submit(WAKEUP);
        }
        None => count_loss(slot),
    }
}
