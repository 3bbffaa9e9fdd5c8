//! Start-up checks with errors that say what to do: root, cgroup v2, tracefs, kernel BTF.
use std::{
    fs,
    path::{Path, PathBuf},
};

/// What is missing on this node for Seam to run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreflightError {
    /// Seam loads eBPF programs and attaches them to the root cgroup.
    #[error(
        "seam must run as root (or with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN); \
         re-run with sudo"
    )]
    NotRoot,
    /// No cgroup2 filesystem is mounted.
    #[error(
        "no cgroup v2 mount found in /proc/self/mountinfo; Seam attributes activity by cgroup v2 \
         id: mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified` or boot with \
         systemd.unified_cgroup_hierarchy=1"
    )]
    NoCgroup2,
    /// /proc/self/mountinfo could not be read.
    #[error("cannot read /proc/self/mountinfo: {0}")]
    MountInfo(#[source] std::io::Error),
    /// tracefs is not mounted and mounting it failed.
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}); mount it \
         with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    Tracefs(#[source] nix::Error),
}

/// True when the process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails with [`PreflightError::NotRoot`] unless running as root.
pub(crate) fn require_root() -> Result<(), PreflightError> {
    if is_root() {
        Ok(())
    } else {
        Err(PreflightError::NotRoot)
    }
}

/// Finds the cgroup2 mount point (never assumes /sys/fs/cgroup: hybrid hosts mount it at
/// /sys/fs/cgroup/unified).
pub(crate) fn cgroup2_mount() -> Result<PathBuf, PreflightError> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(PreflightError::MountInfo)?;
    find_cgroup2_mount(&mountinfo).ok_or(PreflightError::NoCgroup2)
}

/// Parses mountinfo text for the first cgroup2 mount point.
pub(crate) fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> ..."
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// mountinfo escapes spaces and a few other bytes as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(byte) => out.push(char::from(byte)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where tracefs normally lives.
pub(crate) const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs when it is not mounted; classic tracepoints need it.
pub(crate) fn ensure_tracefs() -> Result<(), PreflightError> {
    if Path::new(TRACEFS).join("events").exists() {
        return Ok(());
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(PreflightError::Tracefs)?;
    tracing::info!(path = TRACEFS, "mounted tracefs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_mountinfo() {
        let text = "\
25 1 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";
        assert_eq!(
            find_cgroup2_mount(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn no_cgroup2_and_escaped_paths() {
        assert_eq!(
            find_cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
        let text = "40 1 0:40 / /mnt/cg\\040two rw - cgroup2 none rw\n";
        assert_eq!(find_cgroup2_mount(text), Some(PathBuf::from("/mnt/cg two")));
    }
}
