//! File events: a syscall on a path, with the path resolved in the kernel.
//!
//! A path is sent as its components, leaf first, each NUL-terminated (the order of the kernel's
//! dentry walk); the agent reverses them. When the kernel resolved the object itself (an open
//! that returned an fd, an exec'd binary) that is the whole, canonical path. Otherwise (a failed
//! open, unlink, rename, truncate) the components are those of the base directory (the dirfd,
//! the cwd, or the task's root for absolute paths) and the user-supplied string follows.

/// Bytes of path data a [`FileData`] can carry (both paths of a rename together).
pub const FILE_BUF: usize = 8192;
/// Bytes one path may take before it is truncated (leaf components are kept).
pub const PATH_LIMIT: usize = 4096;
/// Most directory levels (and mount crossings) the kernel walks before truncating.
pub const MAX_PATH_DEPTH: u32 = 96;

/// What was done to the file(s).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSyscall {
    /// open/openat/openat2/creat: read, write or create follows from the flags and f_mode.
    Open = 1,
    Unlink = 2,
    /// Two paths: from, to.
    Rename = 3,
    Truncate = 4,
    /// A binary executed (sched_process_exec).
    Exec = 5,
}

impl FileSyscall {
    pub fn from_u8(raw: u8) -> Option<Self> {
        Some(match raw {
            1 => Self::Open,
            2 => Self::Unlink,
            3 => Self::Rename,
            4 => Self::Truncate,
            5 => Self::Exec,
            _ => return None,
        })
    }
}

/// How one path in [`FileData::buf`] is laid out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PathMeta {
    /// Bytes of NUL-terminated components (leaf first) resolved by the kernel.
    pub base_len: u16,
    /// Bytes of the user-supplied path (NUL included), 0 when the kernel resolved the object.
    pub user_len: u16,
    /// 1 when the walk hit [`MAX_PATH_DEPTH`] or [`PATH_LIMIT`]: leading components are missing.
    pub truncated: u8,
    /// 1 when the components are the object itself; 0 when they are the base directory of the
    /// user-supplied path.
    pub resolved: u8,
    /// 1 when the walk ended at the global root; 0 when a mount could not be placed.
    pub rooted: u8,
    pub _pad: u8,
}

/// Fixed part of a file event (the path bytes follow in `buf`; only the used part is sent).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileHead {
    /// The syscall's return value (an fd, 0, or -errno).
    pub ret: i64,
    /// open flags as passed (open family), or 0.
    pub flags: u32,
    /// `file->f_mode` of an opened file (FMODE_READ/WRITE/CREATED), or 0.
    pub f_mode: u32,
    /// A [`FileSyscall`].
    pub op: u8,
    /// Number of paths (1, or 2 for a rename).
    pub npaths: u8,
    pub _pad: [u8; 6],
    pub paths: [PathMeta; 2],
    /// The directory holding an opened file, by identity (`d_parent`'s `i_ino` and `s_dev`), on
    /// tiers that can silence repeats; 0 elsewhere. With [`FileHead::generation`] and the caller's
    /// cgroup it names the [`SilentKey`] the agent may silence.
    pub dir_ino: u64,
    /// The file generation ([`MAP_FILE_GEN`]) when the probe looked: silences set for another
    /// generation are void.
    pub generation: u64,
    pub dir_dev: u32,
    /// The [`AccessClass`] of an opened file (from `f_mode`).
    pub class: u8,
    pub _pad2: [u8; 3],
}

/// Name of the array (one `u64`) holding the file generation. It grows with every successful
/// rename, directory removal and mount change on the node (whatever the cgroup): the only
/// operations that can give a directory another canonical path (or its identity to another
/// directory). A silence is valid only in the generation it was set in.
pub const MAP_FILE_GEN: &str = "FILE_GEN";
/// Name of the per-CPU LRU hash [`SilentKey`] -> [`SilentValue`]: repeated opens the agent
/// has seen once and judged, counted in the kernel instead of sent.
pub const MAP_SILENT: &str = "SILENT";
/// Capacity of [`MAP_SILENT`] (LRU: a forgotten key costs one event).
pub const MAX_SILENT: u32 = 16_384;

/// What an open did, as far as rules can tell apart repeats: the [`FileSyscall::Open`]
/// classes of `f_mode`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessClass {
    Read = 1,
    Write = 2,
    Create = 3,
}

impl AccessClass {
    /// The class of an opened file's `f_mode` (created, else written, else read).
    pub fn of(f_mode: u32) -> Self {
        if f_mode & fmode::CREATED != 0 {
            Self::Create
        } else if f_mode & fmode::WRITE != 0 {
            Self::Write
        } else {
            Self::Read
        }
    }
}

/// Opens of files in one directory, by one cgroup, of one [`AccessClass`]: what the agent
/// silences once it has judged the first such open.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SilentKey {
    pub cgroup_id: u64,
    pub dir_ino: u64,
    pub dir_dev: u32,
    pub class: u8,
    pub _pad: [u8; 3],
}

/// Per CPU: the generation the silence was set in, and the opens counted since.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SilentValue {
    pub generation: u64,
    pub count: u64,
}

const _: () = assert!(size_of::<FileHead>() == 8 + 4 + 4 + 1 + 1 + 6 + 16 + 8 + 8 + 4 + 1 + 3);
const _: () = assert!(size_of::<SilentKey>() == 8 + 8 + 4 + 1 + 3);
const _: () = assert!(size_of::<SilentValue>() == 16);

/// The whole file event payload as built in the probes' scratch space.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileData {
    pub head: FileHead,
    pub buf: [u8; FILE_BUF + PATH_LIMIT],
}

/// `file->f_mode` bits the agent reads.
pub mod fmode {
    pub const READ: u32 = 0x1;
    pub const WRITE: u32 = 0x2;
    pub const CREATED: u32 = 0x100000;
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] data without pointers; every bit pattern is valid.
    unsafe impl aya::Pod for PathMeta {}
    unsafe impl aya::Pod for FileHead {}
    unsafe impl aya::Pod for SilentKey {}
    unsafe impl aya::Pod for SilentValue {}
}
