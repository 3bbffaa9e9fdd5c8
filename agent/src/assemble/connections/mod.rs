//! Connection spans: the two ends of a TCP connection or UDP flow, paired, then closed.
//!
//! Join keys: the socket cookie joins a caller's connect()/sendmsg() with the same socket's later
//! events; the 4-tuple (with the network namespace for TCP) pairs a client socket with the
//! server socket facing it. An end left unpaired for [`PAIR_WINDOW_NS`] becomes a one-sided
//! span (the peer is off-node, or in a cgroup Seam does not watch). A TCP span starts when its
//! ends are paired (rules run then) and ends when every watched end has closed; the counters
//! each socket had at close give the bytes and segments each way.
//!
//! Ends arrive and pair in [`pairing`], become spans in [`spans`], and leave in [`lifetime`].
mod lifetime;
mod pairing;
mod spans;

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
};

use super::joins::JoinIndex;
use crate::{
    kernel::events::TcpCounters,
    model::{
        spans::{ProcessRef, Span},
        vocab::Transport,
    },
};

/// How long an end waits for its peer.
pub(crate) const PAIR_WINDOW_NS: u64 = 500_000_000;
/// How long a caller's connect()/sendmsg() is remembered by cookie.
const INTENT_TTL_NS: u64 = 60_000_000_000;
/// How long a connection with one watched end closed waits for the other end's close.
const HALF_CLOSED_NS: u64 = 60_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// One socket's view of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    transport: Transport,
    netns: u32,
    local: SocketAddr,
    remote: SocketAddr,
}

impl FlowKey {
    fn mirrored(&self) -> Self {
        Self {
            local: self.remote,
            remote: self.local,
            ..*self
        }
    }
}

/// A watched socket's close.
#[derive(Clone, Copy, Debug)]
struct Closed {
    ns: u64,
    counters: Option<TcpCounters>,
    /// The TCP state it closed from.
    from: u8,
}

/// A watched socket that became established (or sent its first datagram).
#[derive(Clone, Debug)]
struct End {
    cookie: u64,
    role: Role,
    process: ProcessRef,
    seen_ns: u64,
    closed: Option<Closed>,
    /// Its cgroup stopped being watched (removed, or no longer a tenant's) while it was open:
    /// its close will not be seen.
    lost: bool,
    /// A client end's server as the listener table had it when the client became established:
    /// the listener may close before the pair window ends (a crossing's server end can be
    /// missing, e.g. dropped over its tenant's event budget), and the address was its then.
    listener: Option<ProcessRef>,
}

/// An open connection span and the boot times it needs.
struct Open {
    span: Span,
    client: Option<End>,
    server: Option<End>,
    opened_ns: u64,
}

impl Open {
    fn ends(&self) -> impl Iterator<Item = &End> {
        self.client.iter().chain(self.server.iter())
    }

    /// Every end closed, or can no longer be seen to close.
    fn all_closed(&self) -> bool {
        self.ends().all(|e| e.closed.is_some() || e.lost)
    }

    fn first_close(&self) -> Option<Closed> {
        self.ends().filter_map(|e| e.closed).min_by_key(|c| c.ns)
    }
}

/// Pairs connection ends into spans and follows them until they close.
#[derive(Default)]
pub(crate) struct Connections {
    /// Socket cookie -> the task that called connect()/sendmsg() on it, and when.
    intents: HashMap<u64, (ProcessRef, u64)>,
    /// (netns, port) -> the task that called listen(), and the listener's cookie.
    listeners: HashMap<(u32, u16), (u64, ProcessRef)>,
    /// Listener cookie -> (netns, port): a closing listener has already given its port back
    /// when the kernel reports the close.
    listener_ports: HashMap<u64, (u32, u16)>,
    /// Ends waiting for their peer, by their own view of the flow.
    pending: HashMap<FlowKey, (End, FlowKey)>,
    /// Cookie of a pending end -> its key.
    pending_by_cookie: HashMap<u64, FlowKey>,
    /// Open connection spans by id, and the cookie of each watched end -> id.
    open: HashMap<u64, Open>,
    by_cookie: HashMap<u64, u64>,
    /// (opened_ns, id): eviction order, oldest first.
    age: BTreeSet<(u64, u64)>,
    next_id: u64,
    /// Open and recently ended TCP connection spans, for joins.
    joins: JoinIndex,
}

impl Connections {
    /// Ends and connections currently held (for the open-span cap).
    pub(crate) fn len(&self) -> usize {
        self.pending.len() + self.open.len()
    }

    /// connect() or sendmsg() by `caller` on socket `cookie`.
    pub(crate) fn intent(&mut self, cookie: u64, caller: ProcessRef, ns: u64) {
        self.intents.insert(cookie, (caller, ns));
    }

    /// TCP connections to `port`, open now or ended in the last minute, that a client span of
    /// process `pid` may be joined to (its own process's, or of an unknown process).
    pub(crate) fn known(
        &self,
        port: u16,
        pid: Option<u32>,
    ) -> impl Iterator<Item = &super::joins::Joinable> {
        self.joins.known(port, pid)
    }

    /// The process listening on `port` (any network namespace), if a tenant's.
    pub(crate) fn listener(&self, port: u16) -> Option<&ProcessRef> {
        self.listeners
            .iter()
            .find(|((_, p), _)| *p == port)
            .map(|(_, (_, owner))| owner)
    }
}
