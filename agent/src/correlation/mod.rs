//! Correlation: joins the ends of a connection into one span (third stage).
//!
//! Join keys: the socket cookie joins a caller's connect()/sendmsg() with the same socket's later
//! events; the 4-tuple (with the network namespace for TCP) pairs a client socket with the
//! server socket facing it. An end left unpaired for [`PAIR_WINDOW_NS`] becomes a one-sided span
//! (the peer is off-node, or in a cgroup Seam does not watch).
pub mod file;
pub mod span;

use std::collections::HashMap;

pub use file::FileSpan;
use seam_common::tcp_state;
pub use span::{ConnectionSpan, SpanEnd, SpanId, TraceId};

use crate::{
    attribution::{Attributor, Caller},
    events::{Endpoint, KernelEvent, KernelEventKind, Transport},
};

/// How long an end waits for its peer.
pub const PAIR_WINDOW_NS: u64 = 500_000_000;
/// How long a caller's connect()/sendmsg() is remembered by cookie.
const INTENT_TTL_NS: u64 = 60_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// One socket's view of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    protocol: Transport,
    netns: u32,
    local: Endpoint,
    remote: Endpoint,
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

struct Pending {
    role: Role,
    end: SpanEnd,
    first_ns: u64,
}

/// Pairs connection ends into [`ConnectionSpan`]s.
#[derive(Default)]
pub struct Correlator {
    /// Socket cookie -> the task that called connect()/sendmsg() on it.
    intents: HashMap<u64, (Caller, u64)>,
    /// (netns, port) -> the task that called listen().
    listeners: HashMap<(u32, u16), Caller>,
    pending: HashMap<FlowKey, Pending>,
}

impl Correlator {
    /// The spans of a file event (no pairing needed: the kernel resolved the path).
    pub fn on_file_event(&self, event: &KernelEvent, attribution: &Attributor) -> Vec<FileSpan> {
        let KernelEventKind::File(file) = &event.kind else {
            return Vec::new();
        };
        let h = &event.header;
        let caller = attribution.caller(h.cgroup_id, h.pid, &h.comm, h.uid, None);
        file::spans(file, &caller, h.time_ns)
    }

    /// Feeds one event; returns the spans it completed.
    pub fn on_event(
        &mut self,
        event: &KernelEvent,
        attribution: &Attributor,
    ) -> Vec<ConnectionSpan> {
        let h = &event.header;
        let caller = || attribution.caller(h.cgroup_id, h.pid, &h.comm, h.uid, None);
        match &event.kind {
            KernelEventKind::SockAddr { cookie, .. } => {
                self.intents.insert(*cookie, (caller(), h.time_ns));
                Vec::new()
            }
            KernelEventKind::TcpState {
                cookie,
                netns,
                local,
                remote,
                old,
                new,
            } => {
                let key = FlowKey {
                    protocol: Transport::Tcp,
                    netns: *netns,
                    local: *local,
                    remote: *remote,
                };
                match (*old, *new) {
                    (tcp_state::CLOSE, tcp_state::SYN_SENT) => {
                        self.intents.entry(*cookie).or_insert((caller(), h.time_ns));
                        Vec::new()
                    }
                    (tcp_state::CLOSE, tcp_state::LISTEN) => {
                        self.listeners.insert((*netns, local.port), caller());
                        Vec::new()
                    }
                    (tcp_state::LISTEN, tcp_state::CLOSE) => {
                        self.listeners.remove(&(*netns, local.port));
                        Vec::new()
                    }
                    (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => {
                        let owner = self.intents.remove(cookie).map(|(c, _)| c);
                        let caller = attribution.caller(h.cgroup_id, 0, "", 0, owner.as_ref());
                        self.arrive(key, Role::Client, *cookie, caller, h.time_ns)
                    }
                    (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
                        let owner = self.listeners.get(&(*netns, local.port)).cloned();
                        let caller = attribution.caller(h.cgroup_id, 0, "", 0, owner.as_ref());
                        self.arrive(key, Role::Server, *cookie, caller, h.time_ns)
                    }
                    (_, tcp_state::CLOSE) => {
                        self.intents.remove(cookie);
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
            KernelEventKind::FlowStart {
                cookie,
                protocol,
                local,
                remote,
                ingress,
            } => {
                let owner = self.intents.get(cookie).map(|(c, _)| c.clone());
                let caller = match owner {
                    Some(owner) => attribution.caller(h.cgroup_id, 0, "", 0, Some(&owner)),
                    None => caller(),
                };
                let key = FlowKey {
                    protocol: *protocol,
                    netns: 0,
                    local: *local,
                    remote: *remote,
                };
                let role = if *ingress { Role::Server } else { Role::Client };
                self.arrive(key, role, *cookie, caller, h.time_ns)
            }
            KernelEventKind::Exec { .. }
            | KernelEventKind::Exit { .. }
            | KernelEventKind::File(_) => Vec::new(),
        }
    }

    fn arrive(
        &mut self,
        key: FlowKey,
        role: Role,
        cookie: u64,
        caller: Caller,
        time_ns: u64,
    ) -> Vec<ConnectionSpan> {
        let end = SpanEnd {
            caller,
            cookie,
            endpoint: key.local,
        };
        if let Some(peer) = self.pending.remove(&key.mirrored()) {
            if peer.role != role {
                let (client, server) = match role {
                    Role::Client => (end, peer.end),
                    Role::Server => (peer.end, end),
                };
                let start = peer.first_ns.min(time_ns);
                return vec![ConnectionSpan::paired(key.protocol, client, server, start)];
            }
            // Same role on both sides (e.g. UDP peers that both sent first): keep both.
            self.pending.insert(key.mirrored(), peer);
        }
        self.pending.insert(
            key,
            Pending {
                role,
                end,
                first_ns: time_ns,
            },
        );
        Vec::new()
    }

    /// Turns ends that waited longer than [`PAIR_WINDOW_NS`] into one-sided spans, and forgets
    /// stale intents.
    pub fn expire(&mut self, now_ns: u64) -> Vec<ConnectionSpan> {
        self.intents
            .retain(|_, (_, seen)| now_ns.saturating_sub(*seen) < INTENT_TTL_NS);
        let expired: Vec<FlowKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ns.saturating_sub(p.first_ns) >= PAIR_WINDOW_NS)
            .map(|(k, _)| *k)
            .collect();
        let mut spans = Vec::with_capacity(expired.len());
        for key in expired {
            if let Some(p) = self.pending.remove(&key) {
                spans.push(match p.role {
                    Role::Client => {
                        ConnectionSpan::client_only(key.protocol, p.end, key.remote, p.first_ns)
                    }
                    Role::Server => {
                        ConnectionSpan::server_only(key.protocol, p.end, key.remote, p.first_ns)
                    }
                });
            }
        }
        spans
    }

    /// Ends still waiting for a peer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Flushes everything (at shutdown).
    pub fn flush(&mut self) -> Vec<ConnectionSpan> {
        self.expire(u64::MAX)
    }
}

#[cfg(test)]
mod tests;
