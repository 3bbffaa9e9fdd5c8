//! `seam workload --landlock-allow-read DIR ...`: the workload first confines its own file
//! reads to DIR with Landlock, so a read elsewhere is refused by an LSM *after* lookup and DAC.
//! The kernel matrix uses it to observe what each file tier reports for an LSM's refusal:
//! syscall tracepoints and fexit report it denied, kprobes (before the decision) as an access,
//! and BPF LSM (called after Landlock) not at all.
use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

use anyhow::{Context as _, Result, bail};

/// `LANDLOCK_ACCESS_FS_READ_FILE` (include/uapi/linux/landlock.h).
const ACCESS_FS_READ_FILE: u64 = 1 << 2;
/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: libc::c_long = 1;

/// `struct landlock_ruleset_attr` as of ABI 1 (the kernel accepts the short size).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Confines this process's file reads to `dir` (and below); everything else stays allowed.
pub(crate) fn allow_reads_only_beneath(dir: &Path) -> Result<()> {
    let attr = RulesetAttr {
        handled_access_fs: ACCESS_FS_READ_FILE,
    };
    // SAFETY: landlock_create_ruleset reads `size_of::<RulesetAttr>()` bytes of `attr`.
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if ruleset < 0 {
        bail!(
            "Landlock unavailable ({}): boot with landlock in lsm=",
            std::io::Error::last_os_error()
        );
    }
    let ruleset = ruleset as libc::c_int;
    let c_dir = CString::new(dir.as_os_str().as_bytes()).context("dir contains a NUL byte")?;
    // SAFETY: open(2) of a NUL-terminated path.
    let dir_fd = unsafe { libc::open(c_dir.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if dir_fd < 0 {
        bail!(
            "open {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    let rule = PathBeneathAttr {
        allowed_access: ACCESS_FS_READ_FILE,
        parent_fd: dir_fd,
    };
    // SAFETY: plain syscalls on fds this function owns and a packed attr it owns.
    let rc = unsafe {
        let added = libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        );
        if added == 0 && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 {
            libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32)
        } else {
            -1
        }
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: closing fds this function opened.
    unsafe {
        libc::close(dir_fd);
        libc::close(ruleset);
    }
    if rc != 0 {
        bail!("cannot apply the Landlock ruleset: {error}");
    }
    Ok(())
}
