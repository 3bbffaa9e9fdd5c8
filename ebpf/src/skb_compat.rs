//! cgroup_skb egress for kernels that refuse the current-task helpers in cgroup_skb programs
//! (6.1: "unknown func bpf_get_current_pid_tgid#14"; 6.12: "program of this type cannot use
//! helper bpf_get_current_uid_gid#15"). Same work; a first UDP packet is reported without
//! pid/uid/comm, and the agent names the sender from the connect/sendmsg intent of the same
//! socket cookie.
use aya_ebpf::{macros::cgroup_skb, programs::SkBuffContext};

use crate::{emit::Context, skb::try_flow};

/// cgroup_skb verdict that lets the packet through.
const PASS: i32 = 1;

#[cgroup_skb(egress)]
pub fn seam_skb_egress_compat(ctx: SkBuffContext) -> i32 {
    let _ = try_flow(&ctx, false, Context::Interrupt);
    PASS
}
