//! What the kernel says about eBPF objects, read with the bpf(2) syscall itself (no bpftool on
//! the machines): the programs attached to a cgroup, the programs and maps a process holds,
//! program and map names, and how many keys a hash map has. Used to check that an agent that
//! was killed left nothing attached and that its maps do not grow.
use std::{collections::BTreeSet, fs, os::fd::AsRawFd, path::Path};

const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

/// The cgroup attach types Seam uses (and their neighbours): inet ingress/egress, sock create,
/// connect4/6, sendmsg4/6, recvmsg4/6 and friends.
const CGROUP_ATTACH_TYPES: std::ops::RangeInclusive<u32> = 0..=40;

/// `bpf(cmd, attr, size)`; the attribute is a zero-padded buffer of u64 words.
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a valid, writable buffer of the size passed; the kernel reads and
    // writes at most that many bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(fd: i64) -> std::os::fd::OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) }
}

/// Ids of the programs attached directly to the cgroup directory `cgroup` (every cgroup
/// attach type the kernel knows; types it does not know are skipped).
pub fn cgroup_prog_ids(cgroup: &Path) -> Vec<u32> {
    let dir = fs::File::open(cgroup).unwrap_or_else(|e| panic!("open {}: {e}", cgroup.display()));
    let mut all = Vec::new();
    for attach_type in CGROUP_ATTACH_TYPES {
        let mut ids = [0u32; 256];
        let mut attr = [0u64; 16];
        attr[0] = u64::from(dir.as_raw_fd() as u32) | (u64::from(attach_type) << 32);
        attr[2] = ids.as_mut_ptr() as u64;
        attr[3] = ids.len() as u64;
        if bpf(BPF_PROG_QUERY, &mut attr).is_err() {
            continue;
        }
        let count = (attr[3] & 0xffff_ffff) as usize;
        all.extend_from_slice(&ids[..count.min(ids.len())]);
    }
    all
}

/// A loaded program's name (the kernel keeps the first 15 bytes), `None` once it is gone.
pub fn prog_name(id: u32) -> Option<String> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = owned_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).ok()?);
    // struct bpf_prog_info: name[16] at offset 64.
    let mut info = [0u8; 256];
    let name = obj_name(&fd, &mut info, 64)?;
    Some(name)
}

/// A map's name, `None` once it is gone.
pub fn map_name(id: u32) -> Option<String> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = owned_fd(bpf(BPF_MAP_GET_FD_BY_ID, &mut attr).ok()?);
    // struct bpf_map_info: name[16] at offset 24.
    let mut info = [0u8; 256];
    obj_name(&fd, &mut info, 24)
}

fn obj_name(fd: &std::os::fd::OwnedFd, info: &mut [u8; 256], offset: usize) -> Option<String> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32) | ((info.len() as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).ok()?;
    let name = &info[offset..offset + 16];
    let end = name.iter().position(|&b| b == 0).unwrap_or(16);
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// Number of keys in hash map `id` whose keys are 8 bytes (e.g. TENANT_CGROUPS).
pub fn map_len_u64_keys(id: u32) -> Option<usize> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = owned_fd(bpf(BPF_MAP_GET_FD_BY_ID, &mut attr).ok()?);
    let mut count = 0;
    let mut key = 0u64;
    let mut next = 0u64;
    let mut first = true;
    loop {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(fd.as_raw_fd() as u32);
        attr[1] = if first { 0 } else { &key as *const u64 as u64 };
        attr[2] = &mut next as *mut u64 as u64;
        if bpf(BPF_MAP_GET_NEXT_KEY, &mut attr).is_err() {
            return Some(count);
        }
        first = false;
        key = next;
        count += 1;
        if count > 1_000_000 {
            return Some(count);
        }
    }
}

/// `(prog ids, map ids)` referenced by the descriptors process `pid` holds (programs, links
/// and maps, from /proc/<pid>/fdinfo).
pub fn held_by(pid: u32) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let (mut progs, mut maps) = (BTreeSet::new(), BTreeSet::new());
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (progs, maps);
    };
    for entry in entries.flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            let mut parts = line.split(':');
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(id) = value.trim().parse::<u32>() else {
                continue;
            };
            match key {
                "prog_id" => {
                    progs.insert(id);
                }
                "map_id" => {
                    maps.insert(id);
                }
                _ => {}
            }
        }
    }
    (progs, maps)
}

/// The id of the map named `name` that process `pid` holds.
pub fn held_map(pid: u32, name: &str) -> Option<u32> {
    held_by(pid)
        .1
        .into_iter()
        .find(|&id| map_name(id).as_deref() == Some(name))
}

/// Prog ids held by any process on the machine.
pub fn progs_held_by_any_process() -> BTreeSet<u32> {
    let mut all = BTreeSet::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return all;
    };
    for entry in entries.flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            all.extend(held_by(pid).0);
        }
    }
    all
}

/// Entries under the BPF filesystem (pinned objects) whose name mentions `needle`.
pub fn pinned(needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/bpf")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().contains(needle) {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}
