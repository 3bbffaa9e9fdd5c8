//! `seam workload file-op ...`: one file syscall, exactly as a tenant process would make it
//! (openat with a dirfd, unlinkat, renameat, truncate), so tests exercise the real hooks.
use std::{
    ffi::CString,
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

/// The syscall to make.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FileOpKind {
    /// openat(O_RDONLY) and read.
    Read,
    /// openat(O_WRONLY) and write.
    Write,
    /// openat(O_CREAT|O_EXCL|O_WRONLY).
    Create,
    /// unlinkat.
    Unlink,
    /// renameat to --to.
    Rename,
    /// truncate to 0 bytes.
    Truncate,
}

fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).context("path contains a NUL byte")
}

/// Runs one file operation on `path`, relative to `dir` (opened as a dirfd) when given.
/// `expect_errno` makes failure the expected outcome (the errno must match).
pub(crate) fn run(
    op: FileOpKind,
    path: &Path,
    dir: Option<&Path>,
    to: Option<&Path>,
    expect_errno: Option<i32>,
) -> Result<()> {
    let dir_file = dir
        .map(|d| std::fs::File::open(d).with_context(|| format!("open dir {}", d.display())))
        .transpose()?;
    let dirfd = dir_file.as_ref().map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    let c_path = cstring(path)?;
    // SAFETY: plain syscalls on NUL-terminated paths owned for the duration of the call.
    let rc = unsafe {
        match op {
            FileOpKind::Read | FileOpKind::Write | FileOpKind::Create => {
                let flags = match op {
                    FileOpKind::Read => libc::O_RDONLY,
                    FileOpKind::Write => libc::O_WRONLY,
                    _ => libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                };
                let fd = libc::openat(dirfd, c_path.as_ptr(), flags | libc::O_CLOEXEC, 0o644);
                if fd >= 0 {
                    let mut byte = [0u8; 1];
                    match op {
                        FileOpKind::Read => {
                            libc::read(fd, byte.as_mut_ptr().cast(), 1);
                        }
                        _ => {
                            libc::write(fd, b"x".as_ptr().cast(), 1);
                        }
                    }
                    libc::close(fd);
                }
                fd
            }
            FileOpKind::Unlink => libc::unlinkat(dirfd, c_path.as_ptr(), 0),
            FileOpKind::Rename => {
                let Some(to) = to else {
                    bail!("--to is required for rename")
                };
                let c_to = cstring(to)?;
                libc::renameat(dirfd, c_path.as_ptr(), dirfd, c_to.as_ptr())
            }
            FileOpKind::Truncate => libc::truncate(c_path.as_ptr(), 0),
        }
    };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    match (rc < 0, expect_errno) {
        (false, None) => Ok(()),
        (true, Some(expected)) if errno == expected => Ok(()),
        (true, _) => bail!("{op:?} {} failed: errno {errno}", path.display()),
        (false, Some(expected)) => bail!(
            "{op:?} {} succeeded, expected errno {expected}",
            path.display()
        ),
    }
}
