//! Once the probes are loaded and the listeners bound, `seam run` keeps only the capabilities
//! it still uses and drops the rest, in every thread: a compromised agent then cannot load
//! programs, mount, change users or load modules.
//!
//! Kept: `CAP_BPF` (map updates when tenant cgroups come and go; kernels before 6.5 check it on
//! every bpf() call; `CAP_SYS_ADMIN` instead where the kernel has no `CAP_BPF`),
//! `CAP_SYS_PTRACE` and `CAP_DAC_READ_SEARCH` (reading `/proc/<pid>/{exe,fd}` of any process,
//! to attribute processes and the senders of OTLP requests).
//!
//! Capabilities belong to threads, and the tokio runtime's threads exist by now, so the new
//! sets are applied by each thread itself: a real-time signal whose handler makes the raw
//! capset(2) call (async-signal-safe) is sent to every thread of the process, until
//! `/proc/self/task/*/status` shows every thread with the reduced sets. This is what libpsx
//! does for C programs; no maintained crate offers it for Rust.
use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Why the capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrivilegeError {
    /// The signal that carries the change to each thread could not be installed.
    #[error("cannot install the capability-drop signal handler: {0}")]
    Handler(#[source] std::io::Error),
    /// Some thread did not take the new sets in time.
    #[error(
        "thread {tid} still holds capabilities {held:#x} after the drop; Seam keeps running with \
         them (report this)"
    )]
    Straggler { tid: u32, held: u64 },
}

/// The sets every thread moves to (low and high 32 bits), read by the signal handler.
static KEEP_LO: AtomicU32 = AtomicU32::new(0);
static KEEP_HI: AtomicU32 = AtomicU32::new(0);

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

extern "C" fn apply(_: libc::c_int) {
    let lo = KEEP_LO.load(Ordering::SeqCst);
    let hi = KEEP_HI.load(Ordering::SeqCst);
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: capset(2) on the calling thread with valid pointers; a raw syscall is
    // async-signal-safe. A failure leaves this thread as it was, which the caller detects.
    unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
}

/// The capabilities `seam run` keeps, as a bit mask.
pub(crate) fn kept() -> u64 {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAP_BPF);
    let bpf = if last >= CAP_BPF {
        CAP_BPF
    } else {
        CAP_SYS_ADMIN
    };
    [CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, bpf]
        .into_iter()
        .fold(0, |mask, cap| mask | 1 << cap)
}

/// `CapEff` of thread `tid` of this process.
fn effective(tid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn threads() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Drops every capability but [`kept`] in every thread of this process; returns the kept set.
pub(crate) fn drop_unneeded() -> Result<u64, PrivilegeError> {
    let keep = kept();
    KEEP_LO.store(keep as u32, Ordering::SeqCst);
    KEEP_HI.store((keep >> 32) as u32, Ordering::SeqCst);
    let signal = libc::SIGRTMIN() + 4;
    // Real-time signals have no nix::Signal: installed through libc.
    // SAFETY: the handler only reads atomics and makes a raw syscall.
    let installed = unsafe {
        let mut raw: libc::sigaction = std::mem::zeroed();
        raw.sa_sigaction = apply as *const () as usize;
        raw.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut raw.sa_mask);
        libc::sigaction(signal, &raw, std::ptr::null_mut())
    };
    if installed != 0 {
        return Err(PrivilegeError::Handler(std::io::Error::last_os_error()));
    }
    let pid = std::process::id() as libc::pid_t;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pending: Vec<(u32, u64)> = threads()
            .into_iter()
            .filter_map(|tid| Some((tid, effective(tid)?)))
            .filter(|&(_, held)| held & !keep != 0)
            .collect();
        let Some(&(tid, held)) = pending.first() else {
            return Ok(keep);
        };
        if Instant::now() >= deadline {
            return Err(PrivilegeError::Straggler { tid, held });
        }
        for (tid, _) in pending {
            // SAFETY: tgkill to a thread of this very process.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid as libc::pid_t, signal) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_set_is_small() {
        let keep = kept();
        assert_eq!(keep.count_ones(), 3, "{keep:#x}");
        assert_ne!(keep & 1 << CAP_SYS_PTRACE, 0);
        assert_eq!(keep & 1 << 7, 0, "CAP_SETUID is dropped");
        assert_eq!(keep & 1 << 12, 0, "CAP_NET_ADMIN is dropped");
    }
}
