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
    let old = ctx.arg::<i32>(1) as u8;
    let new = ctx.arg::<i32>(2) as u8;
    // Only the transitions the agent correlates on leave the kernel: a listener appears or goes,
    // a client or a server socket becomes established. The caller of connect() comes from the
    // cgroup/connect hooks (joined by cookie), so a connection costs three events, not ten.
    let context = match (old, new) {
        (tcp_state::CLOSE, tcp_state::LISTEN) => Context::Task,
        (tcp_state::LISTEN, tcp_state::CLOSE)
        | (tcp_state::SYN_SENT, tcp_state::ESTABLISHED)
        | (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => Context::Interrupt,
        _ => return Ok(0),
    };
    let cgroup_id = sock_cgroup_id(sk as *const u8)?;
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    let tuple = sock_tuple(sk as *const u8)?;
    // SAFETY: `sk` is the tracepoint's BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
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
