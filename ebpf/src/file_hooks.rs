//! File access seen at the kernel's security hooks (`file_open`, `path_unlink`, `path_rename`,
//! `path_truncate`), whichever way they are reached: BPF LSM, fexit or kprobe on the
//! `security_*` function. The kernel hands over the object it is about to act on (a `struct file`,
//! or a directory `struct path` and the entry's dentry), so the path is resolved from the object
//! and no syscall tracepoint is needed: the rest of the node's syscalls stay on the fast path.
//!
//! What these hooks do not see, by construction: attempts that fail before the hook is called
//! (ENOENT during lookup, EACCES/EPERM from the permission checks that run before `file_open`).
//! The agent reports that as a reduced guarantee of the file capability (see its fingerprint).
use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_get_current_cgroup_id, bpf_probe_read_kernel_str};
use seam_common::{EventKind, FILE_BUF, FileSyscall, PATH_LIMIT, PathMeta};

use crate::{
    emit::{Context, header},
    kernel::{offset, read},
    maps::is_tenant_cgroup,
    walk::{FILE_SCRATCH, NAME_MAX, begin, send, walk},
};

/// One path a hook names: a `struct path *`, and the dentry of the entry inside that directory
/// when the hook names one (unlink, rename); null when the path is the object itself.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    path: *const u8,
    leaf: *const u8,
}

impl Target {
    const NONE: Self = Self {
        path: core::ptr::null(),
        leaf: core::ptr::null(),
    };
}

/// The current task's cgroup when it is a tenant's (and the file offsets are known).
#[inline(always)]
fn tenant_cgroup() -> Option<u64> {
    if offset!(files_valid) != 1 {
        return None;
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    is_tenant_cgroup(cgroup_id).then_some(cgroup_id)
}

/// `file_open(struct file *file)`: an open that passed lookup and the permission checks. `ret`
/// is the security layer's verdict where the hook knows it (fexit), else 0.
#[inline(always)]
pub(crate) fn open(file: *const c_void, ret: i64) {
    let file = file as *const u8;
    let f_mode: u32 = read(file, offset!(file_mode)).unwrap_or(0);
    let path = Target {
        path: file.wrapping_add(offset!(file_path)),
        leaf: core::ptr::null(),
    };
    let _ = report(FileSyscall::Open, ret, f_mode, [path, Target::NONE], 1);
}

/// `path_unlink(const struct path *dir, struct dentry *dentry)`.
#[inline(always)]
pub(crate) fn unlink(dir: *const c_void, dentry: *const c_void, ret: i64) {
    let target = Target {
        path: dir.cast(),
        leaf: dentry.cast(),
    };
    let _ = report(FileSyscall::Unlink, ret, 0, [target, Target::NONE], 1);
}

/// `path_rename(old_dir, old_dentry, new_dir, new_dentry, ...)`.
#[inline(always)]
pub(crate) fn rename(
    old_dir: *const c_void,
    old_dentry: *const c_void,
    new_dir: *const c_void,
    new_dentry: *const c_void,
    ret: i64,
) {
    let from = Target {
        path: old_dir.cast(),
        leaf: old_dentry.cast(),
    };
    let to = Target {
        path: new_dir.cast(),
        leaf: new_dentry.cast(),
    };
    let _ = report(FileSyscall::Rename, ret, 0, [from, to], 2);
}

/// `path_truncate(const struct path *path)`.
#[inline(always)]
pub(crate) fn truncate(path: *const c_void, ret: i64) {
    let target = Target {
        path: path.cast(),
        leaf: core::ptr::null(),
    };
    let _ = report(FileSyscall::Truncate, ret, 0, [target, Target::NONE], 1);
}

/// Writes the name of `dentry` (NUL included) at `off`; returns the bytes written.
#[inline(always)]
fn leaf_name(dentry: *const u8, buf: &mut [u8; FILE_BUF + PATH_LIMIT], off: usize) -> usize {
    let name: *const u8 = read(dentry, offset!(dentry_name)).unwrap_or(core::ptr::null());
    let at = off & (FILE_BUF - 1);
    // SAFETY: `at + NAME_MAX` is within the buffer; a fault is an error, not a crash.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.as_mut_ptr().add(at).cast(),
            NAME_MAX as u32,
            name.cast(),
        )
    };
    if n > 0 { n as usize } else { 0 }
}

/// Builds and sends one file event: each target's components leaf first (the entry's own name,
/// then its directory up to the root), all resolved by the kernel. The hook runs before the
/// operation completes: `ret` is 0 (an access the kernel is about to perform) or the security
/// layer's refusal (-EACCES, -EPERM) when the hook saw it.
#[inline(always)]
fn report(
    op: FileSyscall,
    ret: i64,
    f_mode: u32,
    targets: [Target; 2],
    npaths: u8,
) -> Result<(), i32> {
    let Some(cgroup_id) = tenant_cgroup() else {
        return Ok(());
    };
    // A raw pointer, never a `&mut` held across `walk` (its `bpf_loop` callback takes its own
    // reference to this CPU's entry; see files.rs).
    let scratch = FILE_SCRATCH.get_ptr_mut(0).ok_or(0)?;
    let info = header(EventKind::File, cgroup_id, Context::Task);
    begin(scratch, info, ret, 0, op as u8, npaths);
    // SAFETY: this CPU's scratch entry, used by one program at a time; short-lived accesses
    // through the raw pointer.
    unsafe { (*scratch).data.head.f_mode = f_mode };
    let mut off = 0usize;
    for (i, target) in targets.iter().enumerate() {
        if i >= usize::from(npaths) {
            break;
        }
        let start = off;
        let leaf = if target.leaf.is_null() {
            0
        } else {
            // SAFETY: as above; the buffer reference lives for this call only.
            leaf_name(target.leaf, unsafe { &mut (*scratch).data.buf }, start)
        };
        let (len, truncated, rooted) = walk(scratch, target.path, start + leaf);
        off = start + leaf + len;
        // SAFETY: as above.
        unsafe {
            (*scratch).data.head.paths[i] = PathMeta {
                base_len: (leaf + len) as u16,
                user_len: 0,
                truncated,
                resolved: 1,
                rooted,
                _pad: 0,
            };
        }
    }
    send(scratch, off);
    Ok(())
}
