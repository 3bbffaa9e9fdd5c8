//! From ends to spans: each end's address, process and tenant, the span's trace, and at the
//! end its end time, reason and each side's traffic.
use std::net::SocketAddr;

use seam_common::tcp_state;

use super::{Connections, End, Open};
use crate::{
    assemble::{Ctx, SpanUpdate},
    kernel::events::TcpCounters,
    model::{
        spans::{Connection, ConnectionEnd, ProcessRef, Span, SpanBody, SpanId, TraceId, Traffic},
        vocab::{EndReason, Transport},
    },
};

impl Connections {
    /// The server end of a span, from a watched server socket.
    pub(super) fn watched_end(&self, server: &End, addr: SocketAddr) -> ConnectionEnd {
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
    pub(super) fn unwatched_end(
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
    pub(super) fn span(
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
    pub(super) fn started(&mut self, mut open: Open) -> Vec<SpanUpdate> {
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
    pub(super) fn end(
        &mut self,
        id: u64,
        reason: Option<EndReason>,
        now_ns: u64,
    ) -> Option<SpanUpdate> {
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
    pub(super) fn finish(&self, open: &Open, reason: Option<EndReason>, now_ns: u64) -> Span {
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
