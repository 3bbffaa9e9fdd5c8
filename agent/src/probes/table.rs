//! The table of probes: what each needs, what it gives, and what replaces it when it cannot load.
//! Loaded in order; for each capability the first probe that loads and attaches is live.

/// What a probe contributes to isolation evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Who called connect() and where to (TCP and connected UDP).
    ConnectIntent,
    /// Unconnected UDP destinations.
    UdpSend,
    /// Both ends of every TCP connection, each with its own cgroup.
    TcpEnds,
    /// Bytes and packets per flow, and both ends of UDP flows.
    Traffic,
    /// exec of tenant processes (pid, comm, uid, parent).
    ProcessExec,
    /// exit of tenant processes.
    ProcessExit,
}

impl Capability {
    /// Capabilities without which Seam cannot prove network isolation: start-up fails.
    pub const REQUIRED: [Capability; 2] = [Capability::ConnectIntent, Capability::TcpEnds];
}

/// How a probe attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
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
pub struct ProbeSpec {
    /// Function name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    pub capability: Capability,
    /// Oldest kernel (major, minor) the hook exists on.
    pub min_kernel: (u32, u32),
    /// Whether it reads kernel structs through BTF offsets.
    pub needs_offsets: bool,
}

impl ProbeSpec {
    /// Human name of the attach point, e.g. `cgroup/connect4` or `tp_btf/sched_process_exec`.
    pub fn attach_point(&self) -> String {
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

/// All probes, best first within each capability. Syscall tracepoints are deliberately absent:
/// a program on one slows every syscall on the node.
pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "seam_connect4",
        hook: Hook::CgroupSockAddr,
        capability: Capability::ConnectIntent,
        min_kernel: (4, 17),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_connect6",
        hook: Hook::CgroupSockAddr,
        capability: Capability::ConnectIntent,
        min_kernel: (4, 17),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_sendmsg4",
        hook: Hook::CgroupSockAddr,
        capability: Capability::UdpSend,
        min_kernel: (4, 18),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_sendmsg6",
        hook: Hook::CgroupSockAddr,
        capability: Capability::UdpSend,
        min_kernel: (4, 18),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_inet_sock_set_state",
        hook: Hook::TpBtf("inet_sock_set_state"),
        capability: Capability::TcpEnds,
        min_kernel: (5, 5),
        needs_offsets: true,
    },
    ProbeSpec {
        program: "seam_skb_ingress",
        hook: Hook::CgroupSkb { ingress: true },
        capability: Capability::Traffic,
        min_kernel: (4, 10),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_skb_egress",
        hook: Hook::CgroupSkb { ingress: false },
        capability: Capability::Traffic,
        min_kernel: (4, 10),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_sched_process_exec",
        hook: Hook::TpBtf("sched_process_exec"),
        capability: Capability::ProcessExec,
        min_kernel: (5, 5),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_tp_sched_process_exec",
        hook: Hook::TracePoint("sched", "sched_process_exec"),
        capability: Capability::ProcessExec,
        min_kernel: (4, 7),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_sched_process_exit",
        hook: Hook::TpBtf("sched_process_exit"),
        capability: Capability::ProcessExit,
        min_kernel: (5, 5),
        needs_offsets: false,
    },
    ProbeSpec {
        program: "seam_tp_sched_process_exit",
        hook: Hook::TracePoint("sched", "sched_process_exit"),
        capability: Capability::ProcessExit,
        min_kernel: (4, 7),
        needs_offsets: false,
    },
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
