//! tp_btf `inet_sock_set_state(sk, oldstate, newstate)`: every TCP transition with the socket's
//! own cgroup, so the listener, the server's child socket (created in softirq) and the client are
//! each attributed to their tenant, whatever task the CPU happened to be running.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::bpf_get_socket_cookie, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use seam_common::{EventKind, LossSlot, TcpCloseData, TcpStateData, tcp_state};

use crate::{
    emit::{Context, emit},
    kernel::{offset, offsets_valid, read, sock_cgroup_id, sock_tuple},
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
    // Only the transitions the agent builds spans from leave the kernel: a listener appears or
    // goes, a client or a server socket becomes established, an established (or connecting)
    // socket closes. The caller of connect() comes from the cgroup/connect hooks (joined by
    // cookie), so a connection costs five events, not ten.
    let context = match (old, new) {
        (tcp_state::CLOSE, tcp_state::LISTEN) => Context::Task,
        (tcp_state::LISTEN, tcp_state::CLOSE)
        | (tcp_state::SYN_SENT, tcp_state::ESTABLISHED)
        | (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => Context::Interrupt,
        (tcp_state::CLOSE, _) | (tcp_state::LISTEN, _) => return Ok(0),
        (_, tcp_state::CLOSE) => return close(sk as *const u8, old),
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
            _pad: [0; 4],
        },
        LossSlot::TcpState,
    );
    Ok(0)
}

/// A socket that was connecting or connected reached `TCP_CLOSE`: its tuple and what
/// `struct tcp_sock` counted (the counters are read once, here, instead of per packet).
#[inline(always)]
fn close(sk: *const u8, old: u8) -> Result<u32, i32> {
    let cgroup_id = sock_cgroup_id(sk)?;
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    let tuple = sock_tuple(sk)?;
    // SAFETY: `sk` is the tracepoint's BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk as *mut c_void) };
    let counted = offset!(tcp_counters_valid) == 1;
    let counter = |field: usize| -> u64 {
        if counted {
            read::<u64>(sk, field).unwrap_or(0)
        } else {
            0
        }
    };
    let segments = |field: usize| -> u32 {
        if counted {
            read::<u32>(sk, field).unwrap_or(0)
        } else {
            0
        }
    };
    emit(
        EventKind::TcpClose,
        cgroup_id,
        Context::Interrupt,
        TcpCloseData {
            state: TcpStateData {
                cookie,
                netns: tuple.netns,
                saddr: tuple.saddr,
                daddr: tuple.daddr,
                sport: tuple.sport,
                dport: tuple.dport,
                family: tuple.family,
                oldstate: old,
                newstate: tcp_state::CLOSE,
                _pad: [0; 4],
            },
            bytes_received: counter(offset!(tcp_bytes_received)),
            bytes_sent: counter(offset!(tcp_bytes_sent)),
            bytes_retrans: counter(offset!(tcp_bytes_retrans)),
            segs_in: segments(offset!(tcp_segs_in)),
            segs_out: segments(offset!(tcp_segs_out)),
        },
        LossSlot::TcpState,
    );
    Ok(0)
}
