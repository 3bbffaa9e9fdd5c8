//! TCP connection spans, open or recently ended, indexed for joining application spans: by
//! server port and the client's pid, the two things a client span's join needs to match, so a
//! join looks at its own process's connections to that port rather than every connection.
use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::{
    spans::{Span, SpanBody},
    vocab::Transport,
};

/// How long ended connections are remembered for joins.
const RECENT_NS: u64 = 60_000_000_000;
/// Most ended connections remembered.
const MAX_RECENT: usize = 65_536;

/// What a connection is found by: its server port and its client's pid (when known).
type JoinKey = (u16, Option<u32>);

fn join_key(span: &Span) -> Option<JoinKey> {
    match &span.body {
        SpanBody::Connection(c) if c.transport == Transport::Tcp => Some((
            c.server.addr.port(),
            c.client.process.as_ref().and_then(|p| p.pid),
        )),
        _ => None,
    }
}

#[derive(Default)]
pub(super) struct JoinIndex {
    /// Ids of open connection spans.
    open: HashMap<JoinKey, BTreeSet<u64>>,
    /// Ended spans: their boot time of end and key, oldest first, and per key in that order.
    order: VecDeque<(u64, JoinKey)>,
    recent: HashMap<JoinKey, VecDeque<Span>>,
}

impl JoinIndex {
    /// Open span `id` started.
    pub(super) fn opened(&mut self, id: u64, span: &Span) {
        if let Some(key) = join_key(span) {
            self.open.entry(key).or_default().insert(id);
        }
    }

    /// Open span `id` ended (then [`JoinIndex::remember`] it).
    pub(super) fn closed(&mut self, id: u64, span: &Span) {
        if let Some(key) = join_key(span)
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
        let Some(key) = join_key(span) else {
            return;
        };
        if self.order.len() >= MAX_RECENT {
            self.pop();
        }
        self.order.push_back((ended_ns, key));
        self.recent.entry(key).or_default().push_back(span.clone());
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
    pub(super) fn keys(&self, port: u16, pid: Option<u32>) -> Vec<JoinKey> {
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

    /// Ids of the open spans under `key`.
    pub(super) fn open_ids(&self, key: JoinKey) -> impl Iterator<Item = u64> + '_ {
        self.open.get(&key).into_iter().flatten().copied()
    }

    /// The ended spans under `key`.
    pub(super) fn recent(&self, key: JoinKey) -> impl Iterator<Item = &Span> {
        self.recent.get(&key).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::fixtures::{connection, process, tcp, tenant};

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

    fn found(index: &JoinIndex, port: u16, pid: Option<u32>) -> (Vec<u64>, usize) {
        let keys = index.keys(port, pid);
        let open = keys.iter().flat_map(|k| index.open_ids(*k)).collect();
        let recent = keys.iter().map(|k| index.recent(*k).count()).sum();
        (open, recent)
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
