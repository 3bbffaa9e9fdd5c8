//! Seam's kernel probes. Each probe is a thin wrapper around a `try_*` function; the only logic
//! here is attribution (which cgroup) and filtering (is it a tenant cgroup). Everything else
//! happens in user space (agent/).
#![no_std]
#![no_main]

mod budget;
mod connect_hook;
mod emit;
mod fexit;
mod file_hooks;
mod files;
mod kernel;
mod kprobe;
mod lsm;
mod maps;
mod process;
mod skb;
mod skb_compat;
mod sock_addr;
mod tcp_state;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible licence: `bpf_probe_read_kernel` and the ring buffer helpers need it.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
