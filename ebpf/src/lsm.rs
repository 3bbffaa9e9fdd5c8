//! BPF LSM programs: file access and connect intent at the security hooks themselves. The best
//! rows of their capabilities where the kernel has `bpf` in its active LSM list; they never deny
//! (every program returns 0, which leaves the decision to the other LSMs).
use core::ffi::c_void;

use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{connect_hook, file_hooks};

/// "Allow": BPF LSM programs return 0 or -errno; Seam observes only.
const ALLOW: i32 = 0;

#[lsm(hook = "file_open")]
pub fn seam_lsm_file_open(ctx: LsmContext) -> i32 {
    // The BPF LSM runs last: an earlier LSM's refusal means this program is never called.
    file_hooks::open(ctx.arg::<*const c_void>(0), 0);
    ALLOW
}

#[lsm(hook = "path_unlink")]
pub fn seam_lsm_path_unlink(ctx: LsmContext) -> i32 {
    file_hooks::unlink(ctx.arg(0), ctx.arg(1), 0);
    ALLOW
}

#[lsm(hook = "path_rename")]
pub fn seam_lsm_path_rename(ctx: LsmContext) -> i32 {
    file_hooks::rename(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), 0);
    ALLOW
}

#[lsm(hook = "path_truncate")]
pub fn seam_lsm_path_truncate(ctx: LsmContext) -> i32 {
    file_hooks::truncate(ctx.arg(0), 0);
    ALLOW
}

#[lsm(hook = "socket_connect")]
pub fn seam_lsm_socket_connect(ctx: LsmContext) -> i32 {
    let _ = connect_hook::try_connect(ctx.arg(0), ctx.arg(1));
    ALLOW
}
