//! fentry on the `security_*` functions behind the LSM hooks: the same view as BPF LSM where the
//! kernel has BTF and ftrace direct calls but `bpf` is not an active LSM.
use core::ffi::c_void;

use aya_ebpf::{macros::fentry, programs::FEntryContext};

use crate::{connect_hook, file_hooks};

#[fentry(function = "security_file_open")]
pub fn seam_fentry_file_open(ctx: FEntryContext) -> i32 {
    file_hooks::open(ctx.arg::<*const c_void>(0));
    0
}

#[fentry(function = "security_path_unlink")]
pub fn seam_fentry_path_unlink(ctx: FEntryContext) -> i32 {
    file_hooks::unlink(ctx.arg(0), ctx.arg(1));
    0
}

#[fentry(function = "security_path_rename")]
pub fn seam_fentry_path_rename(ctx: FEntryContext) -> i32 {
    file_hooks::rename(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    0
}

#[fentry(function = "security_path_truncate")]
pub fn seam_fentry_path_truncate(ctx: FEntryContext) -> i32 {
    file_hooks::truncate(ctx.arg(0));
    0
}

#[fentry(function = "security_socket_connect")]
pub fn seam_fentry_socket_connect(ctx: FEntryContext) -> i32 {
    let _ = connect_hook::try_connect(ctx.arg(0), ctx.arg(1));
    0
}
