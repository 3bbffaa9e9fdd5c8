//! Ring-buffer events: one [`EventInfo`] header first, then a kind-specific payload.

/// Length of a task's `comm` in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// What an event is. Numbered in ranges (kunai's convention): 1xx process, 2xx network, 3xx
/// files.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A tenant task called `execve` (tp_btf `sched_process_exec`).
    Exec = 100,
    /// A tenant task group exited (tp_btf `sched_process_exit`, group leader only).
    Exit = 101,
    /// `connect()` on an IPv4/IPv6 socket (cgroup_sock_addr connect4/connect6).
    Connect = 200,
    /// `sendmsg()` with a destination on an unconnected UDP socket (sendmsg4/sendmsg6).
    SendMsg = 201,
    /// A TCP socket changed state (tp_btf `inet_sock_set_state`), attributed by the socket.
    TcpState = 202,
    /// A file syscall on a path (open, unlink, rename, truncate) or an exec'd binary.
    File = 300,
    /// First UDP packet between a socket and one peer, seen by cgroup_skb (later packets are only
    /// counted in a map).
    FlowStart = 203,
    /// A TCP socket that had been established closed, with its counters
    /// (tp_btf `inet_sock_set_state` -> `TCP_CLOSE`).
    TcpClose = 204,
}

impl EventKind {
    /// Decodes a raw kind; `None` for kinds this build does not know.
    pub fn from_u32(raw: u32) -> Option<Self> {
        Some(match raw {
            100 => Self::Exec,
            101 => Self::Exit,
            200 => Self::Connect,
            201 => Self::SendMsg,
            202 => Self::TcpState,
            203 => Self::FlowStart,
            204 => Self::TcpClose,
            300 => Self::File,
            _ => return None,
        })
    }
}

/// Header carried first by every event.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventInfo {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Thread group id (user-space pid) of the current task; 0 when the hook ran in softirq
    /// context and the current task says nothing about the event.
    pub pid: u32,
    /// Thread id of the current task.
    pub tid: u32,
    /// Real uid of the current task.
    pub uid: u32,
    /// `bpf_ktime_get_boot_ns()` at the event.
    pub time_ns: u64,
    /// cgroup v2 id the event is attributed to (the socket's own cgroup for socket events).
    pub cgroup_id: u64,
    /// `comm` of the current task (NUL padded).
    pub comm: [u8; COMM_LEN],
}

/// An event: the header, then the payload.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event<T> {
    pub info: EventInfo,
    pub data: T,
}

/// IPv4 or IPv6 address in network byte order; IPv4 uses the first 4 bytes.
pub type RawAddr = [u8; 16];

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;

/// Payload of [`EventKind::Exec`] and [`EventKind::Exit`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessData {
    /// Parent's tgid (exec only; 0 when unknown).
    pub ppid: u32,
    /// Exit code as in `task->exit_code` (exit only).
    pub exit_code: u32,
}

/// Payload of [`EventKind::Connect`] and [`EventKind::SendMsg`]: what the caller asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockAddrData {
    /// Socket cookie, the join key with the other socket hooks.
    pub cookie: u64,
    /// Destination address, network byte order.
    pub daddr: RawAddr,
    /// Destination port, host byte order.
    pub dport: u16,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub protocol: u8,
    pub _pad: [u8; 3],
}

/// Payload of [`EventKind::TcpState`]: a transition with the socket's 4-tuple.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpStateData {
    /// Socket cookie.
    pub cookie: u64,
    /// Network namespace inode of the socket (`sk->__sk_common.skc_net->ns.inum`), 0 if unknown.
    pub netns: u32,
    /// Local address (network byte order).
    pub saddr: RawAddr,
    /// Remote address (network byte order).
    pub daddr: RawAddr,
    /// Local port, host byte order.
    pub sport: u16,
    /// Remote port, host byte order.
    pub dport: u16,
    pub family: u16,
    /// `TCP_*` state before and after (include/net/tcp_states.h).
    pub oldstate: u8,
    pub newstate: u8,
    /// Explicit tail padding: the struct holds no hidden bytes (the verifier and the decoder
    /// see every byte).
    pub _pad: [u8; 4],
}

/// Payload of [`EventKind::TcpClose`]: a socket that had been established (or was connecting)
/// reached `TCP_CLOSE`, with what `struct tcp_sock` counted over its life.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpCloseData {
    /// The socket's 4-tuple and the transition (`newstate` is always `TCP_CLOSE`).
    pub state: TcpStateData,
    /// `tcp_sock->bytes_received`: sequence space received (payload, plus 1 for a FIN).
    pub bytes_received: u64,
    /// `tcp_sock->bytes_sent`: payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// `tcp_sock->bytes_retrans`: payload bytes retransmitted.
    pub bytes_retrans: u64,
    /// `tcp_sock->segs_in`, `segs_out`: segments received and sent (control segments too).
    pub segs_in: u32,
    pub segs_out: u32,
}

/// Payload of [`EventKind::FlowStart`]: the first packet between a socket and a peer, from the
/// packet's own headers (an unconnected UDP socket has no peer address of its own).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlowData {
    pub cookie: u64,
    /// Local address of the socket (network byte order).
    pub laddr: RawAddr,
    /// Remote address.
    pub raddr: RawAddr,
    /// Ports in host byte order.
    pub lport: u16,
    pub rport: u16,
    pub family: u16,
    pub protocol: u8,
    /// 1 if the first packet was ingress, 0 egress.
    pub ingress: u8,
}

/// TCP states (include/net/tcp_states.h).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

// No hidden padding anywhere: each size is the sum of its fields.
const _: () = assert!(size_of::<EventInfo>() == 4 * 4 + 8 + 8 + COMM_LEN);
const _: () = assert!(size_of::<ProcessData>() == 8);
const _: () = assert!(size_of::<SockAddrData>() == 8 + 16 + 2 + 2 + 1 + 3);
const _: () = assert!(size_of::<TcpStateData>() == 8 + 4 + 16 + 16 + 2 * 3 + 2 + 4);
const _: () = assert!(size_of::<TcpCloseData>() == size_of::<TcpStateData>() + 8 * 3 + 4 * 2);
const _: () = assert!(size_of::<FlowData>() == 8 + 16 + 16 + 2 * 3 + 2);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] data without pointers; every bit pattern is valid.
    unsafe impl aya::Pod for EventInfo {}
    unsafe impl aya::Pod for ProcessData {}
    unsafe impl aya::Pod for SockAddrData {}
    unsafe impl aya::Pod for TcpStateData {}
    unsafe impl aya::Pod for TcpCloseData {}
    unsafe impl aya::Pod for FlowData {}
}
