//! Resolving a path in the kernel: a `struct path` walked up to the global root (dentries,
//! then mounts), leaf first, into a per-CPU scratch event; and sending the used part of it.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_probe_read_kernel_str, bpf_ringbuf_output},
    macros::map,
    maps::PerCpuArray,
};
use seam_common::{
    EventInfo, EventKind, FILE_BUF, FileData, FileHead, FileSyscall, LossSlot, MAX_PATH_DEPTH,
    PATH_LIMIT, PathMeta,
};

use crate::{
    budget::within_budget,
    emit::{Context, WAKEUP, header},
    kernel::{offset, read},
    maps::{EVENTS, count_loss},
};

/// Longest single component (NAME_MAX + NUL).
pub(crate) const NAME_MAX: usize = 256;

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

/// Starts a file event in the scratch entry: its header and the fixed part of its payload
/// (no paths yet, nothing to silence by).
#[inline(always)]
pub(crate) fn begin(
    scratch: *mut FileScratch,
    info: EventInfo,
    ret: i64,
    flags: u32,
    op: u8,
    npaths: u8,
) {
    // SAFETY: this CPU's scratch entry, used by one program at a time; short-lived place
    // expressions through the raw pointer.
    unsafe {
        (*scratch).info = info;
        (*scratch).data.head = FileHead {
            ret,
            flags,
            f_mode: 0,
            op,
            npaths,
            _pad: [0; 6],
            paths: [PathMeta::default(); 2],
            dir_ino: 0,
            generation: 0,
            dir_dev: 0,
            class: 0,
            _pad2: [0; 3],
        };
    }
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
            WAKEUP,
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
    begin(
        scratch,
        header(EventKind::File, cgroup_id, Context::Task),
        0,
        0,
        FileSyscall::Exec as u8,
        1,
    );
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
