//! How spans leave: ends unpaired past the pairing window become one-sided, half-closed and
//! unobservable connections end, the oldest are evicted over the cap, everything at shutdown.
use super::{Connections, FlowKey, HALF_CLOSED_NS, INTENT_TTL_NS, Open, PAIR_WINDOW_NS, Role};
use crate::{
    assemble::{Ctx, SpanUpdate},
    model::vocab::{EndReason, Transport},
};

impl Connections {
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
