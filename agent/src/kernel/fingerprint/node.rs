//! Facts about this node that decide what Seam can see: kernel, BTF, cgroup mode, LSMs.
use std::fs;

use serde::{Deserialize, Serialize};

use crate::kernel::probes::btf::VMLINUX_BTF;

/// `uname(2)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KernelInfo {
    /// e.g. `6.12.111+deb12-cloud-amd64`.
    pub release: String,
    /// The build string, e.g. `#1 SMP PREEMPT_DYNAMIC Debian 6.12.111-1~deb12u1 (2026-09-30)`.
    pub build: String,
    /// e.g. `x86_64`.
    pub arch: String,
}

/// The kernel's own BTF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BtfInfo {
    pub present: bool,
    pub path: String,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// How cgroups are mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CgroupMode {
    /// cgroup v2 only.
    Unified,
    /// v1 controllers and a v2 hierarchy side by side.
    Hybrid,
    /// v1 only: Seam cannot attribute by cgroup v2 id.
    Legacy,
    /// No cgroup filesystem mounted.
    None,
}

/// cgroup mode and the v2 mount Seam attaches to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CgroupInfo {
    pub mode: CgroupMode,
    #[serde(default)]
    pub v2_mount: Option<String>,
}

/// Active LSMs (`/sys/kernel/security/lsm`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LsmInfo {
    /// In the kernel's order; None when securityfs could not be read.
    #[serde(default)]
    pub active: Option<Vec<String>>,
    /// Whether `bpf` is among them (BPF LSM programs can only run then).
    pub bpf: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn field(bytes: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = bytes
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(super) fn kernel() -> KernelInfo {
    // SAFETY: uname fills the struct; a zeroed utsname is valid input.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return KernelInfo {
            release: "unknown".into(),
            build: "unknown".into(),
            arch: std::env::consts::ARCH.into(),
        };
    }
    KernelInfo {
        release: field(&uts.release),
        build: field(&uts.version),
        arch: field(&uts.machine),
    }
}

pub(super) fn btf() -> BtfInfo {
    match fs::read(VMLINUX_BTF) {
        Ok(bytes) => BtfInfo {
            present: true,
            path: VMLINUX_BTF.into(),
            bytes: Some(bytes.len() as u64),
            sha256: Some(super::sha256_hex(&bytes)),
        },
        Err(_) => BtfInfo {
            present: false,
            path: VMLINUX_BTF.into(),
            bytes: None,
            sha256: None,
        },
    }
}

/// Classifies the cgroup mounts of a mountinfo text.
pub(crate) fn cgroup_from_mountinfo(mountinfo: &str) -> CgroupInfo {
    let v2_mount = crate::kernel::preflight::find_cgroup2_mount(mountinfo);
    let v1 = mountinfo.lines().any(|line| {
        line.split_once(" - ")
            .and_then(|(_, right)| right.split_whitespace().next())
            == Some("cgroup")
    });
    let mode = match (v1, v2_mount.is_some()) {
        (false, true) => CgroupMode::Unified,
        (true, true) => CgroupMode::Hybrid,
        (true, false) => CgroupMode::Legacy,
        (false, false) => CgroupMode::None,
    };
    CgroupInfo {
        mode,
        v2_mount: v2_mount.map(|p| p.display().to_string()),
    }
}

pub(super) fn cgroup() -> CgroupInfo {
    cgroup_from_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The active LSMs (mounting securityfs if needed, as the loader does).
pub(super) fn lsm() -> LsmInfo {
    match crate::kernel::probes::lsm_list::active() {
        Ok(active) => LsmInfo {
            bpf: active.iter().any(|l| l == "bpf"),
            active: Some(active),
            error: None,
        },
        Err(error) => LsmInfo {
            active: None,
            bpf: false,
            error: Some(error.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_modes_from_mountinfo() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
33 31 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let info = cgroup_from_mountinfo(hybrid);
        assert_eq!(info.mode, CgroupMode::Hybrid);
        assert_eq!(info.v2_mount.as_deref(), Some("/sys/fs/cgroup/unified"));
        let unified = "33 1 0:31 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_from_mountinfo(unified).mode, CgroupMode::Unified);
        let legacy = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup_from_mountinfo(legacy).mode, CgroupMode::Legacy);
        assert_eq!(cgroup_from_mountinfo("").mode, CgroupMode::None);
    }
}
