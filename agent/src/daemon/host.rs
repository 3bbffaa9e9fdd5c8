//! The host's file systems when Seam runs in a container. Inside a pod, Seam sees its own
//! cgroup namespace and mounts: `/sys/fs/cgroup` is the pod's subtree and `/proc` may be the
//! container's. As Tetragon does, the host's cgroup2 root, procfs and BPF file system are
//! mounted into the container and named with `--cgroup-root`, `--procfs` and `--bpffs`.
use std::path::{Path, PathBuf};

use nix::sys::statfs::{BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, FsType, statfs};

/// Where the tenant filter map is pinned under `--bpffs`.
const PIN_DIR: &str = "seam";
/// The pinned tenant filter map's name.
const PIN_NAME: &str = "tenant_cgroups";

/// A host path that is not what its flag says.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    /// The path could not be examined.
    #[error("cannot examine {flag} {path}: {source}; mount the host's file system there")]
    Stat {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// The path is not a cgroup2 mount.
    #[error(
        "--cgroup-root {path} is not a cgroup v2 mount; mount the host's cgroup2 file system \
         there (e.g. hostPath /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)"
    )]
    NotCgroup2 { path: PathBuf },
    /// The path is not a BPF file system.
    #[error("--bpffs {path} is not a BPF file system; mount the host's /sys/fs/bpf there")]
    NotBpffs { path: PathBuf },
    /// The filter map could not be pinned.
    #[error("cannot pin the tenant filter map at {path}: {source}; check --bpffs is writable")]
    Pin {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn check(flag: &'static str, path: &Path, magic: FsType) -> Result<bool, HostError> {
    let stat = statfs(path).map_err(|source| HostError::Stat {
        flag,
        path: path.to_owned(),
        source,
    })?;
    Ok(stat.filesystem_type() == magic)
}

/// `--cgroup-root`, checked to be a cgroup2 mount.
pub(crate) fn cgroup_root(path: &Path) -> Result<PathBuf, HostError> {
    if check("--cgroup-root", path, CGROUP2_SUPER_MAGIC)? {
        Ok(path.to_owned())
    } else {
        Err(HostError::NotCgroup2 {
            path: path.to_owned(),
        })
    }
}

/// The tenant filter map pinned under `--bpffs` (so `bpftool map dump pinned
/// <bpffs>/seam/tenant_cgroups` shows which cgroups are watched); unpinned on drop.
pub(crate) struct Pinned(PathBuf);

impl Pinned {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), %error, "cannot unpin the tenant filter map");
        }
    }
}

/// Pins the map `name` of `ebpf` as `<bpffs>/seam/tenant_cgroups` (a pin left by an agent that
/// died is replaced).
pub(crate) fn pin_filter(ebpf: &aya::Ebpf, name: &str, bpffs: &Path) -> Result<Pinned, HostError> {
    if !check("--bpffs", bpffs, BPF_FS_MAGIC)? {
        return Err(HostError::NotBpffs {
            path: bpffs.to_owned(),
        });
    }
    let dir = bpffs.join(PIN_DIR);
    let path = dir.join(PIN_NAME);
    let pin_error = |source: Box<dyn std::error::Error + Send + Sync>| HostError::Pin {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| pin_error(Box::new(e)))?;
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "replaced a stale pin"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(pin_error(Box::new(e))),
    }
    let map = ebpf
        .map(name)
        .ok_or_else(|| pin_error(format!("map {name} is not in the probe object").into()))?;
    map.pin(&path).map_err(|e| pin_error(Box::new(e)))?;
    Ok(Pinned(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_root_must_be_cgroup2() {
        let dir = tempfile::tempdir().unwrap();
        let error = cgroup_root(dir.path()).unwrap_err();
        assert!(matches!(error, HostError::NotCgroup2 { .. }), "{error}");
        let error = cgroup_root(Path::new("/nonexistent/seam")).unwrap_err();
        assert!(error.to_string().contains("--cgroup-root"), "{error}");
        if let Ok(root) = crate::kernel::preflight::cgroup2_mount() {
            assert_eq!(cgroup_root(&root).unwrap(), root);
        }
    }
}
