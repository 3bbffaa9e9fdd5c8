//! Ends arriving: listeners registered, callers joined by cookie, established and first-datagram
//! ends paired with the end facing them by 4-tuple, closes recorded.
use std::net::SocketAddr;

use seam_common::tcp_state;

use super::{Closed, Connections, End, FlowKey, Role};
use crate::{
    assemble::{Ctx, SpanUpdate},
    kernel::events::{TcpCounters, TcpTransition},
    model::{spans::ProcessRef, vocab::Transport},
};

impl Connections {
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
    pub(super) fn listener_of(
        &self,
        netns: u32,
        addr: SocketAddr,
        ctx: &Ctx<'_>,
    ) -> Option<&ProcessRef> {
        ctx.attributor
            .local
            .contains(addr.ip())
            .then(|| self.listeners.get(&(netns, addr.port())))
            .flatten()
            .map(|(_, owner)| owner)
    }
}
