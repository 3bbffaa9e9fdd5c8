//! tp_btf sched_process_exec / sched_process_exit: who the tenant's processes are (pid, comm,
//! uid, parent), so events raised in softirq context can still name a caller.
use aya_ebpf::{
    helpers::generated::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
    },
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use seam_common::{EventKind, LossSlot, ProcessData};

use crate::{
    emit::{Context, emit},
    kernel::{offsets_valid, task_exit_code, task_ppid},
    maps::is_tenant_cgroup,
};

#[btf_tracepoint(function = "sched_process_exec")]
pub fn seam_sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    if let Ok(cgroup_id) = try_process(EventKind::Exec) {
        // sched_process_exec(p, old_pid, bprm): the binary comes from bprm->file.
        let bprm: *const u8 = ctx.arg(2);
        if cgroup_id != 0 {
            crate::walk::report_exec(bprm, cgroup_id);
        }
    }
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn seam_sched_process_exit(_ctx: BtfTracePointContext) -> i32 {
    let _ = try_process(EventKind::Exit);
    0
}

/// Reports the current task's exec/exit; returns its cgroup id when it is a tenant's, else 0.
#[inline(always)]
fn try_process(kind: EventKind) -> Result<u64, u32> {
    // SAFETY: helpers without arguments.
    let (cgroup_id, pid_tgid, task) = unsafe {
        (
            bpf_get_current_cgroup_id(),
            bpf_get_current_pid_tgid(),
            bpf_get_current_task() as *const u8,
        )
    };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    // Threads exit too; only the group leader's exit ends a process.
    if kind == EventKind::Exit && (pid_tgid >> 32) as u32 != pid_tgid as u32 {
        return Ok(0);
    }
    let valid = offsets_valid();
    let data = ProcessData {
        ppid: if valid && kind == EventKind::Exec {
            task_ppid(task)
        } else {
            0
        },
        exit_code: if valid && kind == EventKind::Exit {
            task_exit_code(task)
        } else {
            0
        },
    };
    emit(kind, cgroup_id, Context::Task, data, LossSlot::Process);
    Ok(cgroup_id)
}

/// Fallback where tp_btf is missing: the classic tracepoint (needs tracefs). Same logic: the
/// current task is the one exec'ing.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn seam_tp_sched_process_exec(_ctx: TracePointContext) -> u32 {
    let _ = try_process(EventKind::Exec);
    0
}

/// Fallback for exit where tp_btf is missing.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn seam_tp_sched_process_exit(_ctx: TracePointContext) -> u32 {
    let _ = try_process(EventKind::Exit);
    0
}
