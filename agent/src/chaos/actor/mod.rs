//! `seam chaos-actor` (hidden): the child processes `seam chaos` and `seam demo` start. Each
//! first moves itself into a tenant's cgroup and takes a process name, then makes one real
//! crossing (or prepares one) exactly as a tenant process would: listen, connect, send, one file
//! syscall, create or remove marker files, exec. The test harness's `seam workload` (testkit
//! builds only) runs the same actions through [`Action`] and [`Identity`].
mod file;
mod net;
#[cfg(test)]
mod tests;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use clap::Subcommand;
pub(crate) use file::FileOpArgs;
pub(crate) use net::{TcpConnectArgs, TcpListenArgs, UdpRecvArgs, UdpSendArgs};

use crate::kernel::preflight;

/// The hidden subcommand that runs an actor (see [`command`]).
pub(crate) const SUBCOMMAND: &str = "chaos-actor";

/// Why an actor failed: the parent reports the child's exit status; the message, with its
/// source chain, goes to the child's stderr.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActorError {
    /// The cgroup2 mount could not be found (the cgroup to join is relative to it).
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    /// The process could not move itself into the cgroup.
    #[error(
        "cannot join cgroup {cgroup} (write {}); check that the cgroup exists and that this \
         runs as root",
        procs.display()
    )]
    JoinCgroup {
        cgroup: String,
        procs: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A name or path holds a NUL byte, which no syscall accepts.
    #[error("{what} {text:?} contains a NUL byte; give it without one")]
    Nul { what: &'static str, text: String },
    /// An argument is missing or malformed.
    #[error("{0}")]
    Usage(String),
    /// A socket, file or process operation failed (the OS error is the source).
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The operation's outcome is not the one asked for (`--expect-refused`, `--expect-errno`).
    #[error("{0}")]
    Unexpected(String),
}

impl ActorError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Where the actor runs and under which name.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Identity {
    /// cgroup to join first, relative to the cgroup2 mount.
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Process name to take (comm).
    #[arg(long)]
    pub comm: Option<String>,
}

impl Identity {
    /// Moves the calling process into the cgroup and names it.
    pub(crate) fn enter(&self) -> Result<(), ActorError> {
        if let Some(cgroup) = &self.cgroup {
            let procs = preflight::cgroup2_mount()?
                .join(cgroup)
                .join("cgroup.procs");
            fs::write(&procs, std::process::id().to_string()).map_err(|source| {
                ActorError::JoinCgroup {
                    cgroup: cgroup.clone(),
                    procs,
                    source,
                }
            })?;
        }
        if let Some(comm) = &self.comm {
            let name = std::ffi::CString::new(comm.as_str()).map_err(|_| ActorError::Nul {
                what: "--comm",
                text: comm.clone(),
            })?;
            // SAFETY: PR_SET_NAME reads a NUL-terminated string (the kernel truncates to 16 bytes).
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        }
        Ok(())
    }
}

/// `seam chaos-actor [--cgroup C] [--comm N] ACTION ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct ActorArgs {
    #[command(flatten)]
    pub identity: Identity,
    #[command(subcommand)]
    pub action: Action,
}

/// One thing a tenant process does.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Listen on TCP, write the bound port to --port-file, accept --count connections.
    TcpListen(TcpListenArgs),
    /// Connect over TCP --count times, send a line, close.
    TcpConnect(TcpConnectArgs),
    /// Bind UDP, write the port to --port-file, receive --count datagrams.
    UdpRecv(UdpRecvArgs),
    /// Send --count UDP datagrams from one socket to each of --spread consecutive ports.
    UdpSend(UdpSendArgs),
    /// One file syscall: openat (read, write, create), unlinkat, renameat or truncate.
    FileOp(FileOpArgs),
    /// Create a directory with marker files, a copy of /bin/true and symlinks.
    Prepare {
        #[arg(long)]
        dir: PathBuf,
        /// A marker file to create in --dir; repeatable.
        #[arg(long = "file")]
        files: Vec<String>,
        /// Copy /bin/true into --dir under this name (executable).
        #[arg(long)]
        binary: Option<String>,
        /// NAME=TARGET: a symlink in --dir; repeatable.
        #[arg(long = "symlink")]
        symlinks: Vec<String>,
    },
    /// Remove a directory and everything in it.
    Remove {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run another program in the cgroup (exec: it keeps this pid).
    Exec {
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

/// `seam chaos-actor`: enters the identity, then runs the action to completion.
pub(crate) fn main(args: &ActorArgs) -> Result<(), ActorError> {
    args.identity.enter()?;
    run(&args.action)
}

/// Runs an action to completion (the process already entered its identity).
pub(crate) fn run(action: &Action) -> Result<(), ActorError> {
    match action {
        Action::TcpListen(args) => net::tcp_listen(args),
        Action::TcpConnect(args) => net::tcp_connect(args),
        Action::UdpRecv(args) => net::udp_recv(args),
        Action::UdpSend(args) => net::udp_send(args),
        Action::FileOp(args) => file::run(args),
        Action::Prepare {
            dir,
            files,
            binary,
            symlinks,
        } => prepare(dir, files, binary.as_deref(), symlinks),
        Action::Remove { dir } => {
            fs::remove_dir_all(dir).map_err(ActorError::io(format!("remove {}", dir.display())))
        }
        Action::Exec { command } => exec(command),
    }
}

/// A `seam chaos-actor` child of this very binary in `cgroup` named `comm`, with no stdin;
/// append the action and its arguments.
pub(crate) fn command(cgroup: &str, comm: &str) -> std::io::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([SUBCOMMAND, "--cgroup", cgroup, "--comm", comm])
        .stdin(Stdio::null());
    Ok(cmd)
}

fn prepare(
    dir: &Path,
    files: &[String],
    binary: Option<&str>,
    symlinks: &[String],
) -> Result<(), ActorError> {
    fs::create_dir_all(dir).map_err(ActorError::io(format!("create {}", dir.display())))?;
    for name in files {
        fs::write(dir.join(name), b"seam chaos marker\n")
            .map_err(ActorError::io(format!("create {name}")))?;
    }
    if let Some(name) = binary {
        use std::os::unix::fs::PermissionsExt as _;
        let to = dir.join(name);
        fs::copy("/bin/true", &to).map_err(ActorError::io("copy /bin/true"))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))
            .map_err(ActorError::io(format!("chmod {}", to.display())))?;
    }
    for link in symlinks {
        let (name, target) = link
            .split_once('=')
            .ok_or_else(|| ActorError::Usage(format!("--symlink {link:?} is not NAME=TARGET")))?;
        std::os::unix::fs::symlink(target, dir.join(name))
            .map_err(ActorError::io(format!("symlink {name}")))?;
    }
    Ok(())
}

fn exec(command: &[String]) -> Result<(), ActorError> {
    use std::os::unix::process::CommandExt as _;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| ActorError::Usage("exec: nothing to run".to_owned()))?;
    let error = Command::new(program).args(args).exec();
    Err(ActorError::Io {
        what: format!("cannot run {program}"),
        source: error,
    })
}

/// Waits until `file` exists, for at most a minute (a test that forgot it does not leave the
/// actor behind for long).
fn hold_until(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}
