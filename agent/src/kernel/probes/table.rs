//! The table of probes: what each needs, what it gives, and what replaces it when it cannot load.
//! For each capability the best tier (lowest rank) whose rows all load and attach is live
//! (kunai's compat table is the model: per-probe minimum kernel, priority, fallbacks).

/// What a probe contributes to isolation evidence.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Capability {
    /// Who called connect() and where to (TCP and connected UDP).
    ConnectIntent,
    /// Unconnected UDP destinations.
    UdpSend,
    /// Both ends of every TCP connection, each with its own cgroup.
    TcpEnds,
    /// The receiving end of UDP flows (the first packet from a peer).
    TrafficIn,
    /// The sending end of UDP flows (the first packet to a peer).
    TrafficOut,
    /// exec of tenant processes (pid, comm, uid, parent).
    ProcessExec,
    /// exit of tenant processes.
    ProcessExit,
    /// File access of tenant tasks (open, unlink, rename, truncate) with kernel-resolved paths.
    FileAccess,
}

impl Capability {
    /// Capabilities without which Seam cannot prove network isolation: start-up fails.
    pub(crate) const REQUIRED: [Capability; 2] = [Capability::ConnectIntent, Capability::TcpEnds];

    /// Every capability, in table order.
    pub(crate) const ALL: [Capability; 8] = [
        Capability::ConnectIntent,
        Capability::UdpSend,
        Capability::TcpEnds,
        Capability::TrafficIn,
        Capability::TrafficOut,
        Capability::ProcessExec,
        Capability::ProcessExit,
        Capability::FileAccess,
    ];
}

/// How a probe attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    /// cgroup_sock_addr at the root cgroup; the name is the attach type (connect4, ...).
    CgroupSockAddr,
    /// cgroup_skb at the root cgroup.
    CgroupSkb { ingress: bool },
    /// BTF-enabled raw tracepoint (`tp_btf/<name>`).
    TpBtf(&'static str),
    /// Classic tracepoint `<category>/<name>` (needs tracefs).
    TracePoint(&'static str, &'static str),
    /// BPF LSM hook (`lsm/<hook>`): needs `bpf` in the kernel's active LSM list.
    Lsm(&'static str),
    /// fentry on a kernel function (BTF and ftrace direct calls).
    FEntry(&'static str),
    /// fexit on a kernel function: its arguments and its return value.
    FExit(&'static str),
    /// kprobe on a kernel function.
    KProbe(&'static str),
}

/// The kind of eBPF program a hook needs (what a fingerprint reports per row).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProgramType {
    CgroupSockAddr,
    CgroupSkb,
    TpBtf,
    Tracepoint,
    Lsm,
    Fentry,
    Fexit,
    Kprobe,
}

impl Hook {
    pub(crate) fn program_type(&self) -> ProgramType {
        match self {
            Hook::CgroupSockAddr => ProgramType::CgroupSockAddr,
            Hook::CgroupSkb { .. } => ProgramType::CgroupSkb,
            Hook::TpBtf(_) => ProgramType::TpBtf,
            Hook::TracePoint(..) => ProgramType::Tracepoint,
            Hook::Lsm(_) => ProgramType::Lsm,
            Hook::FEntry(_) => ProgramType::Fentry,
            Hook::FExit(_) => ProgramType::Fexit,
            Hook::KProbe(_) => ProgramType::Kprobe,
        }
    }
}

/// One row of the probe table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProbeSpec {
    /// Function name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    pub capability: Capability,
    /// Oldest kernel (major, minor) the hook exists on.
    pub min_kernel: (u32, u32),
    /// Which kernel struct offsets (from BTF) it reads.
    pub needs: Needs,
    /// Priority within the capability, 0 best. The rows of one capability and rank form a tier,
    /// tried together; the first tier whose rows all attach serves the capability, and the
    /// worse tiers are not loaded (`seam fingerprint` tries them all).
    pub rank: u8,
    /// The tier is complete without this row (syscalls some architectures or kernels lack).
    pub optional: bool,
}

/// Kernel struct offsets a probe depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    Nothing,
    /// Socket and cgroup offsets (`KernelOffsets::valid`).
    SocketOffsets,
    /// Task, file, dentry and mount offsets (`KernelOffsets::files_valid`).
    FileOffsets,
    /// `socket->sk` (`KernelOffsets::socket_sk`), for hooks handed a `struct socket`.
    SocketSk,
    /// The file offsets and the syscall record layout from tracefs (`syscall_args`/`ret`).
    SyscallRecords,
    /// The file offsets and the x86-64 syscall registers (`KernelOffsets::regs_valid`).
    SyscallRegisters,
}

/// A pair of probes on syscalls/sys_enter_<name> and sys_exit_<name>: the last file tier.
const fn syscall(program: &'static str, name: &'static str, optional: bool) -> ProbeSpec {
    ProbeSpec {
        program,
        hook: Hook::TracePoint("syscalls", name),
        capability: Capability::FileAccess,
        min_kernel: (4, 7),
        needs: Needs::SyscallRecords,
        rank: 4,
        optional,
    }
}

/// A file probe at a security hook: BPF LSM (rank 0), fexit (1) or kprobe (2).
const fn file_hook(program: &'static str, hook: Hook) -> ProbeSpec {
    let (rank, min_kernel) = match hook {
        Hook::Lsm(_) => (0, (5, 7)),
        Hook::FExit(_) => (1, (5, 5)),
        _ => (2, (4, 1)),
    };
    ProbeSpec {
        program,
        hook,
        capability: Capability::FileAccess,
        min_kernel,
        needs: Needs::FileOffsets,
        rank,
        optional: false,
    }
}

/// A row that is the only one of its tier.
const fn row(
    program: &'static str,
    hook: Hook,
    capability: Capability,
    min_kernel: (u32, u32),
    needs: Needs,
    rank: u8,
) -> ProbeSpec {
    ProbeSpec {
        program,
        hook,
        capability,
        min_kernel,
        needs,
        rank,
        optional: false,
    }
}

impl ProbeSpec {
    /// Human name of the attach point, e.g. `cgroup/connect4` or `tp_btf/sched_process_exec`.
    pub(crate) fn attach_point(&self) -> String {
        match self.hook {
            Hook::CgroupSockAddr => {
                format!("cgroup/{}", self.program.trim_start_matches("seam_"))
            }
            Hook::CgroupSkb { ingress } => {
                format!("cgroup_skb/{}", if ingress { "ingress" } else { "egress" })
            }
            Hook::TpBtf(name) => format!("tp_btf/{name}"),
            Hook::TracePoint(category, name) => format!("tracepoint/{category}/{name}"),
            Hook::Lsm(name) => format!("lsm/{name}"),
            Hook::FEntry(name) => format!("fentry/{name}"),
            Hook::FExit(name) => format!("fexit/{name}"),
            Hook::KProbe(name) => format!("kprobe/{name}"),
        }
    }
}

use Capability::*;

/// The file probe on raw_syscalls' `sys_exit`: the only file tier that follows the file
/// generation, so the only one under which repeated opens may be silenced.
pub(crate) const SYS_EXIT: &str = "seam_sys_exit";

/// All probes, best tier first within each capability (see [`ProbeSpec::rank`]). Syscall
/// tracepoints are the last resort for file access: a program on one slows every syscall on the
/// node, whereas the security hooks only run for the operations they observe.
pub(crate) const PROBES: &[ProbeSpec] = &[
    // cgroup hooks first: they need no BTF offsets and attach wherever cgroup v2 is mounted.
    row(
        "seam_connect4",
        Hook::CgroupSockAddr,
        ConnectIntent,
        (4, 17),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_connect6",
        Hook::CgroupSockAddr,
        ConnectIntent,
        (4, 17),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_sendmsg4",
        Hook::CgroupSockAddr,
        UdpSend,
        (4, 18),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_sendmsg6",
        Hook::CgroupSockAddr,
        UdpSend,
        (4, 18),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_inet_sock_set_state",
        Hook::TpBtf("inet_sock_set_state"),
        TcpEnds,
        (5, 5),
        Needs::SocketOffsets,
        0,
    ),
    row(
        "seam_skb_ingress",
        Hook::CgroupSkb { ingress: true },
        TrafficIn,
        (4, 10),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_skb_egress",
        Hook::CgroupSkb { ingress: false },
        TrafficOut,
        (4, 10),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_sched_process_exec",
        Hook::TpBtf("sched_process_exec"),
        ProcessExec,
        (5, 5),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_tp_sched_process_exec",
        Hook::TracePoint("sched", "sched_process_exec"),
        ProcessExec,
        (4, 7),
        Needs::Nothing,
        1,
    ),
    row(
        "seam_sched_process_exit",
        Hook::TpBtf("sched_process_exit"),
        ProcessExit,
        (5, 5),
        Needs::Nothing,
        0,
    ),
    row(
        "seam_tp_sched_process_exit",
        Hook::TracePoint("sched", "sched_process_exit"),
        ProcessExit,
        (4, 7),
        Needs::Nothing,
        1,
    ),
    // Stand-ins, after the rows above so that `PROBES[i]` of those stays put.
    // connect() at the LSM hook or its security_* function, where the cgroup hooks cannot attach.
    row(
        "seam_lsm_socket_connect",
        Hook::Lsm("socket_connect"),
        ConnectIntent,
        (5, 7),
        Needs::SocketSk,
        1,
    ),
    row(
        "seam_fentry_socket_connect",
        Hook::FEntry("security_socket_connect"),
        ConnectIntent,
        (5, 5),
        Needs::SocketSk,
        2,
    ),
    // Kernels that refuse the current-task helpers in cgroup_skb programs (before 6.18).
    row(
        "seam_skb_egress_compat",
        Hook::CgroupSkb { ingress: false },
        TrafficOut,
        (4, 10),
        Needs::Nothing,
        1,
    ),
    // File access: the security hooks, by BPF LSM, then fexit (with the LSMs' verdict), then
    // kprobe; each tier needs CONFIG_SECURITY_PATH for unlink, rename and truncate.
    file_hook("seam_lsm_file_open", Hook::Lsm("file_open")),
    file_hook("seam_lsm_path_unlink", Hook::Lsm("path_unlink")),
    file_hook("seam_lsm_path_rename", Hook::Lsm("path_rename")),
    file_hook("seam_lsm_path_truncate", Hook::Lsm("path_truncate")),
    file_hook("seam_fexit_file_open", Hook::FExit("security_file_open")),
    file_hook(
        "seam_fexit_path_unlink",
        Hook::FExit("security_path_unlink"),
    ),
    file_hook(
        "seam_fexit_path_rename",
        Hook::FExit("security_path_rename"),
    ),
    file_hook(
        "seam_fexit_path_truncate",
        Hook::FExit("security_path_truncate"),
    ),
    file_hook("seam_kprobe_file_open", Hook::KProbe("security_file_open")),
    file_hook(
        "seam_kprobe_path_unlink",
        Hook::KProbe("security_path_unlink"),
    ),
    file_hook(
        "seam_kprobe_path_rename",
        Hook::KProbe("security_path_rename"),
    ),
    file_hook(
        "seam_kprobe_path_truncate",
        Hook::KProbe("security_path_truncate"),
    ),
    // Where no security hook loads: one program on raw_syscalls' sys_exit (arguments from the
    // saved registers, result, path resolved from the object; repeats silenced), for x86-64.
    ProbeSpec {
        program: SYS_EXIT,
        hook: Hook::TpBtf("sys_exit"),
        capability: FileAccess,
        min_kernel: (5, 5),
        needs: Needs::SyscallRegisters,
        rank: 3,
        optional: false,
    },
    // Last resort: syscall tracepoints, enter (arguments) and exit (result, path resolved from
    // the object). Legacy syscalls (open, creat, unlink, rename) only exist on some
    // architectures, openat2 from 5.6: the tier is complete without them.
    syscall("seam_enter_openat", "sys_enter_openat", false),
    syscall("seam_exit_openat", "sys_exit_openat", false),
    syscall("seam_enter_openat2", "sys_enter_openat2", true),
    syscall("seam_exit_openat2", "sys_exit_openat2", true),
    syscall("seam_enter_open", "sys_enter_open", true),
    syscall("seam_exit_open", "sys_exit_open", true),
    syscall("seam_enter_creat", "sys_enter_creat", true),
    syscall("seam_exit_creat", "sys_exit_creat", true),
    syscall("seam_enter_unlinkat", "sys_enter_unlinkat", false),
    syscall("seam_exit_unlinkat", "sys_exit_unlinkat", false),
    syscall("seam_enter_unlink", "sys_enter_unlink", true),
    syscall("seam_exit_unlink", "sys_exit_unlink", true),
    syscall("seam_enter_renameat2", "sys_enter_renameat2", false),
    syscall("seam_exit_renameat2", "sys_exit_renameat2", false),
    syscall("seam_enter_renameat", "sys_enter_renameat", true),
    syscall("seam_exit_renameat", "sys_exit_renameat", true),
    syscall("seam_enter_rename", "sys_enter_rename", true),
    syscall("seam_exit_rename", "sys_exit_rename", true),
    syscall("seam_enter_truncate", "sys_enter_truncate", false),
    syscall("seam_exit_truncate", "sys_exit_truncate", false),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_required_capability_has_a_probe_and_names_are_unique() {
        for cap in Capability::REQUIRED {
            assert!(PROBES.iter().any(|p| p.capability == cap), "{cap:?}");
        }
        let names: HashSet<_> = PROBES.iter().map(|p| p.program).collect();
        assert_eq!(names.len(), PROBES.len());
    }

    #[test]
    fn tiers_are_ranked_and_use_one_program_type_each() {
        for capability in Capability::ALL {
            let rows: Vec<_> = PROBES
                .iter()
                .filter(|p| p.capability == capability)
                .collect();
            assert!(
                rows.iter().any(|p| p.rank == 0),
                "{capability:?} has a best tier"
            );
            for rank in rows.iter().map(|p| p.rank) {
                let tier: Vec<_> = rows.iter().filter(|p| p.rank == rank).collect();
                assert!(
                    tier.iter().any(|p| !p.optional),
                    "{capability:?} rank {rank}"
                );
                let kinds: HashSet<_> = tier.iter().map(|p| p.hook.program_type()).collect();
                assert_eq!(kinds.len(), 1, "{capability:?} rank {rank}: {kinds:?}");
            }
        }
        // File access prefers the security hooks, and the syscall tracepoints come last.
        let file = |t| {
            PROBES
                .iter()
                .find(|p| p.capability == Capability::FileAccess && p.hook.program_type() == t)
                .map(|p| p.rank)
        };
        assert_eq!(file(ProgramType::Lsm), Some(0));
        assert_eq!(file(ProgramType::Fexit), Some(1));
        assert_eq!(file(ProgramType::Kprobe), Some(2));
        assert_eq!(file(ProgramType::TpBtf), Some(3));
        assert_eq!(file(ProgramType::Tracepoint), Some(4));
    }

    #[test]
    fn attach_points_read_like_section_names() {
        assert_eq!(
            PROBES
                .iter()
                .find(|p| p.program == "seam_lsm_file_open")
                .unwrap()
                .attach_point(),
            "lsm/file_open"
        );
        assert_eq!(
            PROBES
                .iter()
                .find(|p| p.program == "seam_kprobe_path_unlink")
                .unwrap()
                .attach_point(),
            "kprobe/security_path_unlink"
        );
        assert_eq!(PROBES[0].attach_point(), "cgroup/connect4");
        assert_eq!(PROBES[4].attach_point(), "tp_btf/inet_sock_set_state");
        assert_eq!(
            PROBES[8].attach_point(),
            "tracepoint/sched/sched_process_exec"
        );
    }
}
