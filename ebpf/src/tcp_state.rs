//! tp_btf `inet_sock_set_state(sk, oldstate, newstate)`: every TCP transition with the socket's
//! own cgroup, so the listener, the server's child socket (created in softirq) and the client are
//! each attributed to their tenant, whatever task the CPU happened to be running.
//!
//! One connection costs four events: the client's and the server's `ESTABLISHED` and each
//! socket's close. The caller of connect() needs no event of its own: `CLOSE -> SYN_SENT` runs in
//! connect() itself, so the caller is saved by socket cookie and travels in the header of the
//! client's `ESTABLISHED` (or of its close, when the connect failed). Every field is a direct
//! load through the tracepoint's BTF-typed socket.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_boot_ns, bpf_skc_to_tcp_sock},
    macros::{btf_tracepoint, map},
    maps::LruHashMap,
    programs::BtfTracePointContext,
};
use seam_common::{
    EventInfo, EventKind, LossSlot, MAX_CONNECTING, TcpCloseData, TcpStateData, tcp_state,
};

use crate::{
    direct::load,
    emit::{Context, emit_info, header},
    kernel::{SockTuple, offset, offsets_valid, sock_cgroup_id, sock_tuple},
    maps::is_tenant_cgroup,
};

/// Socket cookie -> the task that called connect() on it, until the socket is established or
/// closes (LRU: a full map forgets the oldest pending connect, whose event then names no task).
#[map]
static CALLERS: LruHashMap<u64, EventInfo> = LruHashMap::with_max_entries(MAX_CONNECTING, 0);

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn seam_inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let _ = try_inet_sock_set_state(&ctx);
    0
}

/// Whose identity an event's header carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The current task (listen(), in the caller's syscall).
    Task,
    /// The task saved when the socket started connecting.
    Caller,
    /// Nobody: softirq, or a close the socket's owner did not necessarily cause.
    Nobody,
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
    // socket closes.
    let who = match (old, new) {
        (tcp_state::CLOSE, tcp_state::SYN_SENT) => return connecting(sk),
        (tcp_state::CLOSE, tcp_state::LISTEN) => Who::Task,
        (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => Who::Caller,
        (tcp_state::LISTEN, tcp_state::CLOSE) | (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
            Who::Nobody
        }
        (tcp_state::CLOSE, _) | (tcp_state::LISTEN, _) => return Ok(0),
        (_, tcp_state::CLOSE) => return close(sk, old),
        _ => return Ok(0),
    };
    // SAFETY: `sk` is the tracepoint's BTF-typed socket.
    let cgroup_id = unsafe { sock_cgroup_id(sk as *const u8) };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    // SAFETY: as above.
    let tuple = unsafe { sock_tuple(sk as *const u8) }?;
    // SAFETY: `sk` is the tracepoint's BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    let info = identity(who, cookie, EventKind::TcpState, cgroup_id);
    emit_info(info, state(cookie, &tuple, old, new), LossSlot::TcpState);
    Ok(0)
}

/// `CLOSE -> SYN_SENT`, in the connect() of the calling task: remember who it is.
#[inline(always)]
fn connecting(sk: *mut c_void) -> Result<u32, i32> {
    // SAFETY: `sk` is the tracepoint's BTF-typed socket.
    let cgroup_id = unsafe { sock_cgroup_id(sk as *const u8) };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    // SAFETY: `sk` is the tracepoint's BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    let info = header(EventKind::TcpState, cgroup_id, Context::Task);
    let _ = CALLERS.insert(cookie, info, 0);
    Ok(0)
}

/// The header of an event about socket `cookie`: `who` acted.
#[inline(always)]
fn identity(who: Who, cookie: u64, kind: EventKind, cgroup_id: u64) -> EventInfo {
    match who {
        Who::Task => header(kind, cgroup_id, Context::Task),
        Who::Nobody => header(kind, cgroup_id, Context::Interrupt),
        Who::Caller => {
            // SAFETY: the value is copied out before the entry is removed.
            match unsafe { CALLERS.get(cookie) }.copied() {
                Some(mut info) => {
                    let _ = CALLERS.remove(cookie);
                    info.kind = kind as u32;
                    info.cgroup_id = cgroup_id;
                    // SAFETY: helper without arguments.
                    info.time_ns = unsafe { bpf_ktime_get_boot_ns() };
                    info
                }
                None => header(kind, cgroup_id, Context::Interrupt),
            }
        }
    }
}

#[inline(always)]
fn state(cookie: u64, tuple: &SockTuple, old: u8, new: u8) -> TcpStateData {
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
    }
}

/// A socket that was connecting or connected reached `TCP_CLOSE`: its tuple and what
/// `struct tcp_sock` counted (the counters are read once, here, instead of per packet). A
/// connect that never completed names its caller.
#[inline(always)]
fn close(sk: *mut c_void, old: u8) -> Result<u32, i32> {
    // SAFETY: `sk` is the tracepoint's BTF-typed socket.
    let cgroup_id = unsafe { sock_cgroup_id(sk as *const u8) };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    // SAFETY: as above.
    let tuple = unsafe { sock_tuple(sk as *const u8) }?;
    // SAFETY: `sk` is the tracepoint's BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    let who = if old == tcp_state::SYN_SENT {
        Who::Caller
    } else {
        Who::Nobody
    };
    let info = identity(who, cookie, EventKind::TcpClose, cgroup_id);
    // SAFETY: helper on the tracepoint's socket; returns a BTF-typed tcp_sock or null.
    let tp = unsafe { bpf_skc_to_tcp_sock(sk) } as *const u8;
    let counted = offset!(tcp_counters_valid) == 1 && !tp.is_null();
    let (mut bytes_received, mut bytes_sent, mut bytes_retrans, mut segs_in, mut segs_out) =
        (0, 0, 0, 0, 0);
    if counted {
        // SAFETY: `tp` is a non-null BTF-typed tcp_sock; offsets from this kernel's BTF.
        unsafe {
            bytes_received = load(tp, offset!(tcp_bytes_received));
            bytes_sent = load(tp, offset!(tcp_bytes_sent));
            bytes_retrans = load(tp, offset!(tcp_bytes_retrans));
            segs_in = load(tp, offset!(tcp_segs_in));
            segs_out = load(tp, offset!(tcp_segs_out));
        }
    }
    emit_info(
        info,
        TcpCloseData {
            state: state(cookie, &tuple, old, tcp_state::CLOSE),
            bytes_received,
            bytes_sent,
            bytes_retrans,
            segs_in,
            segs_out,
        },
        LossSlot::TcpState,
    );
    Ok(0)
}
