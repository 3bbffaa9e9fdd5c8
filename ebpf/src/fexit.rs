//! fexit/fentry on the `security_*` functions behind the LSM hooks: the same view as BPF LSM
//! where the kernel has BTF and ftrace direct calls but `bpf` is not an active LSM. File rows
//! use fexit, so the security layer's verdict (another LSM's -EACCES) comes with the event;
//! the connect row uses fentry (an intent is reported whatever the verdict).
use core::ffi::c_void;

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

use crate::{connect_hook, file_hooks};

/// The return value of a function with `nargs` arguments, as fexit passes it (after them).
#[inline(always)]
fn ret(ctx: &FExitContext, nargs: usize) -> i64 {
    i64::from(ctx.arg::<i32>(nargs))
}

#[fexit(function = "security_file_open")]
pub fn seam_fexit_file_open(ctx: FExitContext) -> i32 {
    file_hooks::open(ctx.arg::<*const c_void>(0), ret(&ctx, 1));
    0
}

#[fexit(function = "security_path_unlink")]
pub fn seam_fexit_path_unlink(ctx: FExitContext) -> i32 {
    file_hooks::unlink(ctx.arg(0), ctx.arg(1), ret(&ctx, 2));
    0
}

/// `security_path_rename(old_dir, old_dentry, new_dir, new_dentry, flags)`.
#[fexit(function = "security_path_rename")]
pub fn seam_fexit_path_rename(ctx: FExitContext) -> i32 {
    file_hooks::rename(ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ret(&ctx, 5));
    0
}

#[fexit(function = "security_path_truncate")]
pub fn seam_fexit_path_truncate(ctx: FExitContext) -> i32 {
    file_hooks::truncate(ctx.arg(0), ret(&ctx, 1));
    0
}

#[fentry(function = "security_socket_connect")]
pub fn seam_fentry_socket_connect(ctx: FEntryContext) -> i32 {
    let _ = connect_hook::try_connect(ctx.arg(0), ctx.arg(1));
    0
}
