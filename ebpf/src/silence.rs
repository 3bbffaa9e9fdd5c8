//! Repeated opens counted in the kernel instead of sent. The agent judges the first open of a
//! file in a directory by a cgroup (rules, owner of the path) and, when nothing about the next
//! ones can differ for the rules, silences that (cgroup, directory, access class) for the
//! current file generation: later opens there cost two map lookups and a per-CPU count, and
//! leave the kernel as periodic counts.
//!
//! A directory is named by identity (`s_dev`, `i_ino`), never by a pointer the kernel may reuse.
//! What could give a directory another canonical path, or its identity to another directory —
//! a rename, a directory removal, a mount change, by any task of the node — advances the file
//! generation, which voids every silence at once (the `sys_exit` probe does that before it
//! filters by cgroup).
use aya_ebpf::{
    macros::map,
    maps::{Array, LruPerCpuHashMap},
};
use seam_common::{MAX_SILENT, SilentKey, SilentValue};

use crate::kernel::{offset, read};

/// The file generation (one `u64`).
#[map]
static FILE_GEN: Array<u64> = Array::with_max_entries(1, 0);

/// Silenced (cgroup, directory, class), each with the generation it was set in and a count.
#[map]
static SILENT: LruPerCpuHashMap<SilentKey, SilentValue> =
    LruPerCpuHashMap::with_max_entries(MAX_SILENT, 0);

/// Advances the file generation: every silence is void from now on.
#[inline(always)]
pub(crate) fn advance() {
    if let Some(generation) = FILE_GEN.get_ptr_mut(0) {
        // SAFETY: the map's own value; an atomic add (BPF's `lock xadd`), as every CPU may
        // advance it.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                generation, 1,
            )
        };
    }
}

/// The current file generation.
#[inline(always)]
pub(crate) fn generation() -> u64 {
    match FILE_GEN.get_ptr(0) {
        // SAFETY: the map's own value, read once.
        Some(generation) => unsafe { core::ptr::read_volatile(generation) },
        None => 0,
    }
}

/// The identity (`s_dev`, `i_ino`) of the directory holding `file`'s dentry; (0, 0) when it
/// cannot be read (such an open is never silenced).
#[inline(always)]
pub(crate) fn parent_dir(file: *const u8) -> (u32, u64) {
    let at = offset!(file_path) + offset!(path_dentry);
    let identity = || -> Result<(u32, u64), i32> {
        let dentry: *const u8 = read(file, at)?;
        let parent: *const u8 = read(dentry, offset!(dentry_parent))?;
        let inode: *const u8 = read(parent, offset!(dentry_inode))?;
        let ino: u64 = read(inode, offset!(inode_ino))?;
        let sb: *const u8 = read(parent, offset!(dentry_sb))?;
        let dev: u32 = read(sb, offset!(sb_dev))?;
        Ok((dev, ino))
    };
    identity().unwrap_or((0, 0))
}

/// Counts the open under `key` and returns true when the agent silenced `key` in generation
/// `generation`; false when the open must be sent.
#[inline(always)]
pub(crate) fn silenced(key: &SilentKey, generation: u64) -> bool {
    let Some(value) = SILENT.get_ptr_mut(key) else {
        return false;
    };
    // SAFETY: this CPU's value of the entry: no other program writes it meanwhile.
    unsafe {
        if (*value).generation != generation {
            return false;
        }
        (*value).count += 1;
    }
    true
}
