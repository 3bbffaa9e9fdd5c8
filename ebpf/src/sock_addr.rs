//! cgroup_sock_addr hooks: connect4/6 (connected UDP) and sendmsg4/6 (unconnected UDP).
//! They run in the caller's syscall context, so the current task and cgroup are the caller's.
//! A TCP connect() leaves at once: its caller travels with the socket's own `ESTABLISHED`
//! event (tcp_state.rs), which saves one event per connection.
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_current_cgroup_id, bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use seam_common::{AF_INET, AF_INET6, EventKind, FlowKey, IPPROTO_TCP, LossSlot, SockAddrData};

use crate::{
    emit::{Context, emit},
    maps::{SENDS, is_tenant_cgroup},
};

/// Return value that lets the syscall proceed: Seam observes, it never blocks.
const ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn seam_connect4(ctx: SockAddrContext) -> i32 {
    observe(&ctx, EventKind::Connect, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn seam_connect6(ctx: SockAddrContext) -> i32 {
    observe(&ctx, EventKind::Connect, AF_INET6);
    ALLOW
}

#[cgroup_sock_addr(sendmsg4)]
pub fn seam_sendmsg4(ctx: SockAddrContext) -> i32 {
    observe(&ctx, EventKind::SendMsg, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(sendmsg6)]
pub fn seam_sendmsg6(ctx: SockAddrContext) -> i32 {
    observe(&ctx, EventKind::SendMsg, AF_INET6);
    ALLOW
}

#[inline(always)]
fn observe(ctx: &SockAddrContext, kind: EventKind, family: u16) {
    let _ = try_observe(ctx, kind, family);
}

#[inline(always)]
fn try_observe(ctx: &SockAddrContext, kind: EventKind, family: u16) -> Result<u32, u32> {
    // SAFETY: ctx is the program's context; `protocol` is readable for every attach type.
    if unsafe { (*ctx.sock_addr).protocol } == u32::from(IPPROTO_TCP) {
        return Ok(0);
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    // SAFETY: ctx is the program's context; the fields read are valid for this attach type.
    let (cookie, daddr, dport, protocol) = unsafe {
        let sa = &*ctx.sock_addr;
        let mut daddr = [0u8; 16];
        if family == AF_INET {
            daddr[..4].copy_from_slice(&sa.user_ip4.to_ne_bytes());
        } else {
            let words = [
                sa.user_ip6[0],
                sa.user_ip6[1],
                sa.user_ip6[2],
                sa.user_ip6[3],
            ];
            for (i, w) in words.iter().enumerate() {
                daddr[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
        }
        let port = u16::from_be(sa.user_port as u16);
        let cookie = bpf_get_socket_cookie(ctx.as_ptr());
        (cookie, daddr, port, sa.protocol as u8)
    };
    if kind == EventKind::SendMsg {
        // One event per (socket, destination), not per datagram.
        let key = FlowKey {
            cookie,
            raddr: daddr,
            rport: dport,
            lport: 0,
            _pad: 0,
        };
        if SENDS.get_ptr(key).is_some() {
            return Ok(0);
        }
        let _ = SENDS.insert(key, 0, 0);
    }
    emit(
        kind,
        cgroup_id,
        Context::Task,
        SockAddrData {
            cookie,
            daddr,
            dport,
            family,
            protocol,
            _pad: [0; 3],
        },
        LossSlot::SockAddr,
    );
    Ok(0)
}
