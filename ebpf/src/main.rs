//! Seam's kernel probes. Each probe is a thin wrapper around a `try_*` function; the only logic
//! here is attribution (which cgroup) and filtering (is it a tenant cgroup). Everything else
//! happens in user space (agent/).
#![no_std]
#![no_main]
// `atomic_xadd`: the bpfel target has no `AtomicU64::fetch_add` in core.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod budget;
mod connect_hook;
mod direct;
mod emit;
mod fexit;
mod file_hooks;
mod files;
mod kernel;
mod kprobe;
mod lsm;
mod maps;
mod process;
mod silence;
mod skb;
mod skb_compat;
mod sock_addr;
mod sys_exit;
mod tcp_state;
mod walk;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible licence: `bpf_probe_read_kernel` and the ring buffer helpers need it.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
