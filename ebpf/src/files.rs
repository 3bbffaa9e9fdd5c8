//! File syscalls of tenant tasks, with the path resolved in the kernel from the object itself.
//!
//! Syscall tracepoints are the only file hooks on kernels without BPF LSM or fentry; any program
//! on one puts every syscall of the node on the slow path, so the set is kept to what the
//! capability needs, and every probe filters to tenant cgroups first. The enter side keeps the
//! arguments of tenant tasks only; the exit side resolves and reports, so failed attempts are
//! recorded with their outcome.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_probe_read_user,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_loop,
            bpf_probe_read_kernel_str, bpf_probe_read_user_str, bpf_ringbuf_output,
        },
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
};
use seam_common::{
    EventInfo, EventKind, FILE_BUF, FileData, FileHead, FileSyscall, LossSlot, MAX_FILE_CALLS,
    MAX_PATH_DEPTH, PATH_LIMIT, PathMeta,
};

use crate::{
    budget::within_budget,
    emit::{BPF_RB_NO_WAKEUP, Context, header},
    kernel::{offset, read},
    maps::{EVENTS, count_loss, is_tenant_cgroup},
};

/// `AT_FDCWD`.
const AT_FDCWD: i64 = -100;
/// `O_WRONLY | O_CREAT | O_TRUNC`: what creat() means.
const CREAT_FLAGS: u32 = 0o1 | 0o100 | 0o1000;
/// Longest single component (NAME_MAX + NUL).
pub(crate) const NAME_MAX: usize = 256;

/// A tenant task's file syscall between enter and exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileCall {
    op: u8,
    _pad: [u8; 3],
    flags: u32,
    dirfd: [i64; 2],
    path: [u64; 2],
    npaths: u64,
}

#[map]
static FILE_CALLS: HashMap<u64, FileCall> = HashMap::with_max_entries(MAX_FILE_CALLS, 0);

/// The event being built (too big for the 512-byte BPF stack), and the state of a path walk.
#[repr(C)]
pub struct FileScratch {
    pub(crate) info: EventInfo,
    pub(crate) data: FileData,
    /// Kept in the map, not on the stack: values loaded from a map are opaque to the verifier,
    /// so every `bpf_loop` iteration of [`walk_step`] looks alike and is verified once.
    walk: Walk,
}

#[map]
pub(crate) static FILE_SCRATCH: PerCpuArray<FileScratch> = PerCpuArray::with_max_entries(1, 0);

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
    let _ = report(&call, ret);
}

/// The current task's `struct file *` for `fd`, or null.
#[inline(always)]
fn fd_file(task: *const u8, fd: i64) -> *const u8 {
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

#[inline(always)]
fn report(call: &FileCall, ret: i64) -> Result<(), i32> {
    // A raw pointer, never a `&mut` held across `walk`: the walk's `bpf_loop` callback takes
    // its own reference to this CPU's entry, and two live `&mut` to it would alias.
    let scratch = FILE_SCRATCH.get_ptr_mut(0).ok_or(0)?;
    // SAFETY: helpers without arguments.
    let (task, cgroup_id) = unsafe {
        (
            bpf_get_current_task() as *const u8,
            bpf_get_current_cgroup_id(),
        )
    };
    // SAFETY: this CPU's scratch entry, used by one program at a time; each access below is a
    // short-lived place expression through the raw pointer.
    unsafe {
        (*scratch).info = header(EventKind::File, cgroup_id, Context::Task);
        (*scratch).data.head.ret = ret;
        (*scratch).data.head.flags = call.flags;
        (*scratch).data.head.f_mode = 0;
        (*scratch).data.head.op = call.op;
        (*scratch).data.head.npaths = call.npaths as u8;
        (*scratch).data.head.paths = [PathMeta::default(); 2];
    }
    let mut off = 0usize;
    if call.op == FileSyscall::Open as u8 && ret >= 0 {
        // Success: resolve the object the fd refers to, not what the caller said.
        let file = fd_file(task, ret);
        if !file.is_null() {
            let f_mode = read(file, offset!(file_mode)).unwrap_or(0);
            let (len, truncated, rooted) = walk(scratch, file.wrapping_add(offset!(file_path)), 0);
            // SAFETY: as above.
            unsafe {
                (*scratch).data.head.f_mode = f_mode;
                (*scratch).data.head.paths[0] = PathMeta {
                    base_len: len as u16,
                    user_len: 0,
                    truncated,
                    resolved: 1,
                    rooted,
                    _pad: 0,
                };
            }
            off = len;
        }
    } else {
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

/// State of a path walk (in [`FileScratch`]).
#[repr(C)]
struct Walk {
    dentry: u64,
    mount: u64,
    off: u64,
    start: u64,
    truncated: u64,
    rooted: u64,
    done: u64,
}

/// One step of a path walk: emit one component and go up, or cross one mount, or finish.
/// Runs under `bpf_loop`, so the verifier checks it once instead of once per level.
unsafe extern "C" fn walk_step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(scratch) = FILE_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch entry; only this program runs on this CPU meanwhile.
    let scratch = unsafe { &mut *scratch };
    let w = &mut scratch.walk;
    let dentry = w.dentry as *const u8;
    let mount = w.mount as *const u8;
    let Ok(parent) = read::<*const u8>(dentry, offset!(dentry_parent)) else {
        w.truncated = 1;
        return 1;
    };
    if parent != dentry {
        // An ordinary directory level (also above a bind mount's root: the path names where
        // the data lives, not where it was mounted).
        if w.off.wrapping_sub(w.start) > (PATH_LIMIT - NAME_MAX) as u64 {
            w.truncated = 1;
            return 1;
        }
        let name: *const u8 = read(dentry, offset!(dentry_name)).unwrap_or(core::ptr::null());
        let at = (w.off as usize) & (FILE_BUF - 1);
        // SAFETY: `at + NAME_MAX` is within the scratch buffer (FILE_BUF + PATH_LIMIT bytes).
        let n = unsafe {
            let dst = scratch.data.buf.as_mut_ptr().add(at);
            bpf_probe_read_kernel_str(dst.cast(), NAME_MAX as u32, name.cast())
        };
        let w = &mut scratch.walk;
        if n <= 0 {
            w.truncated = 1;
            return 1;
        }
        w.off += n as u64;
        w.dentry = parent as u64;
        return 0;
    }
    // The root of a filesystem: continue from the mount that shows it from its root, or stop
    // at the global root. Walking up the mount tree takes one step per mount.
    let mount_mnt = offset!(mount_mnt);
    let root: *const u8 =
        read(mount.wrapping_add(mount_mnt), offset!(vfsmount_root)).unwrap_or(core::ptr::null());
    let up: *const u8 = read(mount, offset!(mount_parent)).unwrap_or(core::ptr::null());
    let top = up == mount || up.is_null();
    if root == dentry {
        if top {
            w.rooted = 1;
            w.done = 1;
            return 1;
        }
        w.dentry =
            read::<*const u8>(mount, offset!(mount_mountpoint)).unwrap_or(core::ptr::null()) as u64;
        w.mount = up as u64;
        return 0;
    }
    if top {
        // A filesystem no mount above shows from its root: the path is relative to it.
        w.done = 1;
        return 1;
    }
    w.mount = up as u64;
    0
}

/// Walks the `struct path` at `path` up to the global root, writing NUL-terminated component
/// names leaf first into the scratch buffer from `start`. Returns (bytes, truncated, rooted).
#[inline(always)]
pub(crate) fn walk(scratch: *mut FileScratch, path: *const u8, start: usize) -> (usize, u8, u8) {
    let Ok(dentry) = read::<*const u8>(path, offset!(path_dentry)) else {
        return (0, 0, 0);
    };
    let Ok(vfsmount) = read::<*const u8>(path, offset!(path_mnt)) else {
        return (0, 0, 0);
    };
    let mount = vfsmount.wrapping_sub(offset!(mount_mnt)) as u64;
    // SAFETY: this CPU's scratch entry, written through the raw pointer; no reference to it is
    // live while `bpf_loop` runs `walk_step`, which takes its own.
    unsafe {
        (*scratch).walk = Walk {
            dentry: dentry as u64,
            mount,
            off: start as u64,
            start: start as u64,
            truncated: 0,
            rooted: 0,
            done: 0,
        };
        bpf_loop(
            MAX_PATH_DEPTH,
            walk_step as *const () as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    // SAFETY: as above; read back through the raw pointer after the loop.
    let (off, begin, truncated, done, rooted) = unsafe {
        let w = &(*scratch).walk;
        (w.off, w.start, w.truncated, w.done, w.rooted)
    };
    let truncated = u8::from(truncated != 0 || done == 0);
    let len = (off.wrapping_sub(begin) as usize) & (FILE_BUF - 1);
    (len, truncated, rooted as u8)
}

/// Sends the used part of the scratch event, or counts it lost.
#[inline(always)]
pub(crate) fn send(scratch: *const FileScratch, used: usize) {
    // SAFETY: the scratch value is this CPU's, its header filled by the caller.
    let (cgroup_id, kind) = unsafe { ((*scratch).info.cgroup_id, (*scratch).info.kind) };
    if !within_budget(cgroup_id, kind) {
        return;
    }
    let size = size_of::<EventInfo>() + size_of::<FileHead>() + (used & (FILE_BUF - 1));
    // SAFETY: `size` is within the scratch value (header + head + at most FILE_BUF bytes).
    let rc = unsafe {
        bpf_ringbuf_output(
            core::ptr::addr_of!(EVENTS) as *mut _,
            scratch.cast_mut().cast(),
            size as u64,
            BPF_RB_NO_WAKEUP,
        )
    };
    if rc != 0 {
        count_loss(LossSlot::File);
    }
}

/// The binary a tenant task just exec'd, resolved from `bprm->file` (tp_btf
/// sched_process_exec calls this with its `bprm` argument).
#[inline(always)]
pub fn report_exec(bprm: *const u8, cgroup_id: u64) {
    if offset!(files_valid) != 1 {
        return;
    }
    let Some(scratch) = FILE_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let Ok(file) = read::<*const u8>(bprm, offset!(bprm_file)) else {
        return;
    };
    // SAFETY: this CPU's scratch entry, through the raw pointer (see `report`).
    unsafe {
        (*scratch).info = header(EventKind::File, cgroup_id, Context::Task);
        (*scratch).data.head.ret = 0;
        (*scratch).data.head.flags = 0;
        (*scratch).data.head.f_mode = 0;
        (*scratch).data.head.op = FileSyscall::Exec as u8;
        (*scratch).data.head.npaths = 1;
    }
    let (len, truncated, rooted) = walk(scratch, file.wrapping_add(offset!(file_path)), 0);
    // SAFETY: as above.
    unsafe {
        (*scratch).data.head.paths = [
            PathMeta {
                base_len: len as u16,
                user_len: 0,
                truncated,
                resolved: 1,
                rooted,
                _pad: 0,
            },
            PathMeta::default(),
        ];
    }
    send(scratch, len);
}
