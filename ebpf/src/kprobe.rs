//! kprobes on the `security_*` file functions: the last stand-in before syscall tracepoints,
//! for kernels without BPF LSM or fexit (no BTF-typed arguments: everything is a probe read).
//! They fire on entry, before the LSMs decide: a refused attempt is reported as an access.
//! No connect row here: the socket cookie helper needs a BTF-typed socket.
use core::ffi::c_void;

use aya_ebpf::{macros::kprobe, programs::ProbeContext};

use crate::file_hooks;

#[inline(always)]
fn arg(ctx: &ProbeContext, n: usize) -> *const c_void {
    ctx.arg::<*const c_void>(n).unwrap_or(core::ptr::null())
}

#[kprobe]
pub fn seam_kprobe_file_open(ctx: ProbeContext) -> u32 {
    file_hooks::open(arg(&ctx, 0), 0);
    0
}

#[kprobe]
pub fn seam_kprobe_path_unlink(ctx: ProbeContext) -> u32 {
    file_hooks::unlink(arg(&ctx, 0), arg(&ctx, 1), 0);
    0
}

#[kprobe]
pub fn seam_kprobe_path_rename(ctx: ProbeContext) -> u32 {
    file_hooks::rename(arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2), arg(&ctx, 3), 0);
    0
}

#[kprobe]
pub fn seam_kprobe_path_truncate(ctx: ProbeContext) -> u32 {
    file_hooks::truncate(arg(&ctx, 0), 0);
    0
}
