//! File syscalls of tenant tasks, with the path resolved in the kernel from the object itself.
//!
//! Syscall tracepoints are the only file hooks on kernels without BPF LSM or fentry; any program
//! on one puts every syscall of the node on the slow path, so the set is kept to what the
//! capability needs, and every probe filters to tenant cgroups first. The enter side keeps the
//! arguments of tenant tasks only; the exit side resolves and reports, so failed attempts are
//! recorded with their outcome.
use aya_ebpf::{
    helpers::{
        bpf_probe_read_user,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
            bpf_probe_read_user_str,
        },
    },
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use seam_common::{EventKind, FILE_BUF, FileSyscall, MAX_FILE_CALLS, PATH_LIMIT, PathMeta};

use crate::{
    emit::{Context, header},
    kernel::{offset, read},
    maps::is_tenant_cgroup,
    walk::{FILE_SCRATCH, begin, send, walk},
};

/// `AT_FDCWD`.
pub(crate) const AT_FDCWD: i64 = -100;
/// `O_WRONLY | O_CREAT | O_TRUNC`: what creat() means.
pub(crate) const CREAT_FLAGS: u32 = 0o1 | 0o100 | 0o1000;

/// A tenant task's file syscall: its arguments, kept between enter and exit on the
/// per-syscall tier, read from the registers at exit on the `sys_exit` tier.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileCall {
    pub(crate) op: u8,
    pub(crate) _pad: [u8; 3],
    pub(crate) flags: u32,
    pub(crate) dirfd: [i64; 2],
    pub(crate) path: [u64; 2],
    pub(crate) npaths: u64,
}

/// The parts of a [`seam_common::SilentKey`] an open's event carries (zero: this open cannot be
/// silenced, e.g. on tiers that do not follow the file generation).
#[derive(Clone, Copy, Default)]
pub(crate) struct Tag {
    pub(crate) dir_ino: u64,
    pub(crate) generation: u64,
    pub(crate) dir_dev: u32,
    pub(crate) class: u8,
}

#[map]
static FILE_CALLS: HashMap<u64, FileCall> = HashMap::with_max_entries(MAX_FILE_CALLS, 0);

#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    let at = offset!(syscall_args) + n * 8;
    // SAFETY: syscall tracepoint records hold 6 u64 arguments from `syscall_args`.
    unsafe { ctx.read_at::<u64>(at) }.unwrap_or(0)
}

/// Records the arguments of a tenant task's file syscall.
#[inline(always)]
fn enter(op: FileSyscall, flags: u32, dirfd: [i64; 2], path: [u64; 2], npaths: u64) {
    if offset!(files_valid) != 1 {
        return;
    }
    // SAFETY: helpers without arguments.
    let (cgroup_id, pid_tgid) =
        unsafe { (bpf_get_current_cgroup_id(), bpf_get_current_pid_tgid()) };
    if !is_tenant_cgroup(cgroup_id) {
        return;
    }
    let call = FileCall {
        op: op as u8,
        _pad: [0; 3],
        flags,
        dirfd,
        path,
        npaths,
    };
    let _ = FILE_CALLS.insert(pid_tgid, call, 0);
}

macro_rules! syscall_probes {
    ($enter:ident, $exit:ident, $name:literal, |$ctx:ident| $args:expr) => {
        // Attached by the agent to syscalls/sys_enter_$name and syscalls/sys_exit_$name.
        #[tracepoint]
        pub fn $enter($ctx: TracePointContext) -> u32 {
            let (op, flags, dirfd, path, npaths) = $args;
            enter(op, flags, dirfd, path, npaths);
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx);
            0
        }
    };
}

syscall_probes!(seam_enter_openat, seam_exit_openat, "openat", |ctx| (
    FileSyscall::Open,
    arg(&ctx, 2) as u32,
    [arg(&ctx, 0) as i32 as i64, 0],
    [arg(&ctx, 1), 0],
    1
));
syscall_probes!(seam_enter_openat2, seam_exit_openat2, "openat2", |ctx| (
    FileSyscall::Open,
    // SAFETY: `how` is a user pointer to struct open_how, whose first field is the flags.
    unsafe { bpf_probe_read_user(arg(&ctx, 2) as *const u64) }.unwrap_or(0) as u32,
    [arg(&ctx, 0) as i32 as i64, 0],
    [arg(&ctx, 1), 0],
    1
));
syscall_probes!(seam_enter_open, seam_exit_open, "open", |ctx| (
    FileSyscall::Open,
    arg(&ctx, 1) as u32,
    [AT_FDCWD, 0],
    [arg(&ctx, 0), 0],
    1
));
syscall_probes!(seam_enter_creat, seam_exit_creat, "creat", |ctx| (
    FileSyscall::Open,
    CREAT_FLAGS,
    [AT_FDCWD, 0],
    [arg(&ctx, 0), 0],
    1
));
syscall_probes!(seam_enter_unlinkat, seam_exit_unlinkat, "unlinkat", |ctx| (
    FileSyscall::Unlink,
    arg(&ctx, 2) as u32,
    [arg(&ctx, 0) as i32 as i64, 0],
    [arg(&ctx, 1), 0],
    1
));
syscall_probes!(seam_enter_unlink, seam_exit_unlink, "unlink", |ctx| (
    FileSyscall::Unlink,
    0,
    [AT_FDCWD, 0],
    [arg(&ctx, 0), 0],
    1
));
syscall_probes!(
    seam_enter_renameat2,
    seam_exit_renameat2,
    "renameat2",
    |ctx| (
        FileSyscall::Rename,
        arg(&ctx, 4) as u32,
        [arg(&ctx, 0) as i32 as i64, arg(&ctx, 2) as i32 as i64],
        [arg(&ctx, 1), arg(&ctx, 3)],
        2
    )
);
syscall_probes!(seam_enter_renameat, seam_exit_renameat, "renameat", |ctx| (
    FileSyscall::Rename,
    0,
    [arg(&ctx, 0) as i32 as i64, arg(&ctx, 2) as i32 as i64],
    [arg(&ctx, 1), arg(&ctx, 3)],
    2
));
syscall_probes!(seam_enter_rename, seam_exit_rename, "rename", |ctx| (
    FileSyscall::Rename,
    0,
    [AT_FDCWD, AT_FDCWD],
    [arg(&ctx, 0), arg(&ctx, 1)],
    2
));
syscall_probes!(seam_enter_truncate, seam_exit_truncate, "truncate", |ctx| (
    FileSyscall::Truncate,
    0,
    [AT_FDCWD, 0],
    [arg(&ctx, 0), 0],
    1
));

#[inline(always)]
fn exit(ctx: &TracePointContext) {
    // SAFETY: helper without arguments.
    let pid_tgid = unsafe { bpf_get_current_pid_tgid() };
    // SAFETY: the value is copied out before the entry is removed.
    let Some(call) = (unsafe { FILE_CALLS.get(pid_tgid) }).copied() else {
        return;
    };
    let _ = FILE_CALLS.remove(pid_tgid);
    let at = offset!(syscall_ret);
    // SAFETY: the exit record holds `ret` at `syscall_ret`.
    let ret = unsafe { ctx.read_at::<i64>(at) }.unwrap_or(0);
    // SAFETY: helpers without arguments.
    let (task, cgroup_id) = unsafe {
        (
            bpf_get_current_task() as *const u8,
            bpf_get_current_cgroup_id(),
        )
    };
    let opened = if call.op == FileSyscall::Open as u8 && ret >= 0 {
        fd_file(task, ret)
    } else {
        core::ptr::null()
    };
    let _ = report(&call, ret, task, cgroup_id, opened, &Tag::default());
}

/// The current task's `struct file *` for `fd`, or null.
#[inline(always)]
pub(crate) fn fd_file(task: *const u8, fd: i64) -> *const u8 {
    let Ok(files) = read::<*const u8>(task, offset!(task_files)) else {
        return core::ptr::null();
    };
    let Ok(fdt) = read::<*const u8>(files, offset!(files_fdt)) else {
        return core::ptr::null();
    };
    let max: u32 = read(fdt, offset!(fdt_max_fds)).unwrap_or(0);
    if fd < 0 || fd as u64 >= u64::from(max) {
        return core::ptr::null();
    }
    let Ok(table) = read::<*const u8>(fdt, offset!(fdt_fd)) else {
        return core::ptr::null();
    };
    read::<*const u8>(table, fd as usize * 8).unwrap_or(core::ptr::null())
}

/// Address of the `struct path` a relative or absolute user path starts from.
#[inline(always)]
fn base_path(task: *const u8, dirfd: i64, absolute: bool) -> *const u8 {
    if absolute || dirfd == AT_FDCWD {
        let Ok(fs) = read::<*const u8>(task, offset!(task_fs)) else {
            return core::ptr::null();
        };
        let field = if absolute {
            offset!(fs_root)
        } else {
            offset!(fs_pwd)
        };
        return fs.wrapping_add(field);
    }
    let file = fd_file(task, dirfd);
    if file.is_null() {
        return file;
    }
    file.wrapping_add(offset!(file_path))
}

/// Builds and sends the event of `call` by `task` (in `cgroup_id`), which returned `ret`.
/// `opened` is the file a successful open returned (null otherwise): its path is resolved from
/// the object. `tag` names the directory an open may be silenced by (zero: not silenceable).
#[inline(always)]
pub(crate) fn report(
    call: &FileCall,
    ret: i64,
    task: *const u8,
    cgroup_id: u64,
    opened: *const u8,
    tag: &Tag,
) -> Result<(), i32> {
    // A raw pointer, never a `&mut` held across `walk`: the walk's `bpf_loop` callback takes
    // its own reference to this CPU's entry, and two live `&mut` to it would alias.
    let scratch = FILE_SCRATCH.get_ptr_mut(0).ok_or(0)?;
    begin(
        scratch,
        header(EventKind::File, cgroup_id, Context::Task),
        ret,
        call.flags,
        call.op,
        call.npaths as u8,
    );
    let mut off = 0usize;
    if !opened.is_null() {
        // Success: resolve the object the fd refers to, not what the caller said.
        let f_mode = read(opened, offset!(file_mode)).unwrap_or(0);
        let (len, truncated, rooted) = walk(scratch, opened.wrapping_add(offset!(file_path)), 0);
        // SAFETY: this CPU's scratch entry, used by one program at a time; short-lived place
        // expressions through the raw pointer.
        unsafe {
            let head = &mut (*scratch).data.head;
            head.f_mode = f_mode;
            head.paths[0] = PathMeta {
                base_len: len as u16,
                user_len: 0,
                truncated,
                resolved: 1,
                rooted,
                _pad: 0,
            };
            head.dir_ino = tag.dir_ino;
            head.dir_dev = tag.dir_dev;
            head.generation = tag.generation;
            head.class = tag.class;
        }
        off = len;
    } else if call.op != FileSyscall::Open as u8 || ret < 0 {
        for i in 0..2 {
            if i as u64 >= call.npaths {
                break;
            }
            let user = call.path[i] as *const u8;
            // SAFETY: reading one byte of a user pointer; a fault is an error, not a crash.
            let first: u8 = unsafe { bpf_probe_read_user(user) }.unwrap_or(0);
            let base = base_path(task, call.dirfd[i], first == b'/');
            let start = off;
            let (mut len, mut truncated, mut rooted) = (0, 0, 0);
            if !base.is_null() {
                (len, truncated, rooted) = walk(scratch, base, start);
            }
            off = start + len;
            // SAFETY: as above; the buffer reference lives for this call only.
            let user_len = copy_user(user, unsafe { &mut (*scratch).data.buf }, off);
            off += user_len;
            // SAFETY: as above.
            unsafe {
                (*scratch).data.head.paths[i] = PathMeta {
                    base_len: len as u16,
                    user_len: user_len as u16,
                    truncated,
                    resolved: 0,
                    rooted,
                    _pad: 0,
                };
            }
        }
    }
    send(scratch, off);
    Ok(())
}

/// Copies the user-supplied path to the scratch buffer at `off`; returns the bytes written
/// (NUL included), 0 on a fault.
#[inline(always)]
fn copy_user(user: *const u8, buf: &mut [u8; FILE_BUF + PATH_LIMIT], off: usize) -> usize {
    let at = off & (FILE_BUF - 1);
    // SAFETY: `at + PATH_LIMIT` is within the buffer; faults are reported as errors.
    let n = unsafe {
        bpf_probe_read_user_str(
            buf.as_mut_ptr().add(at).cast(),
            PATH_LIMIT as u32,
            user.cast(),
        )
    };
    if n > 0 { n as usize } else { 0 }
}
