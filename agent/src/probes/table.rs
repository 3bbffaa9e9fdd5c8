//! The table of probes: what each needs, what it gives, and what replaces it when it cannot load.
//! Loaded in order; for each capability the first probe that loads and attaches is live.

/// What a probe contributes to isolation evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Capability {
    /// Who called connect() and where to (TCP and connected UDP).
    ConnectIntent,
    /// Unconnected UDP destinations.
    UdpSend,
    /// Both ends of every TCP connection, each with its own cgroup.
    TcpEnds,
    /// Both ends of UDP flows (the first packet between a socket and a peer).
    Traffic,
    /// exec of tenant processes (pid, comm, uid, parent).
    ProcessExec,
    /// exit of tenant processes.
    ProcessExit,
    /// File syscalls of tenant tasks with kernel-resolved paths.
    FileAccess,
}

impl Capability {
    /// Capabilities without which Seam cannot prove network isolation: start-up fails.
    pub(crate) const REQUIRED: [Capability; 2] = [Capability::ConnectIntent, Capability::TcpEnds];
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
    /// A fallback: only tried when no earlier probe gave its capability.
    pub fallback: bool,
}

/// Kernel struct offsets a probe depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    Nothing,
    /// Socket and cgroup offsets (`KernelOffsets::valid`).
    SocketOffsets,
    /// Task, file, dentry and mount offsets (`KernelOffsets::files_valid`).
    FileOffsets,
}

/// A pair of probes on syscalls/sys_enter_<name> and sys_exit_<name>.
const fn syscall(program: &'static str, name: &'static str) -> ProbeSpec {
    ProbeSpec {
        program,
        hook: Hook::TracePoint("syscalls", name),
        capability: Capability::FileAccess,
        min_kernel: (4, 7),
        needs: Needs::FileOffsets,
        fallback: false,
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
        }
    }
}

/// All probes, best first within each capability. Syscall tracepoints are used only for file
/// access, where this kernel offers nothing else: a program on one slows every syscall on the
/// node (`--disable-probe` or leaving files out of the rules keeps them off).
pub(crate) const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "seam_connect4",
        hook: Hook::CgroupSockAddr,
        capability: Capability::ConnectIntent,
        min_kernel: (4, 17),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_connect6",
        hook: Hook::CgroupSockAddr,
        capability: Capability::ConnectIntent,
        min_kernel: (4, 17),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_sendmsg4",
        hook: Hook::CgroupSockAddr,
        capability: Capability::UdpSend,
        min_kernel: (4, 18),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_sendmsg6",
        hook: Hook::CgroupSockAddr,
        capability: Capability::UdpSend,
        min_kernel: (4, 18),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_inet_sock_set_state",
        hook: Hook::TpBtf("inet_sock_set_state"),
        capability: Capability::TcpEnds,
        min_kernel: (5, 5),
        needs: Needs::SocketOffsets,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_skb_ingress",
        hook: Hook::CgroupSkb { ingress: true },
        capability: Capability::Traffic,
        min_kernel: (4, 10),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_skb_egress",
        hook: Hook::CgroupSkb { ingress: false },
        capability: Capability::Traffic,
        min_kernel: (4, 10),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_sched_process_exec",
        hook: Hook::TpBtf("sched_process_exec"),
        capability: Capability::ProcessExec,
        min_kernel: (5, 5),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_tp_sched_process_exec",
        hook: Hook::TracePoint("sched", "sched_process_exec"),
        capability: Capability::ProcessExec,
        min_kernel: (4, 7),
        needs: Needs::Nothing,
        fallback: true,
    },
    ProbeSpec {
        program: "seam_sched_process_exit",
        hook: Hook::TpBtf("sched_process_exit"),
        capability: Capability::ProcessExit,
        min_kernel: (5, 5),
        needs: Needs::Nothing,
        fallback: false,
    },
    ProbeSpec {
        program: "seam_tp_sched_process_exit",
        hook: Hook::TracePoint("sched", "sched_process_exit"),
        capability: Capability::ProcessExit,
        min_kernel: (4, 7),
        needs: Needs::Nothing,
        fallback: true,
    },
    // File access: no LSM or fentry hook on kernels like this one, so syscall tracepoints,
    // enter (arguments) and exit (result, path resolved from the object). Legacy syscalls
    // (open, creat, unlink, rename) only exist on some architectures.
    syscall("seam_enter_openat", "sys_enter_openat"),
    syscall("seam_exit_openat", "sys_exit_openat"),
    syscall("seam_enter_openat2", "sys_enter_openat2"),
    syscall("seam_exit_openat2", "sys_exit_openat2"),
    syscall("seam_enter_open", "sys_enter_open"),
    syscall("seam_exit_open", "sys_exit_open"),
    syscall("seam_enter_creat", "sys_enter_creat"),
    syscall("seam_exit_creat", "sys_exit_creat"),
    syscall("seam_enter_unlinkat", "sys_enter_unlinkat"),
    syscall("seam_exit_unlinkat", "sys_exit_unlinkat"),
    syscall("seam_enter_unlink", "sys_enter_unlink"),
    syscall("seam_exit_unlink", "sys_exit_unlink"),
    syscall("seam_enter_renameat2", "sys_enter_renameat2"),
    syscall("seam_exit_renameat2", "sys_exit_renameat2"),
    syscall("seam_enter_renameat", "sys_enter_renameat"),
    syscall("seam_exit_renameat", "sys_exit_renameat"),
    syscall("seam_enter_rename", "sys_enter_rename"),
    syscall("seam_exit_rename", "sys_exit_rename"),
    syscall("seam_enter_truncate", "sys_enter_truncate"),
    syscall("seam_exit_truncate", "sys_exit_truncate"),
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
    fn attach_points_read_like_section_names() {
        assert_eq!(PROBES[0].attach_point(), "cgroup/connect4");
        assert_eq!(PROBES[4].attach_point(), "tp_btf/inet_sock_set_state");
        assert_eq!(
            PROBES[8].attach_point(),
            "tracepoint/sched/sched_process_exec"
        );
    }
}
