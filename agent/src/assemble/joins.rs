//! TCP connection spans, open or recently ended, indexed for joining application spans: by
//! server port and the client's pid, the two things a client span's join needs to match, so a
//! join looks at its own process's connections to that port rather than every connection. Each
//! is kept as what a join reads of it ([`Joinable`]), not as the whole span.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    net::IpAddr,
};

use crate::model::{
    clock::UnixNanos,
    spans::{AppPeer, Span, SpanBody, SpanRef},
    vocab::Transport,
};

/// What joining an application span reads of a kernel connection span.
#[derive(Clone, Debug)]
pub(crate) struct Joinable {
    pub start: UnixNanos,
    /// None while open.
    pub end: Option<UnixNanos>,
    pub server_ip: IpAddr,
    pub client_pid: Option<u32>,
    /// The application span's peer when joined to this connection.
    pub peer: AppPeer,
}

impl Joinable {
    fn of(span: &Span) -> Option<(JoinKey, Self)> {
        let SpanBody::Connection(c) = &span.body else {
            return None;
        };
        if c.transport != Transport::Tcp {
            return None;
        }
        let client_pid = c.client.process.as_ref().and_then(|p| p.pid);
        let joinable = Self {
            start: span.start,
            end: span.end,
            server_ip: c.server.addr.ip(),
            client_pid,
            peer: AppPeer {
                addr: Some(c.server.addr.ip()),
                port: Some(c.server.addr.port()),
                tenant: c.server.tenant.clone(),
                local: c.server.local,
                process: c.server.process.clone(),
                connection: Some(SpanRef {
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                }),
                tier: None,
            },
        };
        Some(((c.server.addr.port(), client_pid), joinable))
    }
}

/// How long ended connections are remembered for joins.
const RECENT_NS: u64 = 60_000_000_000;
/// Most ended connections remembered.
const MAX_RECENT: usize = 65_536;

/// What a connection is found by: its server port and its client's pid (when known).
type JoinKey = (u16, Option<u32>);

#[derive(Default)]
pub(super) struct JoinIndex {
    /// Open connection spans by id.
    open: HashMap<JoinKey, BTreeMap<u64, Joinable>>,
    /// Ended spans: their boot time of end and key, oldest first, and per key in that order.
    order: VecDeque<(u64, JoinKey)>,
    recent: HashMap<JoinKey, VecDeque<Joinable>>,
}

impl JoinIndex {
    /// Open span `id` started.
    pub(super) fn opened(&mut self, id: u64, span: &Span) {
        if let Some((key, joinable)) = Joinable::of(span) {
            self.open.entry(key).or_default().insert(id, joinable);
        }
    }

    /// Open span `id` ended (then [`JoinIndex::remember`] it).
    pub(super) fn closed(&mut self, id: u64, span: &Span) {
        if let Some((key, _)) = Joinable::of(span)
            && let Some(ids) = self.open.get_mut(&key)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.open.remove(&key);
            }
        }
    }

    /// Keeps an ended TCP connection span for [`RECENT_NS`] (at most [`MAX_RECENT`]).
    pub(super) fn remember(&mut self, ended_ns: u64, span: &Span) {
        let Some((key, joinable)) = Joinable::of(span) else {
            return;
        };
        if self.order.len() >= MAX_RECENT {
            self.pop();
        }
        self.order.push_back((ended_ns, key));
        self.recent.entry(key).or_default().push_back(joinable);
    }

    fn pop(&mut self) {
        if let Some((_, key)) = self.order.pop_front()
            && let Some(spans) = self.recent.get_mut(&key)
        {
            spans.pop_front();
            if spans.is_empty() {
                self.recent.remove(&key);
            }
        }
    }

    /// Forgets what ended [`RECENT_NS`] before `now_ns`.
    pub(super) fn expire(&mut self, now_ns: u64) {
        while self
            .order
            .front()
            .is_some_and(|(ended, _)| now_ns.saturating_sub(*ended) >= RECENT_NS)
        {
            self.pop();
        }
    }

    /// The keys a client span of process `pid` to `port` may join: the connections its own
    /// process made and those of unknown processes; with no pid, every process's.
    fn keys(&self, port: u16, pid: Option<u32>) -> Vec<JoinKey> {
        if pid.is_some() {
            return vec![(port, pid), (port, None)];
        }
        let keys: BTreeSet<JoinKey> = self
            .open
            .keys()
            .chain(self.recent.keys())
            .filter(|k| k.0 == port)
            .copied()
            .collect();
        keys.into_iter().collect()
    }

    /// The connections, open or ended, under `key`.
    fn under(&self, key: JoinKey) -> impl Iterator<Item = &Joinable> {
        let open = self.open.get(&key).into_iter().flat_map(BTreeMap::values);
        open.chain(self.recent.get(&key).into_iter().flatten())
    }

    /// The connections to `port` that a client span of process `pid` may be joined to.
    pub(super) fn known(&self, port: u16, pid: Option<u32>) -> impl Iterator<Item = &Joinable> {
        self.keys(port, pid)
            .into_iter()
            .flat_map(move |key| self.under(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::{connection, process, tcp, tenant};

    fn client_of(pid: Option<u32>, port: u16) -> Span {
        let mut p = process(Some(tenant("a")), "client");
        p.pid = pid;
        connection(
            Transport::Tcp,
            Some(p),
            None,
            "127.0.0.1:40000",
            &format!("127.0.0.1:{port}"),
            None,
        )
    }

    /// Ids of the open spans and the number of ended ones a span of `pid` to `port` may join.
    fn found(index: &JoinIndex, port: u16, pid: Option<u32>) -> (Vec<u64>, usize) {
        let keys = index.keys(port, pid);
        let open = keys
            .iter()
            .flat_map(|k| {
                index
                    .open
                    .get(k)
                    .into_iter()
                    .flat_map(|m| m.keys().copied())
            })
            .collect();
        let ended = keys
            .iter()
            .map(|k| index.recent.get(k).map_or(0, VecDeque::len))
            .sum();
        (open, ended)
    }

    #[test]
    fn finds_the_processs_own_and_unknown_connections_to_the_port() {
        let mut index = JoinIndex::default();
        index.opened(1, &client_of(Some(42), 5432));
        index.opened(2, &client_of(Some(7), 5432));
        index.opened(3, &client_of(None, 5432));
        index.opened(4, &client_of(Some(42), 6379));
        let (mut open, _) = found(&index, 5432, Some(42));
        open.sort_unstable();
        assert_eq!(open, [1, 3], "not pid 7's, not another port's");
        let (mut open, _) = found(&index, 5432, None);
        open.sort_unstable();
        assert_eq!(open, [1, 2, 3], "no pid: every process's");
        // Ended: no longer open, remembered for a minute, then forgotten.
        let span = client_of(Some(42), 5432);
        index.closed(1, &span);
        index.remember(10, &span);
        assert_eq!(found(&index, 5432, Some(42)), (vec![3], 1));
        index.expire(10 + RECENT_NS - 1);
        assert_eq!(found(&index, 5432, Some(42)).1, 1);
        index.expire(10 + RECENT_NS);
        assert_eq!(found(&index, 5432, Some(42)).1, 0);
        assert!(index.recent.is_empty() && index.order.is_empty());
    }

    #[test]
    fn remembers_at_most_max_recent_oldest_out_first() {
        let mut index = JoinIndex::default();
        let span = tcp(Some(tenant("a")), Some(tenant("b")), 5432);
        for i in 0..MAX_RECENT as u64 + 3 {
            index.remember(i, &span);
        }
        assert_eq!(index.order.len(), MAX_RECENT);
        assert_eq!(index.order.front().map(|(t, _)| *t), Some(3));
        assert_eq!(found(&index, 5432, Some(42)).1, MAX_RECENT);
    }
}
