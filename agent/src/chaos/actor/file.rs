//! `file-op`: one file syscall, exactly as a tenant process would make it (openat with a dirfd,
//! unlinkat, renameat, truncate), so the real hooks see it.
use std::{
    ffi::CString,
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use clap::ValueEnum;

use super::ActorError;

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

#[derive(Debug, clap::Args)]
pub(crate) struct FileOpArgs {
    #[arg(long, value_enum)]
    pub op: FileOpKind,
    #[arg(long)]
    pub path: PathBuf,
    /// Open this directory and make the call relative to it (openat/unlinkat/renameat).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rename target.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// The call is expected to fail with this errno (e.g. 13 for EACCES).
    #[arg(long)]
    pub expect_errno: Option<i32>,
}

fn cstring(path: &Path) -> Result<CString, ActorError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| ActorError::Nul {
        what: "path",
        text: path.display().to_string(),
    })
}

/// Runs the file operation on `--path`, relative to `--dir` (opened as a dirfd) when given;
/// `--expect-errno` makes failure the expected outcome (the errno must match).
pub(super) fn run(args: &FileOpArgs) -> Result<(), ActorError> {
    let FileOpArgs {
        op,
        path,
        dir,
        to,
        expect_errno,
    } = args;
    let op = *op;
    let dir_file = dir
        .as_ref()
        .map(|d| {
            std::fs::File::open(d).map_err(ActorError::io(format!("open dir {}", d.display())))
        })
        .transpose()?;
    let dirfd = dir_file.as_ref().map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    let c_path = cstring(path)?;
    let c_to = match (op, to) {
        (FileOpKind::Rename, Some(to)) => Some(cstring(to)?),
        (FileOpKind::Rename, None) => {
            return Err(ActorError::Usage("--to is required for rename".to_owned()));
        }
        _ => None,
    };
    // SAFETY: plain syscalls on NUL-terminated paths owned for the duration of the call.
    let rc = unsafe {
        match op {
            FileOpKind::Read | FileOpKind::Write | FileOpKind::Create => {
                open_and_touch(dirfd, &c_path, op)
            }
            FileOpKind::Unlink => libc::unlinkat(dirfd, c_path.as_ptr(), 0),
            FileOpKind::Rename => {
                let c_to = c_to.as_deref().unwrap_or(c_path.as_c_str());
                libc::renameat(dirfd, c_path.as_ptr(), dirfd, c_to.as_ptr())
            }
            FileOpKind::Truncate => libc::truncate(c_path.as_ptr(), 0),
        }
    };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let path = path.display();
    match (rc < 0, *expect_errno) {
        (false, None) => Ok(()),
        (true, Some(expected)) if errno == expected => Ok(()),
        (true, _) => Err(ActorError::Unexpected(format!(
            "{op:?} {path} failed: errno {errno}"
        ))),
        (false, Some(expected)) => Err(ActorError::Unexpected(format!(
            "{op:?} {path} succeeded, expected errno {expected}"
        ))),
    }
}

/// openat, then one byte read or written, then close; returns openat's result.
///
/// # Safety
/// `dirfd` is AT_FDCWD or an open directory.
unsafe fn open_and_touch(dirfd: libc::c_int, path: &CString, op: FileOpKind) -> libc::c_int {
    let flags = match op {
        FileOpKind::Read => libc::O_RDONLY,
        FileOpKind::Write => libc::O_WRONLY,
        _ => libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
    };
    // SAFETY: `path` is NUL-terminated; the fd is closed before returning.
    unsafe {
        let fd = libc::openat(dirfd, path.as_ptr(), flags | libc::O_CLOEXEC, 0o644);
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
}
