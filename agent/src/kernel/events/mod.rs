//! Kernel events decoded from ring-buffer records into typed values (the first stage).
pub(crate) mod file;
pub(crate) mod reader;
pub(crate) mod silence;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use seam_common::{
    AF_INET, AF_INET6, COMM_LEN, Event, EventInfo, EventKind, FlowData, IPPROTO_TCP, IPPROTO_UDP,
    ProcessData, RawAddr, SockAddrData, TcpCloseData, TcpStateData,
};

use crate::model::vocab::Transport;

/// A batch of ring-buffer records, decoded (or why one could not be).
pub(crate) type KernelBatch = Vec<Result<KernelEvent, DecodeError>>;

fn transport(raw: u8) -> Option<Transport> {
    match raw {
        IPPROTO_TCP => Some(Transport::Tcp),
        IPPROTO_UDP => Some(Transport::Udp),
        _ => None,
    }
}

/// A task's `comm` as the kernel gave it (NUL padded): copied, never allocated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Comm([u8; COMM_LEN]);

impl Comm {
    /// The name: borrowed when the kernel's bytes are UTF-8, else with each invalid byte
    /// spelled `\xNN` ([`crate::model::text::escape_bytes`]), so no two comms collapse into one.
    pub(crate) fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        match std::str::from_utf8(&self.0[..end]) {
            Ok(name) => name.into(),
            Err(_) => crate::model::text::escape_bytes(&self.0[..end]).into(),
        }
    }
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.as_str(), f)
    }
}

impl From<&str> for Comm {
    fn from(name: &str) -> Self {
        let mut bytes = [0u8; COMM_LEN];
        let n = name.len().min(COMM_LEN - 1);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self(bytes)
    }
}

/// The common header, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// 0 when the hook ran on behalf of no particular task (softirq).
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub time_ns: u64,
    pub cgroup_id: u64,
    pub comm: Comm,
}

/// Payloads, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KernelEventKind {
    Exec {
        ppid: u32,
    },
    Exit {
        exit_code: u32,
    },
    /// connect() or sendmsg() by the caller in the header.
    SockAddr {
        sendmsg: bool,
        cookie: u64,
        protocol: Option<Transport>,
        destination: SocketAddr,
    },
    TcpState(TcpTransition),
    /// A connecting or established TCP socket closed.
    TcpClose {
        transition: TcpTransition,
        /// What the socket counted, when the kernel's `tcp_sock` layout was resolved.
        counters: Option<TcpCounters>,
    },
    /// A file syscall (or exec) with its kernel-resolved path(s).
    File(file::FileEvent),
    /// First UDP packet between a socket and a peer.
    FlowStart {
        cookie: u64,
        protocol: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        ingress: bool,
    },
}

/// A TCP socket's state change, with its 4-tuple as seen from the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcpTransition {
    pub cookie: u64,
    pub netns: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub old: u8,
    pub new: u8,
}

/// `struct tcp_sock` counters at close, as the kernel keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpCounters {
    /// Sequence space received: payload, plus 1 once the peer's FIN arrived.
    pub bytes_received: u64,
    /// Payload sent, retransmissions included.
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub segs_in: u32,
    pub segs_out: u32,
}

/// A decoded kernel event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelEvent {
    pub header: Header,
    pub kind: KernelEventKind,
}

/// Why a record could not be decoded (counted, never fatal).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Shorter than its kind's size: a build mismatch between agent and probes.
    #[error("record of {len} bytes is too short for {kind}")]
    Truncated { kind: &'static str, len: usize },
    /// A kind this agent does not know.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    /// An address family other than IPv4/IPv6.
    #[error("unknown address family {0}")]
    Family(u16),
}

fn read<T: Copy>(bytes: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Truncated {
            kind,
            len: bytes.len(),
        });
    }
    // SAFETY: length checked; T is a #[repr(C)] Pod type from seam-common and
    // read_unaligned has no alignment requirement.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Converts a raw address; IPv4-mapped IPv6 becomes IPv4 so both sides of a flow compare equal.
pub(crate) fn ip_from_raw(family: u16, raw: &RawAddr) -> Result<IpAddr, DecodeError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(*raw);
            Ok(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        other => Err(DecodeError::Family(other)),
    }
}

fn header(info: &EventInfo) -> Header {
    Header {
        pid: info.pid,
        tid: info.tid,
        uid: info.uid,
        time_ns: info.time_ns,
        cgroup_id: info.cgroup_id,
        comm: Comm(info.comm),
    }
}

fn endpoint(family: u16, raw: &RawAddr, port: u16) -> Result<SocketAddr, DecodeError> {
    Ok(SocketAddr::new(ip_from_raw(family, raw)?, port))
}

fn transition(d: &TcpStateData) -> Result<TcpTransition, DecodeError> {
    Ok(TcpTransition {
        cookie: d.cookie,
        netns: d.netns,
        local: endpoint(d.family, &d.saddr, d.sport)?,
        remote: endpoint(d.family, &d.daddr, d.dport)?,
        old: d.oldstate,
        new: d.newstate,
    })
}

/// Decodes one ring-buffer record. `counted`: the probes were given `tcp_sock` counter
/// offsets, so the counters of [`EventKind::TcpClose`] records mean something.
pub(crate) fn decode(bytes: &[u8], counted: bool) -> Result<KernelEvent, DecodeError> {
    let info: EventInfo = read(bytes, "header")?;
    let header = header(&info);
    let kind = EventKind::from_u32(info.kind).ok_or(DecodeError::UnknownKind(info.kind))?;
    let kind = match kind {
        EventKind::Exec | EventKind::Exit => {
            let e: Event<ProcessData> = read(bytes, "process")?;
            if kind == EventKind::Exec {
                KernelEventKind::Exec { ppid: e.data.ppid }
            } else {
                KernelEventKind::Exit {
                    exit_code: e.data.exit_code,
                }
            }
        }
        EventKind::Connect | EventKind::SendMsg => {
            let e: Event<SockAddrData> = read(bytes, "sock_addr")?;
            let d = e.data;
            KernelEventKind::SockAddr {
                sendmsg: kind == EventKind::SendMsg,
                cookie: d.cookie,
                protocol: transport(d.protocol),
                destination: endpoint(d.family, &d.daddr, d.dport)?,
            }
        }
        EventKind::TcpState => {
            let e: Event<TcpStateData> = read(bytes, "tcp_state")?;
            KernelEventKind::TcpState(transition(&e.data)?)
        }
        EventKind::TcpClose => {
            let e: Event<TcpCloseData> = read(bytes, "tcp_close")?;
            let d = e.data;
            KernelEventKind::TcpClose {
                transition: transition(&d.state)?,
                counters: counted.then_some(TcpCounters {
                    bytes_received: d.bytes_received,
                    bytes_sent: d.bytes_sent,
                    bytes_retrans: d.bytes_retrans,
                    segs_in: d.segs_in,
                    segs_out: d.segs_out,
                }),
            }
        }
        EventKind::File => KernelEventKind::File(file::decode(&bytes[size_of::<EventInfo>()..])?),
        EventKind::FlowStart => {
            let e: Event<FlowData> = read(bytes, "flow")?;
            let d = e.data;
            KernelEventKind::FlowStart {
                cookie: d.cookie,
                protocol: transport(d.protocol).unwrap_or(Transport::Udp),
                local: endpoint(d.family, &d.laddr, d.lport)?,
                remote: endpoint(d.family, &d.raddr, d.rport)?,
                ingress: d.ingress != 0,
            }
        }
    };
    Ok(KernelEvent { header, kind })
}

#[cfg(test)]
mod tests;
