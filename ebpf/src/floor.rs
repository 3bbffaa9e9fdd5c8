//! Empty programs, one per program type Seam attaches: the benchmark's floor (`cargo xtask
//! bench` attaches them on the hooks Seam has live, so what any design on those hooks costs is
//! measured in the same run). An object of its own (`seam-floor`, no maps), embedded only by
//! the agent's testkit builds: the production object (`seam`, src/main.rs) carries none of it.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{btf_tracepoint, cgroup_skb, cgroup_sock, cgroup_sock_addr, tracepoint},
    programs::{
        BtfTracePointContext, SkBuffContext, SockAddrContext, SockContext, TracePointContext,
    },
};

#[cgroup_sock_addr(connect4)]
pub fn seam_floor_connect4(_ctx: SockAddrContext) -> i32 {
    1
}

#[cgroup_sock_addr(connect6)]
pub fn seam_floor_connect6(_ctx: SockAddrContext) -> i32 {
    1
}

#[cgroup_sock_addr(sendmsg4)]
pub fn seam_floor_sendmsg4(_ctx: SockAddrContext) -> i32 {
    1
}

#[cgroup_sock_addr(sendmsg6)]
pub fn seam_floor_sendmsg6(_ctx: SockAddrContext) -> i32 {
    1
}

#[cgroup_sock_addr(recvmsg4)]
pub fn seam_floor_recvmsg4(_ctx: SockAddrContext) -> i32 {
    1
}

#[cgroup_sock_addr(recvmsg6)]
pub fn seam_floor_recvmsg6(_ctx: SockAddrContext) -> i32 {
    1
}

#[cgroup_sock(post_bind4)]
pub fn seam_floor_post_bind4(_ctx: SockContext) -> i32 {
    1
}

#[cgroup_sock(post_bind6)]
pub fn seam_floor_post_bind6(_ctx: SockContext) -> i32 {
    1
}

#[cgroup_skb(ingress)]
pub fn seam_floor_skb_ingress(_ctx: SkBuffContext) -> i32 {
    1
}

#[cgroup_skb(egress)]
pub fn seam_floor_skb_egress(_ctx: SkBuffContext) -> i32 {
    1
}

/// Loaded once per tp_btf target (the target is chosen at load).
#[btf_tracepoint]
pub fn seam_floor_tp_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// One instance attaches to every classic tracepoint.
#[tracepoint]
pub fn seam_floor_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The production object's licence (these programs call no GPL-only helper).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
