//! cgroup_skb ingress/egress: the first UDP packet between a socket and a peer produces an
//! event ([`EventKind::FlowStart`]): it is how the agent learns both ends of a UDP flow. TCP
//! packets leave at once (TCP spans and their byte counts come from `inet_sock_set_state`), and
//! a (socket, peer) already seen costs one map lookup. Attribution is by the socket
//! (`bpf_skb_cgroup_id`), never by the task that happens to run the softirq. Addresses come from
//! the socket itself when it is connected (no packet parsing) and from the packet headers for
//! unconnected UDP sockets (cgroup_skb data starts at the network header).
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_get_socket_cookie, bpf_sk_fullsock, bpf_skb_cgroup_id},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use seam_common::{
    AF_INET, AF_INET6, EventKind, FlowData, FlowKey, IPPROTO_UDP, LossSlot, RawAddr,
};

use crate::{
    emit::{Context, emit},
    maps::{FLOWS, is_tenant_cgroup},
};

/// cgroup_skb verdict that lets the packet through.
const PASS: i32 = 1;

#[cgroup_skb(ingress)]
pub fn seam_skb_ingress(ctx: SkBuffContext) -> i32 {
    let _ = try_flow(&ctx, true, Context::Interrupt);
    PASS
}

#[cgroup_skb(egress)]
pub fn seam_skb_egress(ctx: SkBuffContext) -> i32 {
    let _ = try_flow(&ctx, false, Context::Task);
    PASS
}

/// Addresses and ports of a packet, oriented from the socket's side.
struct Packet {
    family: u16,
    laddr: RawAddr,
    raddr: RawAddr,
    lport: u16,
    rport: u16,
}

/// The socket's own addresses (cheap context reads). For a connected socket (TCP, connected
/// UDP) they are the packet's; an unconnected UDP socket has no peer (port 0).
#[inline(always)]
fn from_socket(ctx: &SkBuffContext) -> Packet {
    let family = ctx.skb.family() as u16;
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
    Packet {
        family,
        laddr,
        raddr,
        // local_port is host order; remote_port holds the big-endian port in its upper half.
        lport: ctx.skb.local_port() as u16,
        rport: u16::from_be((ctx.skb.remote_port() >> 16) as u16),
    }
}

/// The L4 protocol of the packet and the offset of its transport header.
#[inline(always)]
fn l4(ctx: &SkBuffContext, family: u16) -> Result<(u8, usize), i32> {
    if family == AF_INET {
        let vihl: u8 = ctx.load(0).map_err(|_| 0)?;
        Ok((ctx.load(9).map_err(|_| 0)?, usize::from(vihl & 0x0f) * 4))
    } else if family == AF_INET6 {
        // Extension headers are not walked: such packets are not attributed to a peer.
        Ok((ctx.load(6).map_err(|_| 0)?, 40))
    } else {
        Err(0)
    }
}

/// Addresses and ports from the UDP packet's own headers (unconnected sockets).
#[inline(always)]
fn from_udp_packet(
    ctx: &SkBuffContext,
    family: u16,
    offset: usize,
    ingress: bool,
) -> Result<Packet, i32> {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if family == AF_INET {
        let addrs: [u8; 8] = ctx.load(12).map_err(|_| 0)?;
        src[..4].copy_from_slice(&addrs[..4]);
        dst[..4].copy_from_slice(&addrs[4..]);
    } else {
        src = ctx.load(8).map_err(|_| 0)?;
        dst = ctx.load(24).map_err(|_| 0)?;
    }
    let ports: [u8; 4] = ctx.load(offset).map_err(|_| 0)?;
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    Ok(if ingress {
        Packet {
            family,
            laddr: dst,
            raddr: src,
            lport: dport,
            rport: sport,
        }
    } else {
        Packet {
            family,
            laddr: src,
            raddr: dst,
            lport: sport,
            rport: dport,
        }
    })
}

/// `sender` is the context a first packet is reported in: [`Context::Task`] names the sending
/// task (egress runs in the sender's syscall), [`Context::Interrupt`] does without the
/// current-task helpers (receives in softirq; see skb_compat.rs for egress on older kernels).
#[inline(always)]
pub(crate) fn try_flow(ctx: &SkBuffContext, ingress: bool, sender: Context) -> Result<u32, i32> {
    // SAFETY: `sk` is the context's socket pointer, checked for NULL before use.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return Ok(0);
    }
    // SAFETY: helper on the context's non-NULL socket; `protocol` needs the full socket.
    let full = unsafe { bpf_sk_fullsock(sk) };
    // SAFETY: non-NULL full socket returned by the helper.
    if full.is_null() || unsafe { (*full).protocol } != u32::from(IPPROTO_UDP) {
        return Ok(0);
    }
    // SAFETY: helper called with this program's own context.
    let cgroup_id = unsafe { bpf_skb_cgroup_id(ctx.skb.skb) };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    let mut packet = from_socket(ctx);
    if packet.rport == 0 {
        // An unconnected socket has no peer of its own: read it from the packet.
        let (proto, offset) = l4(ctx, packet.family)?;
        if proto != IPPROTO_UDP {
            return Ok(0);
        }
        packet = from_udp_packet(ctx, packet.family, offset, ingress)?;
    }
    // SAFETY: helper called with this program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let key = FlowKey {
        cookie,
        raddr: packet.raddr,
        rport: packet.rport,
        lport: packet.lport,
        _pad: 0,
    };
    if FLOWS.get_ptr(key).is_some() {
        return Ok(0);
    }
    // BPF_NOEXIST: if another CPU inserted the flow first, its event wins. (LRU: a full map
    // forgets the least recently seen flow rather than failing.)
    if FLOWS.insert(key, 0, 1).is_err() {
        return Ok(0);
    }
    emit(
        EventKind::FlowStart,
        cgroup_id,
        sender,
        FlowData {
            cookie,
            laddr: packet.laddr,
            raddr: packet.raddr,
            lport: packet.lport,
            rport: packet.rport,
            family: packet.family,
            protocol: IPPROTO_UDP,
            ingress: u8::from(ingress),
        },
        LossSlot::Flow,
    );
    Ok(0)
}
