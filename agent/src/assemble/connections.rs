//! Connection spans: the two ends of a TCP connection or UDP flow, paired, then closed.
//!
//! Join keys: the socket cookie joins a caller's connect()/sendmsg() with the same socket's later
//! events; the 4-tuple (with the network namespace for TCP) pairs a client socket with the
//! server socket facing it. An end left unpaired for [`PAIR_WINDOW_NS`] becomes a one-sided
//! span (the peer is off-node, or in a cgroup Seam does not watch). A TCP span starts when its
//! ends are paired (rules run then) and ends when every watched end has closed; the counters
//! each socket had at close give the bytes and segments each way.
use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
};

use seam_common::tcp_state;

use super::{Ctx, SpanUpdate, joins::JoinIndex};
use crate::{
    kernel::events::{TcpCounters, TcpTransition},
    model::{
        spans::{Connection, ConnectionEnd, ProcessRef, Span, SpanBody, SpanId, TraceId, Traffic},
        vocab::{EndReason, Transport},
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

/// What a socket that closed from TCP state `from` counted. `bytes_received` is sequence space
/// and holds the peer's FIN once it arrived: the states a socket closes from after receiving
/// the peer's FIN say so (`FIN_WAIT2` moves to TIME_WAIT on it; `CLOSE_WAIT`, `LAST_ACK` and
/// `CLOSING` follow it).
fn traffic(c: TcpCounters, from: u8) -> Traffic {
    let fin_received = matches!(
        from,
        tcp_state::FIN_WAIT2 | tcp_state::CLOSE_WAIT | tcp_state::LAST_ACK | tcp_state::CLOSING
    );
    Traffic {
        bytes_sent: c.bytes_sent.saturating_sub(c.bytes_retrans),
        bytes_received: c.bytes_received.saturating_sub(u64::from(fin_received)),
        bytes_retransmitted: c.bytes_retrans,
        segments_sent: c.segs_out,
        segments_received: c.segs_in,
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

    /// A TCP transition other than a close.
    pub(crate) fn tcp(
        &mut self,
        t: &TcpTransition,
        cgroup_id: u64,
        ns: u64,
        task: Option<ProcessRef>,
        ctx: &mut Ctx<'_>,
    ) -> Vec<SpanUpdate> {
        let key = FlowKey {
            transport: Transport::Tcp,
            netns: t.netns,
            local: t.local,
            remote: t.remote,
        };
        match (t.old, t.new) {
            (tcp_state::CLOSE, tcp_state::LISTEN) => {
                if let Some(owner) = task {
                    let port = (t.netns, t.local.port());
                    self.listeners.insert(port, (t.cookie, owner));
                    self.listener_ports.insert(t.cookie, port);
                }
                Vec::new()
            }
            (tcp_state::LISTEN, tcp_state::CLOSE) => {
                if let Some(port) = self.listener_ports.remove(&t.cookie)
                    && self
                        .listeners
                        .get(&port)
                        .is_some_and(|(c, _)| *c == t.cookie)
                {
                    self.listeners.remove(&port);
                }
                Vec::new()
            }
            (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => {
                // The caller of connect() comes with the event (saved by the probe when the
                // socket started connecting), or from a connect intent of the same socket.
                let owner = self.intents.remove(&t.cookie).map(|(c, _)| c).or(task);
                let process = ctx.attributor.socket(cgroup_id, owner.as_ref());
                self.arrive(key, Role::Client, t.cookie, process, ns, ctx)
            }
            (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
                let owner = self
                    .listeners
                    .get(&(t.netns, t.local.port()))
                    .map(|(_, owner)| owner.clone());
                let process = ctx.attributor.socket(cgroup_id, owner.as_ref());
                self.arrive(key, Role::Server, t.cookie, process, ns, ctx)
            }
            _ => Vec::new(),
        }
    }

    /// A watched TCP socket closed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tcp_close(
        &mut self,
        t: &TcpTransition,
        counters: Option<TcpCounters>,
        cgroup_id: u64,
        ns: u64,
        task: Option<ProcessRef>,
        ctx: &mut Ctx<'_>,
    ) -> Vec<SpanUpdate> {
        let closed = Closed {
            ns,
            counters,
            from: t.old,
        };
        if t.old == tcp_state::SYN_SENT {
            // A connect() that never completed: an attempt, as a one-sided span.
            self.pending_by_cookie.remove(&t.cookie);
            let owner = self.intents.remove(&t.cookie).map(|(c, _)| c).or(task);
            let process = ctx.attributor.socket(cgroup_id, owner.as_ref());
            let end = End {
                cookie: t.cookie,
                role: Role::Client,
                process,
                seen_ns: ns,
                closed: Some(closed),
                lost: false,
                listener: None,
            };
            let server = self.unwatched_end(t.netns, t.remote, None, ctx);
            let open = self.span(
                Transport::Tcp,
                Some(t.netns),
                Some(end),
                None,
                t.local,
                server,
                ns,
                ctx,
            );
            return vec![SpanUpdate::Whole(self.finish(&open, None, ns))];
        }
        if let Some(id) = self.by_cookie.get(&t.cookie).copied() {
            let Some(open) = self.open.get_mut(&id) else {
                return Vec::new();
            };
            for end in open.client.iter_mut().chain(open.server.iter_mut()) {
                if end.cookie == t.cookie {
                    end.closed = Some(closed);
                }
            }
            if open.all_closed() {
                return self.end(id, None, ns).into_iter().collect();
            }
            return Vec::new();
        }
        if let Some(key) = self.pending_by_cookie.get(&t.cookie)
            && let Some((end, _)) = self.pending.get_mut(key)
        {
            end.closed = Some(closed);
        }
        Vec::new()
    }

    /// The first UDP datagram between a socket and a peer (`ingress`: the socket received it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn flow(
        &mut self,
        cookie: u64,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        ingress: bool,
        cgroup_id: u64,
        task: Option<ProcessRef>,
        ns: u64,
        ctx: &mut Ctx<'_>,
    ) -> Vec<SpanUpdate> {
        let owner = self.intents.get(&cookie).map(|(c, _)| c.clone());
        let process = match (owner, task) {
            (Some(owner), _) => ctx.attributor.socket(cgroup_id, Some(&owner)),
            (None, Some(task)) => task,
            (None, None) => ctx.attributor.socket(cgroup_id, None),
        };
        let key = FlowKey {
            transport,
            netns: 0,
            local,
            remote,
        };
        let role = if ingress { Role::Server } else { Role::Client };
        self.arrive(key, role, cookie, process, ns, ctx)
    }

    fn arrive(
        &mut self,
        key: FlowKey,
        role: Role,
        cookie: u64,
        process: ProcessRef,
        ns: u64,
        ctx: &mut Ctx<'_>,
    ) -> Vec<SpanUpdate> {
        let listener = (role == Role::Client && key.transport == Transport::Tcp)
            .then(|| self.listener_of(key.netns, key.remote, ctx))
            .flatten()
            .cloned();
        let end = End {
            cookie,
            role,
            process,
            seen_ns: ns,
            closed: None,
            lost: false,
            listener,
        };
        if let Some((peer, peer_key)) = self.pending.remove(&key.mirrored()) {
            self.pending_by_cookie.remove(&peer.cookie);
            if peer.role != role {
                let (client, server, client_key) = match role {
                    Role::Client => (end, peer, key),
                    Role::Server => (peer, end, peer_key),
                };
                let start = client.seen_ns.min(server.seen_ns);
                let netns = (key.transport == Transport::Tcp).then_some(key.netns);
                let client_addr = client_key.local;
                let server_addr = client_key.remote;
                let server_end = self.watched_end(&server, server_addr);
                let open = self.span(
                    key.transport,
                    netns,
                    Some(client),
                    Some(server),
                    client_addr,
                    server_end,
                    start,
                    ctx,
                );
                return self.started(open);
            }
            // Same role on both sides (e.g. UDP peers that both sent first): keep both.
            self.pending_by_cookie.insert(peer.cookie, peer_key);
            self.pending.insert(peer_key, (peer, peer_key));
        }
        self.pending_by_cookie.insert(cookie, key);
        self.pending.insert(key, (end, key));
        Vec::new()
    }

    /// The tenant process listening on `addr`, when it is an address of this node.
    fn listener_of(&self, netns: u32, addr: SocketAddr, ctx: &Ctx<'_>) -> Option<&ProcessRef> {
        ctx.attributor
            .local
            .contains(addr.ip())
            .then(|| self.listeners.get(&(netns, addr.port())))
            .flatten()
            .map(|(_, owner)| owner)
    }

    /// The server end of a span, from a watched server socket.
    fn watched_end(&self, server: &End, addr: SocketAddr) -> ConnectionEnd {
        ConnectionEnd {
            addr,
            process: Some(server.process.clone()),
            tenant: server.process.tenant.clone(),
            local: true,
            traffic: None,
            tier: None,
        }
    }

    /// An end Seam does not watch: its tenant is the owner of its address (a listener of a
    /// tenant on this node in the same network namespace, else the tenants' `endpoints`).
    /// `listener`: the owner as looked up earlier (see [`End::listener`]), else looked up now.
    fn unwatched_end(
        &self,
        netns: u32,
        addr: SocketAddr,
        listener: Option<&ProcessRef>,
        ctx: &Ctx<'_>,
    ) -> ConnectionEnd {
        let local = ctx.attributor.local.contains(addr.ip());
        let listener = listener.or_else(|| self.listener_of(netns, addr, ctx));
        ConnectionEnd {
            addr,
            process: listener.cloned(),
            tenant: match listener {
                Some(l) => l.tenant.clone(),
                None => ctx.rules.tenant_for_endpoint(addr.ip(), addr.port()),
            },
            local,
            traffic: None,
            tier: None,
        }
    }

    /// A new open span with the given ends (`server` already built); ids from the acting
    /// process's execution.
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        transport: Transport,
        netns: Option<u32>,
        client: Option<End>,
        server: Option<End>,
        client_addr: SocketAddr,
        server_end: ConnectionEnd,
        start_ns: u64,
        ctx: &Ctx<'_>,
    ) -> Open {
        let client_end = match &client {
            Some(c) => ConnectionEnd {
                addr: client_addr,
                process: Some(c.process.clone()),
                tenant: c.process.tenant.clone(),
                local: true,
                traffic: None,
                tier: None,
            },
            None => ConnectionEnd {
                addr: client_addr,
                process: None,
                tenant: ctx
                    .rules
                    .tenant_for_endpoint(client_addr.ip(), client_addr.port()),
                local: ctx.attributor.local.contains(client_addr.ip()),
                traffic: None,
                tier: None,
            },
        };
        // The connection belongs to the trace of the process that acted: the client when it
        // is watched, else the server.
        let parent = client
            .as_ref()
            .and_then(|c| c.process.execution)
            .or_else(|| server.as_ref().and_then(|s| s.process.execution));
        let mut span = Span {
            trace_id: parent.map_or_else(TraceId::random, |p| p.trace_id),
            span_id: SpanId::random(),
            parent_span_id: parent.map(|p| p.span_id),
            start: ctx.clock.unix(start_ns),
            end: None,
            end_reason: None,
            body: SpanBody::Connection(Connection {
                transport,
                netns,
                client: client_end,
                server: server_end,
            }),
        };
        crate::assemble::tier::classify(&mut span, ctx.rules);
        Open {
            span,
            client,
            server,
            opened_ns: start_ns,
        }
    }

    /// A paired or one-sided span: UDP flows are whole at once; TCP spans stay open until their
    /// ends close (or are whole at once if they already did).
    fn started(&mut self, mut open: Open) -> Vec<SpanUpdate> {
        if let SpanBody::Connection(Connection {
            transport: Transport::Udp,
            ..
        }) = open.span.body
        {
            open.span.end = Some(open.span.start);
            open.span.end_reason = Some(EndReason::Instant);
            return vec![SpanUpdate::Whole(open.span)];
        }
        if open.all_closed() {
            let span = self.finish(&open, None, open.opened_ns);
            self.joins.remember(open.opened_ns, &span);
            return vec![SpanUpdate::Whole(span)];
        }
        let id = self.next_id;
        self.next_id += 1;
        for end in open.ends() {
            self.by_cookie.insert(end.cookie, id);
        }
        self.age.insert((open.opened_ns, id));
        self.joins.opened(id, &open.span);
        let update = SpanUpdate::Started(open.span.clone());
        self.open.insert(id, open);
        vec![update]
    }

    /// Ends open span `id` at boot time `now_ns` (`reason` overrides the one its closes give).
    fn end(&mut self, id: u64, reason: Option<EndReason>, now_ns: u64) -> Option<SpanUpdate> {
        let open = self.open.remove(&id)?;
        self.age.remove(&(open.opened_ns, id));
        for end in open.ends() {
            self.by_cookie.remove(&end.cookie);
        }
        self.joins.closed(id, &open.span);
        let span = self.finish(&open, reason, now_ns);
        self.joins.remember(now_ns, &span);
        Some(SpanUpdate::Ended(span))
    }

    /// The span with its end time, reason and counters. A span ended by its closes ends at
    /// the last close; one ended for another `reason` at `now_ns`.
    fn finish(&self, open: &Open, reason: Option<EndReason>, now_ns: u64) -> Span {
        let first = open.first_close();
        let last_ns = open.ends().filter_map(|e| e.closed).map(|c| c.ns).max();
        let reason = reason.unwrap_or_else(|| match first.map(|c| c.from) {
            Some(tcp_state::SYN_SENT) => EndReason::Failed,
            Some(
                tcp_state::FIN_WAIT1
                | tcp_state::FIN_WAIT2
                | tcp_state::CLOSING
                | tcp_state::TIME_WAIT
                | tcp_state::LAST_ACK,
            ) => EndReason::Closed,
            Some(_) => EndReason::Reset,
            None => EndReason::Unobserved,
        });
        let end_ns = match reason {
            EndReason::Evicted | EndReason::AgentStopped | EndReason::Unobserved => {
                now_ns.max(open.opened_ns)
            }
            _ => last_ns.unwrap_or(now_ns).max(open.opened_ns),
        };
        let traffic = |end: &Option<End>| {
            let closed = end.as_ref().and_then(|e| e.closed)?;
            closed.counters.map(|c| traffic(c, closed.from))
        };
        let mut span = open.span.clone();
        // The start's wall time plus the monotonic duration: a wall clock stepped while the
        // connection was open (NTP, an operator) cannot make it end before it started or last
        // for the size of the step.
        span.end = Some(span.start.plus_ns(end_ns - open.opened_ns));
        span.end_reason = Some(reason);
        if let SpanBody::Connection(c) = &mut span.body {
            c.client.traffic = traffic(&open.client);
            c.server.traffic = traffic(&open.server);
        }
        span
    }

    /// Turns ends that waited longer than [`PAIR_WINDOW_NS`] into one-sided spans, ends
    /// half-closed connections whose other end never reported its close, and forgets stale
    /// intents.
    pub(crate) fn expire(&mut self, now_ns: u64, ctx: &mut Ctx<'_>) -> Vec<SpanUpdate> {
        self.intents
            .retain(|_, (_, seen)| now_ns.saturating_sub(*seen) < INTENT_TTL_NS);
        self.joins.expire(now_ns);
        let expired: Vec<FlowKey> = self
            .pending
            .iter()
            .filter(|(_, (e, _))| now_ns.saturating_sub(e.seen_ns) >= PAIR_WINDOW_NS)
            .map(|(k, _)| *k)
            .collect();
        let mut updates = Vec::with_capacity(expired.len());
        for key in expired {
            let Some((end, _)) = self.pending.remove(&key) else {
                continue;
            };
            self.pending_by_cookie.remove(&end.cookie);
            let netns = (key.transport == Transport::Tcp).then_some(key.netns);
            let seen = end.seen_ns;
            let open = match end.role {
                Role::Client => {
                    let server =
                        self.unwatched_end(key.netns, key.remote, end.listener.as_ref(), ctx);
                    self.span(
                        key.transport,
                        netns,
                        Some(end),
                        None,
                        key.local,
                        server,
                        seen,
                        ctx,
                    )
                }
                Role::Server => {
                    let server = self.watched_end(&end, key.local);
                    self.span(
                        key.transport,
                        netns,
                        None,
                        Some(end),
                        key.remote,
                        server,
                        seen,
                        ctx,
                    )
                }
            };
            updates.extend(self.started(open));
        }
        let half_closed: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| {
                o.first_close()
                    .is_some_and(|c| now_ns.saturating_sub(c.ns) >= HALF_CLOSED_NS)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in half_closed {
            updates.extend(self.end(id, None, now_ns));
        }
        updates
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

    /// Ends the oldest open spans until at most `keep` are open; returns them (evicted).
    pub(crate) fn evict(&mut self, keep: usize, now_ns: u64) -> Vec<SpanUpdate> {
        let mut updates = Vec::new();
        while self.open.len() > keep {
            let Some(&(_, id)) = self.age.iter().next() else {
                break;
            };
            updates.extend(self.end(id, Some(EndReason::Evicted), now_ns));
        }
        updates
    }

    /// The cgroup `cgroup_id` is no longer watched, so the closes of its open ends will not be
    /// seen: a span whose other end is still watched and open stays open until that end
    /// closes; one with nothing left to see ends now.
    pub(crate) fn unwatched(&mut self, cgroup_id: u64, now_ns: u64) -> Vec<SpanUpdate> {
        let mut done = Vec::new();
        for (id, open) in &mut self.open {
            let mut touched = false;
            for end in open.client.iter_mut().chain(open.server.iter_mut()) {
                if end.closed.is_none() && !end.lost && end.process.cgroup_id == cgroup_id {
                    end.lost = true;
                    touched = true;
                }
            }
            if touched && open.all_closed() {
                done.push(*id);
            }
        }
        done.into_iter()
            .filter_map(|id| self.end(id, None, now_ns))
            .collect()
    }

    /// Flushes everything (at shutdown): pending ends become one-sided spans, open spans end.
    pub(crate) fn flush(&mut self, now_ns: u64, ctx: &mut Ctx<'_>) -> Vec<SpanUpdate> {
        // Every pending end is past its window at the end of time.
        let mut updates = self.expire(u64::MAX, ctx);
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            let closed = self.open.get(&id).is_some_and(Open::all_closed);
            let reason = (!closed).then_some(EndReason::AgentStopped);
            updates.extend(self.end(id, reason, now_ns));
        }
        updates
    }
}
