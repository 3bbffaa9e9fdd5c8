//! The kernel's active LSMs. A BPF LSM program loads and attaches on any kernel built with
//! CONFIG_BPF_LSM, but only runs when `bpf` is in the active list (`lsm=` on the command line
//! or CONFIG_LSM): the kernel matrix caught 6.1 booted with `lsm=lockdown,yama` attaching every
//! LSM row and then seeing nothing. So LSM rows are only tried when `bpf` is listed.
use std::{
    fs,
    path::{Path, PathBuf},
};

const SECURITYFS: &str = "/sys/kernel/security";

/// Why the active LSMs are unknown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LsmListError {
    /// securityfs is not mounted and mounting it failed.
    #[error(
        "cannot mount securityfs at {SECURITYFS} ({0}); mount it with \
         `mount -t securityfs securityfs {SECURITYFS}`"
    )]
    Mount(#[source] nix::Error),
    /// The list could not be read (a kernel without CONFIG_SECURITY?).
    #[error("cannot read {path}: {source}; is the kernel built with CONFIG_SECURITY?")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The active LSMs in the kernel's order, mounting securityfs first when it is not mounted.
pub(crate) fn active() -> Result<Vec<String>, LsmListError> {
    let file = Path::new(SECURITYFS).join("lsm");
    if !file.exists() {
        nix::mount::mount(
            Some("securityfs"),
            SECURITYFS,
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(LsmListError::Mount)?;
    }
    let text = fs::read_to_string(&file).map_err(|source| LsmListError::Read {
        path: file.clone(),
        source,
    })?;
    Ok(text
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// None when `bpf` is an active LSM, else why LSM programs would not run.
pub(crate) fn bpf_inactive_reason(active: &Result<Vec<String>, LsmListError>) -> Option<String> {
    match active {
        Ok(list) if list.iter().any(|l| l == "bpf") => None,
        Ok(list) => Some(format!(
            "bpf is not an active LSM ({SECURITYFS}/lsm: {}): LSM programs would attach and \
             never run; boot with lsm=...,bpf to use them",
            list.join(",")
        )),
        Err(error) => Some(format!(
            "cannot tell whether bpf is an active LSM ({error}); LSM rows not used"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsm_rows_need_bpf_in_the_active_list() {
        assert_eq!(
            bpf_inactive_reason(&Ok(vec!["lockdown".into(), "bpf".into()])),
            None
        );
        let reason = bpf_inactive_reason(&Ok(vec!["lockdown".into(), "yama".into()])).unwrap();
        assert!(reason.contains("lockdown,yama"), "{reason}");
        let unknown = Err(LsmListError::Mount(nix::Error::EPERM));
        assert!(bpf_inactive_reason(&unknown).is_some_and(|r| r.contains("securityfs")));
    }
}
