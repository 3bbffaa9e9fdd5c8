//! The last-but-one file tier: one `tp_btf/sys_exit` program instead of an enter and an exit
//! program per file syscall. It reads the syscall number and arguments from the task's saved
//! registers (still the caller's at exit), so nothing is kept between enter and exit, and it is
//! the only syscall hook: one program run per syscall of the node, which leaves at once unless
//! the number is one Seam watches.
//!
//! It also advances the file generation on every successful rename, directory removal and
//! mount change of the node (silence.rs), and checks a successful open against the silences
//! before it walks the path.
use aya_ebpf::{
    helpers::{
        bpf_probe_read_user,
        generated::{bpf_get_current_cgroup_id, bpf_get_current_task_btf},
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use seam_common::{AccessClass, FileSyscall, SilentKey, SyscallNumbers};

use crate::{
    direct::load,
    files::{AT_FDCWD, CREAT_FLAGS, FileCall, Tag, fd_file, report},
    kernel::{offset, read},
    maps::is_tenant_cgroup,
    silence,
};

/// Written by the agent before load: this architecture's syscall numbers.
#[unsafe(no_mangle)]
pub static SEAM_SYSCALLS: SyscallNumbers = SyscallNumbers::NONE;

/// One syscall number, from frozen `.rodata`.
macro_rules! nr {
    ($field:ident) => {{
        // SAFETY: reading a plain static.
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&SEAM_SYSCALLS.$field) };
        u64::from(value)
    }};
}

/// `AT_REMOVEDIR`: unlinkat() removes a directory.
const AT_REMOVEDIR: u64 = 0x200;

/// What a watched syscall is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    OpenAt,
    Open,
    OpenAt2,
    Creat,
    UnlinkAt,
    Unlink,
    Rmdir,
    RenameAt2,
    RenameAt,
    Rename,
    Truncate,
    /// mount, umount2, move_mount, pivot_root: only the generation.
    Mount,
}

#[inline(always)]
fn classify(nr: u64) -> Option<Call> {
    // The most frequent first: most syscalls of the node leave after these compares.
    Some(if nr == nr!(openat) {
        Call::OpenAt
    } else if nr == nr!(open) {
        Call::Open
    } else if nr == nr!(openat2) {
        Call::OpenAt2
    } else if nr == nr!(creat) {
        Call::Creat
    } else if nr == nr!(unlinkat) {
        Call::UnlinkAt
    } else if nr == nr!(unlink) {
        Call::Unlink
    } else if nr == nr!(rmdir) {
        Call::Rmdir
    } else if nr == nr!(renameat2) {
        Call::RenameAt2
    } else if nr == nr!(renameat) {
        Call::RenameAt
    } else if nr == nr!(rename) {
        Call::Rename
    } else if nr == nr!(truncate) {
        Call::Truncate
    } else if nr == nr!(mount)
        || nr == nr!(umount2)
        || nr == nr!(move_mount)
        || nr == nr!(pivot_root)
    {
        Call::Mount
    } else {
        return None;
    })
}

#[btf_tracepoint(function = "sys_exit")]
pub fn seam_sys_exit(ctx: BtfTracePointContext) -> i32 {
    let _ = try_sys_exit(&ctx);
    0
}

/// Syscall argument `n` (0-based) from the saved registers.
///
/// # Safety
/// `regs` must be the tracepoint's BTF-typed `struct pt_regs *`.
#[inline(always)]
unsafe fn arg(regs: *const u8, n: usize) -> u64 {
    // SAFETY: reading a plain static; `n` < 5 at every call site.
    let at = unsafe { core::ptr::read_volatile(&crate::kernel::SEAM_OFFSETS.regs_args[n]) };
    // SAFETY: a `pt_regs` member at an offset from this kernel's BTF.
    unsafe { load(regs, at as usize) }
}

#[inline(always)]
fn try_sys_exit(ctx: &BtfTracePointContext) -> Result<(), i32> {
    if offset!(regs_valid) != 1 {
        return Ok(());
    }
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    // SAFETY: `regs` is the tracepoint's BTF-typed `struct pt_regs *`.
    let nr: u64 = unsafe { load(regs, offset!(regs_orig_ax)) };
    let Some(call) = classify(nr) else {
        return Ok(());
    };
    // SAFETY: helper without arguments; returns the BTF-typed current task.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let compat = nr!(ts_compat);
    // SAFETY: `thread_info.status` of the BTF-typed current task.
    if compat != 0 && u64::from(unsafe { load::<u32>(task, offset!(task_ti_status)) }) & compat != 0
    {
        // A 32-bit syscall: its numbers mean other syscalls (the per-syscall tracepoints do
        // not report these either).
        return Ok(());
    }
    // SAFETY: as above, for each argument read below.
    let (a0, a1, a2, a3, a4) = unsafe {
        (
            arg(regs, 0),
            arg(regs, 1),
            arg(regs, 2),
            arg(regs, 3),
            arg(regs, 4),
        )
    };
    let changes_paths = match call {
        Call::Rmdir | Call::Mount | Call::RenameAt2 | Call::RenameAt | Call::Rename => true,
        Call::UnlinkAt => a2 & AT_REMOVEDIR != 0,
        _ => false,
    };
    if ret == 0 && changes_paths {
        // Any task of the node: a directory may now have another path.
        silence::advance();
    }
    if offset!(files_valid) != 1 {
        return Ok(());
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(());
    }
    let dirfd = |raw: u64| raw as i32 as i64;
    let (op, flags, dirfds, paths, npaths) = match call {
        Call::OpenAt => (FileSyscall::Open, a2 as u32, [dirfd(a0), 0], [a1, 0], 1),
        Call::Open => (FileSyscall::Open, a1 as u32, [AT_FDCWD, 0], [a0, 0], 1),
        Call::OpenAt2 => {
            // SAFETY: `how` is a user pointer to struct open_how, whose first field is flags.
            let how = unsafe { bpf_probe_read_user(a2 as *const u64) }.unwrap_or(0);
            (FileSyscall::Open, how as u32, [dirfd(a0), 0], [a1, 0], 1)
        }
        Call::Creat => (FileSyscall::Open, CREAT_FLAGS, [AT_FDCWD, 0], [a0, 0], 1),
        Call::UnlinkAt => (FileSyscall::Unlink, a2 as u32, [dirfd(a0), 0], [a1, 0], 1),
        Call::Unlink => (FileSyscall::Unlink, 0, [AT_FDCWD, 0], [a0, 0], 1),
        Call::RenameAt2 => (
            FileSyscall::Rename,
            a4 as u32,
            [dirfd(a0), dirfd(a2)],
            [a1, a3],
            2,
        ),
        Call::RenameAt => (FileSyscall::Rename, 0, [dirfd(a0), dirfd(a2)], [a1, a3], 2),
        Call::Rename => (FileSyscall::Rename, 0, [AT_FDCWD, AT_FDCWD], [a0, a1], 2),
        Call::Truncate => (FileSyscall::Truncate, 0, [AT_FDCWD, 0], [a0, 0], 1),
        Call::Rmdir | Call::Mount => return Ok(()),
    };
    let file_call = FileCall {
        op: op as u8,
        _pad: [0; 3],
        flags,
        dirfd: dirfds,
        path: paths,
        npaths,
    };
    let mut tag = Tag::default();
    let mut opened = core::ptr::null();
    if op == FileSyscall::Open && ret >= 0 {
        opened = fd_file(task, ret);
        if !opened.is_null() && offset!(dentry_inode) != 0 {
            let (dev, ino) = silence::parent_dir(opened);
            let f_mode: u32 = read(opened, offset!(file_mode)).unwrap_or(0);
            let class = AccessClass::of(f_mode) as u8;
            let generation = silence::generation();
            let key = SilentKey {
                cgroup_id,
                dir_ino: ino,
                dir_dev: dev,
                class,
                _pad: [0; 3],
            };
            if ino != 0 && silence::silenced(&key, generation) {
                return Ok(());
            }
            tag = Tag {
                dir_ino: ino,
                generation,
                dir_dev: dev,
                class,
            };
        }
    }
    report(&file_call, ret, task, cgroup_id, opened, &tag)
}
