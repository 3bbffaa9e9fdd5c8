//! cgroup_skb ingress/egress: bytes and packets per socket, aggregated per CPU in [`FLOWS`] (no atomics on the packet path). Only the
//! first packet of a socket produces an event ([`EventKind::FlowStart`]); it is how the agent
//! learns the receiving end of a UDP flow. Attribution is by the socket (`bpf_skb_cgroup_id`),
//! never by the task that happens to run the softirq.
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_boot_ns, bpf_skb_cgroup_id},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use seam_common::{
    AF_INET, AF_INET6, EventKind, FlowCounters, FlowData, IPPROTO_TCP, IPPROTO_UDP, LossSlot,
};

use crate::{
    emit::{Context, emit},
    maps::{FLOWS, count_loss, is_tenant_cgroup},
};

/// cgroup_skb verdict that lets the packet through.
const PASS: i32 = 1;

#[cgroup_skb(ingress)]
pub fn seam_skb_ingress(ctx: SkBuffContext) -> i32 {
    let _ = try_count(&ctx, true);
    PASS
}

#[cgroup_skb(egress)]
pub fn seam_skb_egress(ctx: SkBuffContext) -> i32 {
    let _ = try_count(&ctx, false);
    PASS
}

#[inline(always)]
fn try_count(ctx: &SkBuffContext, ingress: bool) -> Result<u32, i32> {
    // SAFETY: helpers called with this program's own context.
    let (cgroup_id, cookie, now) = unsafe {
        (
            bpf_skb_cgroup_id(ctx.skb.skb),
            bpf_get_socket_cookie(ctx.as_ptr()),
            bpf_ktime_get_boot_ns(),
        )
    };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    let len = u64::from(ctx.len());
    if let Some(counters) = FLOWS.get_ptr_mut(cookie) {
        // SAFETY: this CPU's slot of a live per-CPU map value: no other CPU writes it.
        let counters = unsafe { &mut *counters };
        if ingress {
            counters.rx_bytes += len;
            counters.rx_packets += 1;
        } else {
            counters.tx_bytes += len;
            counters.tx_packets += 1;
        }
        counters.cgroup_id = cgroup_id;
        counters.last_ns = now;
        return Ok(0);
    }
    let (rx, tx) = if ingress { (len, 0) } else { (0, len) };
    let fresh = FlowCounters {
        cgroup_id,
        rx_bytes: rx,
        rx_packets: u64::from(ingress),
        tx_bytes: tx,
        tx_packets: u64::from(!ingress),
        last_ns: now,
    };
    // BPF_NOEXIST: if another CPU inserted the flow first, its event wins and ours is dropped.
    if FLOWS.insert(cookie, fresh, 1).is_err() {
        count_loss(LossSlot::FlowMapFull);
        return Ok(0);
    }
    emit_flow_start(ctx, cookie, cgroup_id, ingress);
    Ok(0)
}

#[inline(always)]
fn emit_flow_start(ctx: &SkBuffContext, cookie: u64, cgroup_id: u64, ingress: bool) {
    let family = ctx.skb.family() as u16;
    // cgroup_skb data starts at the network header.
    let protocol: u8 = match family {
        AF_INET => ctx.load(9).unwrap_or(0),
        AF_INET6 => ctx.load(6).unwrap_or(0),
        _ => return,
    };
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return;
    }
    let mut laddr = [0u8; 16];
    let mut raddr = [0u8; 16];
    if family == AF_INET {
        laddr[..4].copy_from_slice(&ctx.skb.local_ipv4().to_ne_bytes());
        raddr[..4].copy_from_slice(&ctx.skb.remote_ipv4().to_ne_bytes());
    } else {
        let l = ctx.skb.local_ipv6();
        let r = ctx.skb.remote_ipv6();
        for i in 0..4 {
            laddr[i * 4..i * 4 + 4].copy_from_slice(&l[i].to_ne_bytes());
            raddr[i * 4..i * 4 + 4].copy_from_slice(&r[i].to_ne_bytes());
        }
    }
    // local_port is host order; remote_port holds the big-endian port in its upper 16 bits.
    let lport = ctx.skb.local_port() as u16;
    let rport = u16::from_be((ctx.skb.remote_port() >> 16) as u16);
    let context = if ingress { Context::Interrupt } else { Context::Task };
    emit(
        EventKind::FlowStart,
        cgroup_id,
        context,
        FlowData {
            cookie,
            laddr,
            raddr,
            lport,
            rport,
            family,
            protocol,
            ingress: u8::from(ingress),
        },
        LossSlot::Flow,
    );
}
