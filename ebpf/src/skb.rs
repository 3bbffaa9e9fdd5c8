//! cgroup_skb ingress/egress: bytes and packets per (socket, peer), aggregated per CPU in
//! [`FLOWS`] (no atomics on the packet path). Only the first UDP packet between a socket and a
//! peer produces an event ([`EventKind::FlowStart`]): it is how the agent learns both ends of a
//! UDP flow. Attribution is by the socket (`bpf_skb_cgroup_id`), never by the task that happens
//! to run the softirq. Addresses come from the packet headers (cgroup_skb data starts at the
//! network header), since an unconnected UDP socket has no peer of its own.
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_socket_cookie, bpf_ktime_get_boot_ns, bpf_skb_cgroup_id},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use seam_common::{
    AF_INET, AF_INET6, EventKind, FlowCounters, FlowData, FlowKey, IPPROTO_TCP, IPPROTO_UDP,
    LossSlot, RawAddr,
};

use crate::{
    emit::{Context, emit},
    maps::{FLOWS, is_tenant_cgroup},
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

/// Addresses and ports of a packet, oriented from the socket's side.
struct Packet {
    family: u16,
    protocol: u8,
    laddr: RawAddr,
    raddr: RawAddr,
    lport: u16,
    rport: u16,
}

#[inline(always)]
fn parse(ctx: &SkBuffContext, ingress: bool) -> Result<Packet, i32> {
    let family = ctx.skb.family() as u16;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let (protocol, l4): (u8, usize) = if family == AF_INET {
        let vihl: u8 = ctx.load(0).map_err(|_| 0)?;
        let s: [u8; 4] = ctx.load(12).map_err(|_| 0)?;
        let d: [u8; 4] = ctx.load(16).map_err(|_| 0)?;
        src[..4].copy_from_slice(&s);
        dst[..4].copy_from_slice(&d);
        (ctx.load(9).map_err(|_| 0)?, usize::from(vihl & 0x0f) * 4)
    } else if family == AF_INET6 {
        src = ctx.load(8).map_err(|_| 0)?;
        dst = ctx.load(24).map_err(|_| 0)?;
        // Extension headers are not walked: such packets are counted without ports.
        (ctx.load(6).map_err(|_| 0)?, 40)
    } else {
        return Err(0);
    };
    let (sport, dport) = if protocol == IPPROTO_TCP || protocol == IPPROTO_UDP {
        let ports: [u8; 4] = ctx.load(l4).map_err(|_| 0)?;
        (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        )
    } else {
        (0, 0)
    };
    Ok(if ingress {
        Packet { family, protocol, laddr: dst, raddr: src, lport: dport, rport: sport }
    } else {
        Packet { family, protocol, laddr: src, raddr: dst, lport: sport, rport: dport }
    })
}

#[inline(always)]
fn try_count(ctx: &SkBuffContext, ingress: bool) -> Result<u32, i32> {
    // SAFETY: helper called with this program's own context.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    let packet = parse(ctx, ingress)?;
    // SAFETY: helpers called with this program's own context.
    let (cookie, now) = unsafe { (bpf_get_socket_cookie(ctx.as_ptr()), bpf_ktime_get_boot_ns()) };
    let key = FlowKey {
        cookie,
        raddr: packet.raddr,
        rport: packet.rport,
        lport: packet.lport,
        _pad: 0,
    };
    let len = u64::from(ctx.len());
    if let Some(counters) = FLOWS.get_ptr_mut(&key) {
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
    // BPF_NOEXIST: if another CPU inserted the flow first, its event wins. (LRU: a full map
    // evicts the least recently used flow rather than failing.)
    if FLOWS.insert(&key, &fresh, 1).is_err() {
        return Ok(0);
    }
    if packet.protocol == IPPROTO_UDP {
        // UDP sends run in the sender's syscall; receives run in softirq.
        let context = if ingress { Context::Interrupt } else { Context::Task };
        emit(
            EventKind::FlowStart,
            cgroup_id,
            context,
            FlowData {
                cookie,
                laddr: packet.laddr,
                raddr: packet.raddr,
                lport: packet.lport,
                rport: packet.rport,
                family: packet.family,
                protocol: packet.protocol,
                ingress: u8::from(ingress),
            },
            LossSlot::Flow,
        );
    }
    Ok(0)
}
