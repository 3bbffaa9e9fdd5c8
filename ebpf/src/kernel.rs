//! Reads of kernel structs at offsets the agent resolved from BTF (see seam_common::offsets).
use aya_ebpf::helpers::bpf_probe_read_kernel;
use seam_common::{AF_INET, AF_INET6, KernelOffsets, RawAddr};

use crate::direct::{load, load_in6};

/// Written by the agent before load (`EbpfLoader::override_global`); zero means unresolved.
#[unsafe(no_mangle)]
pub static SEAM_OFFSETS: KernelOffsets = KernelOffsets::ZERO;

/// Reads one offset; volatile so the compiler keeps the load from `.rodata` the verifier sees
/// as a constant.
macro_rules! offset {
    ($field:ident) => {{
        // SAFETY: reading a plain static (also used inside `unsafe` blocks, hence the allow).
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&$crate::kernel::SEAM_OFFSETS.$field) };
        value as usize
    }};
}
pub(crate) use offset;

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T: Copy>(base: *const u8, offset: usize) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel copes with any address (returns an error on a fault).
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset) as *const T) }
}

/// True when the agent passed offsets resolved from this kernel's BTF.
#[inline(always)]
pub fn offsets_valid() -> bool {
    offset!(valid) == 1
}

/// cgroup v2 id of a socket: `sk->sk_cgrp_data.cgroup->kn->id`, by direct loads.
///
/// # Safety
/// `sk` must be a BTF-typed `struct sock *` (a tp_btf argument).
#[inline(always)]
pub unsafe fn sock_cgroup_id(sk: *const u8) -> u64 {
    // SAFETY: each pointer loaded is BTF-typed by the member it comes from.
    unsafe {
        let cgroup: *const u8 = load(sk, offset!(sk_cgroup_ptr));
        let kn: *const u8 = load(cgroup, offset!(cgroup_kn));
        load(kn, offset!(kn_id))
    }
}

/// A socket's addresses and ports as seen from that socket.
pub struct SockTuple {
    pub family: u16,
    pub saddr: RawAddr,
    pub daddr: RawAddr,
    pub sport: u16,
    pub dport: u16,
    pub netns: u32,
}

/// Reads `sk->__sk_common`'s family, addresses, ports and network namespace by direct loads.
///
/// # Safety
/// `sk` must be a BTF-typed `struct sock *` (a tp_btf argument).
#[inline(always)]
pub unsafe fn sock_tuple(sk: *const u8) -> Result<SockTuple, i32> {
    // SAFETY: members of `struct sock_common` at offsets from this kernel's BTF.
    unsafe {
        let family: u16 = load(sk, offset!(skc_family));
        let mut saddr = [0u8; 16];
        let mut daddr = [0u8; 16];
        if family == AF_INET {
            let s: u32 = load(sk, offset!(skc_rcv_saddr));
            let d: u32 = load(sk, offset!(skc_daddr));
            saddr[..4].copy_from_slice(&s.to_ne_bytes());
            daddr[..4].copy_from_slice(&d.to_ne_bytes());
        } else if family == AF_INET6 {
            saddr = load_in6(sk, offset!(skc_v6_rcv_saddr));
            daddr = load_in6(sk, offset!(skc_v6_daddr));
        } else {
            return Err(0);
        }
        let dport_be: u16 = load(sk, offset!(skc_dport));
        let sport: u16 = load(sk, offset!(skc_num));
        let net: *const u8 = load(sk, offset!(skc_net));
        let netns: u32 = load(net, offset!(net_ns_inum));
        Ok(SockTuple {
            family,
            saddr,
            daddr,
            sport,
            dport: u16::from_be(dport_be),
            netns,
        })
    }
}

/// `task->real_parent->tgid` for the given task.
#[inline(always)]
pub fn task_ppid(task: *const u8) -> u32 {
    read::<*const u8>(task, offset!(task_real_parent))
        .and_then(|parent| read::<u32>(parent, offset!(task_tgid)))
        .unwrap_or(0)
}

/// `task->exit_code`.
#[inline(always)]
pub fn task_exit_code(task: *const u8) -> u32 {
    read::<u32>(task, offset!(task_exit_code)).unwrap_or(0)
}
