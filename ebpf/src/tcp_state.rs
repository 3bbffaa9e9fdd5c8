//! tp_btf `inet_sock_set_state(sk, oldstate, newstate)`: every TCP transition with the socket's
//! own cgroup, so the listener, the server's child socket (created in softirq) and the client are
//! each attributed to their tenant, whatever task the CPU happened to be running.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::bpf_get_socket_cookie, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use seam_common::{EventKind, LossSlot, TcpStateData, tcp_state};

use crate::{
    emit::{Context, emit},
    kernel::{offsets_valid, sock_cgroup_id, sock_tuple},
    maps::is_tenant_cgroup,
};

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn seam_inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let _ = try_inet_sock_set_state(&ctx);
    0
}

#[inline(always)]
fn try_inet_sock_set_state(ctx: &BtfTracePointContext) -> Result<u32, i32> {
    if !offsets_valid() {
        return Ok(0);
    }
    let sk: *mut c_void = ctx.arg(0);
    let oldstate: i32 = ctx.arg(1);
    let newstate: i32 = ctx.arg(2);
    let cgroup_id = sock_cgroup_id(sk as *const u8)?;
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    let tuple = sock_tuple(sk as *const u8)?;
    // SAFETY: `sk` is the tracepoint's BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    // Only connect() and listen() move a socket out of CLOSE from the owning task's own
    // syscall; every other transition may run in softirq on behalf of nobody in particular.
    let old = oldstate as u8;
    let new = newstate as u8;
    let context = if old == tcp_state::CLOSE
        && (new == tcp_state::SYN_SENT || new == tcp_state::LISTEN)
    {
        Context::Task
    } else {
        Context::Interrupt
    };
    emit(
        EventKind::TcpState,
        cgroup_id,
        context,
        TcpStateData {
            cookie,
            netns: tuple.netns,
            saddr: tuple.saddr,
            daddr: tuple.daddr,
            sport: tuple.sport,
            dport: tuple.dport,
            family: tuple.family,
            oldstate: old,
            newstate: new,
        },
        LossSlot::TcpState,
    );
    Ok(0)
}
