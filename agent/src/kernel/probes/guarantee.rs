//! What a capability's live tier does not see, so that a node running on a stand-in says so in
//! its fingerprint instead of silently giving a weaker guarantee.
use super::table::{Capability, ProgramType};

/// A gap of one capability compared with its best tier.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reduction {
    /// No probe of the capability is live on this node: it gives no evidence at all.
    Unavailable,
    /// File access at the security hooks (LSM, fexit, kprobe): attempts the kernel refuses
    /// before the hook (ENOENT during lookup, EACCES/EPERM from the permission checks) are not
    /// seen, so failed attempts on another tenant's files leave no span. Syscall tracepoints see
    /// them.
    FailedAttemptsUnseen,
    /// File access on BPF LSM, which the kernel calls after the other LSMs and not at all once
    /// one refused: an attempt AppArmor or Landlock refuses leaves no span (fexit reports it
    /// denied; the kernel matrix observes both).
    LsmRefusalsUnseen,
    /// File access on kprobes, which fire before the LSMs decide: an attempt an LSM refuses
    /// (AppArmor, landlock, ...) is reported as an access. BPF LSM is never called for it, and
    /// fexit reports the refusal.
    VerdictUnknown,
    /// File access on syscall tracepoints: every syscall of the node pays for the probes, and
    /// the path of a failed call is composed from the caller's string.
    SyscallTax,
    /// cgroup_skb egress without the current-task helpers: a UDP flow's first packet names no
    /// task; the sender is taken from the connect/sendmsg intent of the same socket.
    SenderFromIntent,
    /// exec on the classic tracepoint: the executed binary's path is not resolved.
    NoExecPath,
}

/// The reductions of `capability` when served by the tier of `program_type` and `rank` (None:
/// no tier is live).
pub(crate) fn reductions(
    capability: Capability,
    tier: Option<(ProgramType, u8)>,
) -> Vec<Reduction> {
    let Some((program_type, rank)) = tier else {
        return vec![Reduction::Unavailable];
    };
    match (capability, program_type) {
        (Capability::FileAccess, ProgramType::Lsm) => {
            vec![
                Reduction::FailedAttemptsUnseen,
                Reduction::LsmRefusalsUnseen,
            ]
        }
        (Capability::FileAccess, ProgramType::Fentry | ProgramType::Fexit) => {
            vec![Reduction::FailedAttemptsUnseen]
        }
        (Capability::FileAccess, ProgramType::Kprobe) => {
            vec![Reduction::FailedAttemptsUnseen, Reduction::VerdictUnknown]
        }
        (Capability::FileAccess, ProgramType::Tracepoint | ProgramType::TpBtf) => {
            vec![Reduction::SyscallTax]
        }
        (Capability::ProcessExec, ProgramType::Tracepoint) => vec![Reduction::NoExecPath],
        (Capability::TrafficOut, _) if rank > 0 => vec![Reduction::SenderFromIntent],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_hooks_do_not_see_failed_attempts() {
        assert_eq!(
            reductions(Capability::FileAccess, Some((ProgramType::Fexit, 1))),
            [Reduction::FailedAttemptsUnseen]
        );
        assert_eq!(
            reductions(Capability::FileAccess, Some((ProgramType::Lsm, 0))),
            [
                Reduction::FailedAttemptsUnseen,
                Reduction::LsmRefusalsUnseen
            ]
        );
        assert_eq!(
            reductions(Capability::FileAccess, Some((ProgramType::Kprobe, 2))),
            [Reduction::FailedAttemptsUnseen, Reduction::VerdictUnknown]
        );
        assert_eq!(
            reductions(Capability::FileAccess, Some((ProgramType::TpBtf, 3))),
            [Reduction::SyscallTax]
        );
        assert_eq!(
            reductions(Capability::FileAccess, Some((ProgramType::Tracepoint, 4))),
            [Reduction::SyscallTax]
        );
        assert_eq!(
            reductions(Capability::TcpEnds, None),
            [Reduction::Unavailable]
        );
        assert!(reductions(Capability::TcpEnds, Some((ProgramType::TpBtf, 0))).is_empty());
        assert_eq!(
            reductions(Capability::TrafficOut, Some((ProgramType::CgroupSkb, 1))),
            [Reduction::SenderFromIntent]
        );
    }
}
