//! `seam workload ...`: small, real network workloads that first move themselves into a cgroup.
//! The demo, the integration tests and the benchmark use them, so every component is exercised by
//! real processes in real tenant cgroups.
pub(crate) mod file;
pub(crate) mod landlock;
use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::Subcommand;

/// A workload to run.
#[derive(Debug, Subcommand)]
pub(crate) enum Workload {
    /// Listen on TCP, write the bound port to --port-file, accept --count connections.
    TcpListen {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Keep every accepted connection open, after its client closed, until this file
        /// exists (at most 60 s).
        #[arg(long, value_name = "FILE")]
        hold_file: Option<PathBuf>,
    },
    /// Connect over TCP --count times, send a line, close.
    TcpConnect {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Every connect is expected to be refused (nothing listens): succeed only then.
        #[arg(long)]
        expect_refused: bool,
        /// Pause this long between connections.
        #[arg(long, value_name = "MS", default_value_t = 0)]
        interval_ms: u64,
        /// Keep each connection open, after sending, until this file exists (at most 60 s).
        #[arg(long, value_name = "FILE")]
        hold_file: Option<PathBuf>,
    },
    /// Bind UDP, write the port to --port-file, receive --count datagrams.
    UdpRecv {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Send --count UDP datagrams from one unconnected socket to each of --spread consecutive
    /// ports starting at --addr's port.
    UdpSend {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value_t = 1)]
        spread: u16,
        /// connect() the socket to --addr first and send() on it (a connected UDP socket).
        #[arg(long)]
        connected: bool,
    },
    /// Benchmark loop of one cheap syscall: `getppid`, or `openat`+`close` of /etc/hostname;
    /// prints {"iterations","elapsed_ns","ns_per_iter"}.
    SyscallLoop {
        #[arg(long, value_enum)]
        syscall: LoopSyscall,
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
    },
    /// One file syscall (see `workload_file`).
    FileOp {
        #[arg(long, value_enum)]
        op: crate::testkit::workload::file::FileOpKind,
        #[arg(long)]
        path: PathBuf,
        /// Open this directory and make the call relative to it (openat/unlinkat/renameat).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rename target.
        #[arg(long)]
        to: Option<PathBuf>,
        /// The call is expected to fail with this errno (e.g. 13 for EACCES).
        #[arg(long)]
        expect_errno: Option<i32>,
        /// Confine this workload's file reads to this directory with Landlock first.
        #[arg(long, value_name = "DIR")]
        landlock_allow_read: Option<PathBuf>,
    },
    /// Benchmark loop: listener and client in this process, --iterations connect+accept+close
    /// rounds over 127.0.0.1; prints {"iterations","elapsed_ns","ns_per_iter"}.
    TcpLoop {
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
    },
    /// Append records to a sealed store until --count or --stop-file; JSON progress lines.
    StoreAppend(crate::testkit::store::AppendArgs),
    /// Read a sealed store back: JSON records (--records) and a report of every issue.
    StoreRead(crate::testkit::store::ReadArgs),
    /// Store seal throughput against ring's raw AEAD, read throughput; prints JSON.
    StoreBench(crate::testkit::store::BenchArgs),
    /// Benchmark loops, the floor's empty programs and stage measurements (`cargo xtask bench`).
    #[command(subcommand)]
    Bench(crate::testkit::bench::BenchWorkload),
    /// Create a directory with marker files, a copy of /bin/true and symlinks (seam chaos).
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
    /// Remove a directory and everything in it (seam chaos cleanup).
    Remove {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write a synthetic history of realistic spans (replay benchmark); prints JSON.
    HistoryFill(crate::testkit::history::FillArgs),
    /// Run another program in the cgroup (exec: it keeps this pid), e.g. a test application.
    Exec {
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

/// The syscall a `syscall-loop` repeats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LoopSyscall {
    /// A syscall no Seam probe looks at: measures the node-wide syscall tracepoint tax.
    Getppid,
    /// openat+close: what a file probe costs per open in a tenant cgroup.
    Openat,
}

/// Moves the calling process into `cgroup` (path relative to the cgroup2 mount), names it, and
/// drops to `uid` (same gid) when given.
pub(crate) fn enter(
    cgroup_root: &Path,
    cgroup: Option<&str>,
    comm: Option<&str>,
    uid: Option<u32>,
) -> Result<()> {
    if let Some(cgroup) = cgroup {
        let procs = cgroup_root.join(cgroup).join("cgroup.procs");
        fs::write(&procs, std::process::id().to_string())
            .with_context(|| format!("cannot join cgroup: write {}", procs.display()))?;
    }
    if let Some(comm) = comm {
        let name = std::ffi::CString::new(comm).context("comm contains a NUL byte")?;
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
    if let Some(uid) = uid {
        // SAFETY: plain syscalls; failure is reported.
        let rc =
            unsafe { libc::setgroups(0, std::ptr::null()) | libc::setgid(uid) | libc::setuid(uid) };
        if rc != 0 {
            anyhow::bail!(
                "cannot drop to uid {uid}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Waits until `file` exists, for at most a minute (a test that forgot it does not leave the
/// workload behind for long).
fn hold_until(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn write_port(path: &Path, port: u16) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, port.to_string()).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a workload to completion.
pub(crate) fn run(workload: &Workload) -> Result<()> {
    match workload {
        Workload::TcpListen {
            addr,
            port_file,
            count,
            hold_file,
        } => {
            let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
            write_port(port_file, listener.local_addr()?.port())?;
            let mut held = Vec::new();
            for _ in 0..*count {
                let (mut stream, _) = listener.accept().context("accept")?;
                stream.set_read_timeout(Some(TIMEOUT))?;
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf);
                if hold_file.is_some() {
                    held.push(stream);
                }
            }
            if let Some(file) = hold_file {
                hold_until(file);
            }
        }
        Workload::TcpConnect {
            addr,
            count,
            expect_refused,
            interval_ms,
            hold_file,
        } => {
            for n in 0..*count {
                if n > 0 && *interval_ms > 0 {
                    std::thread::sleep(Duration::from_millis(*interval_ms));
                }
                let result = TcpStream::connect_timeout(addr, TIMEOUT);
                if *expect_refused {
                    match result {
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                        Err(e) => anyhow::bail!("connect {addr}: {e}, expected refused"),
                        Ok(_) => anyhow::bail!("connect {addr} succeeded, expected refused"),
                    }
                }
                let mut stream = result.with_context(|| format!("connect {addr}"))?;
                stream.write_all(b"hello from seam workload\n")?;
                if let Some(file) = hold_file {
                    hold_until(file);
                }
            }
        }
        Workload::UdpRecv {
            addr,
            port_file,
            count,
        } => {
            let socket = UdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
            socket.set_read_timeout(Some(TIMEOUT))?;
            write_port(port_file, socket.local_addr()?.port())?;
            let mut buf = [0u8; 2048];
            for _ in 0..*count {
                socket.recv_from(&mut buf).context("recv_from")?;
            }
        }
        Workload::UdpSend {
            addr,
            count,
            spread,
            connected,
        } => {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            let socket = UdpSocket::bind(bind)?;
            if *connected {
                socket
                    .connect(addr)
                    .with_context(|| format!("connect {addr}"))?;
                for _ in 0..*count {
                    socket
                        .send(b"hello from seam workload\n")
                        .with_context(|| format!("send to {addr}"))?;
                }
                return Ok(());
            }
            for offset in 0..*spread {
                let mut to = *addr;
                to.set_port(addr.port().wrapping_add(offset));
                for _ in 0..*count {
                    socket
                        .send_to(b"hello from seam workload\n", to)
                        .with_context(|| format!("send_to {to}"))?;
                }
            }
        }
        Workload::TcpLoop { iterations } => tcp_loop(*iterations)?,
        Workload::SyscallLoop {
            syscall,
            iterations,
        } => syscall_loop(*syscall, *iterations)?,
        Workload::FileOp {
            op,
            path,
            dir,
            to,
            expect_errno,
            landlock_allow_read,
        } => {
            if let Some(allowed) = landlock_allow_read {
                crate::testkit::workload::landlock::allow_reads_only_beneath(allowed)?;
            }
            crate::testkit::workload::file::run(
                *op,
                path,
                dir.as_deref(),
                to.as_deref(),
                *expect_errno,
            )?
        }
        Workload::Bench(bench) => crate::testkit::bench::run(bench)?,
        Workload::StoreAppend(args) => crate::testkit::store::append(args)?,
        Workload::StoreRead(args) => crate::testkit::store::read(args)?,
        Workload::StoreBench(args) => crate::testkit::store::bench(args)?,
        Workload::Prepare {
            dir,
            files,
            binary,
            symlinks,
        } => {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            for name in files {
                fs::write(dir.join(name), b"seam chaos marker\n")
                    .with_context(|| format!("create {name}"))?;
            }
            if let Some(name) = binary {
                let to = dir.join(name);
                fs::copy("/bin/true", &to).context("copy /bin/true")?;
                use std::os::unix::fs::PermissionsExt as _;
                fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
            }
            for link in symlinks {
                let (name, target) = link.split_once('=').context("--symlink is NAME=TARGET")?;
                std::os::unix::fs::symlink(target, dir.join(name))
                    .with_context(|| format!("symlink {name}"))?;
            }
        }
        Workload::Remove { dir } => {
            fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        Workload::HistoryFill(args) => crate::testkit::history::fill(args)?,
        Workload::Exec { command } => {
            use std::os::unix::process::CommandExt as _;
            let (program, args) = command.split_first().context("nothing to run")?;
            let error = std::process::Command::new(program).args(args).exec();
            return Err(error).with_context(|| format!("cannot run {program}"));
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_loop(iterations: u32, elapsed: Duration) {
    let elapsed = elapsed.as_nanos();
    println!(
        "{}",
        serde_json::json!({
            "iterations": iterations,
            "elapsed_ns": elapsed as u64,
            "ns_per_iter": elapsed as f64 / f64::from(iterations.max(1)),
        })
    );
}

fn syscall_loop(syscall: LoopSyscall, iterations: u32) -> Result<()> {
    let path = c"/etc/hostname";
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: plain syscalls; the fd is closed right away.
        unsafe {
            match syscall {
                LoopSyscall::Getppid => {
                    libc::getppid();
                }
                LoopSyscall::Openat => {
                    let fd = libc::openat(libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY);
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
            }
        }
    }
    print_loop(iterations, start.elapsed());
    Ok(())
}

fn tcp_loop(iterations: u32) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // The server closes first, so TIME_WAIT lands on the listener's side and the client's
    // ephemeral ports are never exhausted across rounds (that would dwarf what is measured).
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..iterations {
            let (stream, _) = listener.accept()?;
            drop(stream);
        }
        Ok(())
    });
    let start = Instant::now();
    let mut eof = [0u8; 1];
    for _ in 0..iterations {
        let mut stream = TcpStream::connect(addr)?;
        let _ = stream.read(&mut eof)?;
        drop(stream);
    }
    server
        .join()
        .map_err(|_| anyhow::anyhow!("accept thread panicked"))??;
    print_loop(iterations, start.elapsed());
    Ok(())
}
