//! Application spans joined to kernel truth. The application knows the tenant it intends
//! (`declared_tenant`); only the kernel knows the actual one: the tenant of the process that
//! sent the span (its cgroup) and, for a client span, the tenant of the peer its connection
//! reached.
//!
//! The process is the one that sent the OTLP request (the kernel's view of its socket) or,
//! failing that, the resource's `process.pid`. A client span is joined to the TCP connection
//! it made: same server address and port, the same client process when the kernel knows it,
//! and lifetimes that overlap within [`SKEW_NS`] (so pooled connections opened long before the
//! call still match). An application span that arrives before its connection was seen waits
//! up to [`WAIT_NS`]; spans that cannot be joined are still evaluated, with the peer's tenant
//! taken from the tenants' `endpoints` (or a tenant's listener on this node), and counted.
use std::{collections::VecDeque, net::IpAddr};

use super::{Ctx, SpanUpdate, connections::Connections, joins::Joinable};
use crate::model::{
    app::AppSpanIn,
    spans::{AppPeer, AppSpan, ProcessRef, Span, SpanBody},
    vocab::{AppSpanKind, JoinOutcome},
};

/// How far application and kernel times may disagree and still overlap.
const SKEW_NS: i64 = 1_000_000_000;
/// How long an unjoined client span waits for its connection.
const WAIT_NS: u64 = 1_000_000_000;
/// Most application spans waiting at once (beyond it they are joined as they are).
const MAX_WAITING: usize = 65_536;

/// Application spans waiting for their connection, with the sending process as it was when
/// they arrived (it may have exited by the time the connection shows up).
#[derive(Default)]
pub(crate) struct AppJoin {
    waiting: VecDeque<(u64, AppSpanIn, Option<ProcessRef>)>,
}

/// The addresses a `server.address` can mean.
enum Address {
    Ip(IpAddr),
    Loopback,
    /// A host name: the port (and the process) decide.
    Name,
}

fn address(text: &str) -> Address {
    match text.trim().trim_start_matches('[').trim_end_matches(']') {
        "localhost" => Address::Loopback,
        t => t.parse().map_or(Address::Name, Address::Ip),
    }
}

impl AppJoin {
    /// Joins what can be joined now; client spans without their connection wait.
    pub(crate) fn add(
        &mut self,
        spans: Vec<AppSpanIn>,
        now_ns: u64,
        connections: &Connections,
        ctx: &Ctx<'_>,
    ) -> Vec<(JoinOutcome, SpanUpdate)> {
        let mut out = Vec::new();
        for span in spans {
            // The kernel's view of the sender wins over what the application says its pid is
            // (a process in a container reports the pid of its own namespace).
            let process = span
                .sender_pid
                .or(span.pid)
                .and_then(|pid| ctx.attributor.process_by_pid(pid, ctx.rules));
            let waits = self.waiting.len() < MAX_WAITING;
            match join(&span, process.as_ref(), connections, ctx, waits) {
                Some(done) => out.push(done),
                None => self.waiting.push_back((now_ns, span, process)),
            }
        }
        out
    }

    /// Retries the waiting spans; those that waited [`WAIT_NS`] are joined as they are.
    pub(crate) fn tick(
        &mut self,
        now_ns: u64,
        connections: &Connections,
        ctx: &Ctx<'_>,
    ) -> Vec<(JoinOutcome, SpanUpdate)> {
        let mut out = Vec::new();
        let mut still = VecDeque::new();
        for (arrived, span, process) in self.waiting.drain(..) {
            let may_wait = now_ns.saturating_sub(arrived) < WAIT_NS;
            match join(&span, process.as_ref(), connections, ctx, may_wait) {
                Some(done) => out.push(done),
                None => still.push_back((arrived, span, process)),
            }
        }
        self.waiting = still;
        out
    }

    /// At shutdown: everything waiting is joined as it is.
    pub(crate) fn flush(
        &mut self,
        connections: &Connections,
        ctx: &Ctx<'_>,
    ) -> Vec<(JoinOutcome, SpanUpdate)> {
        self.waiting
            .drain(..)
            .filter_map(|(_, span, process)| join(&span, process.as_ref(), connections, ctx, false))
            .collect()
    }
}

/// The joined span, or `None` to wait (only when `may_wait`).
fn join(
    span: &AppSpanIn,
    process: Option<&ProcessRef>,
    connections: &Connections,
    ctx: &Ctx<'_>,
    may_wait: bool,
) -> Option<(JoinOutcome, SpanUpdate)> {
    let mut outcome = if process.is_some() {
        JoinOutcome::Process
    } else {
        JoinOutcome::Unmatched
    };
    let peer = if span.kind == AppSpanKind::Client {
        match connection(span, process, connections) {
            Some(kernel) => {
                outcome = JoinOutcome::Joined;
                Some(kernel)
            }
            None if may_wait => return None,
            None => {
                outcome = JoinOutcome::Unmatched;
                span.server_port
                    .map(|port| unjoined_peer(span, port, connections, ctx))
            }
        }
    } else {
        None
    };
    let app = AppSpan {
        service: span.service.clone(),
        name: span.name.clone(),
        kind: span.kind,
        status: span.status,
        declared_tenant: span.declared_tenant.clone(),
        process: process.cloned(),
        peer,
        attributes: span.attributes.clone(),
    };
    let mut whole = Span {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        start: span.start,
        end: Some(span.end),
        end_reason: None,
        body: SpanBody::App(app),
    };
    crate::assemble::tier::classify(&mut whole, ctx.rules);
    Some((outcome, SpanUpdate::Whole(whole)))
}

/// The kernel connection a client span made, as its peer.
fn connection(
    span: &AppSpanIn,
    process: Option<&ProcessRef>,
    connections: &Connections,
) -> Option<AppPeer> {
    let port = span.server_port?;
    let wanted = address(span.server_address.as_deref().unwrap_or("localhost"));
    let pid = process.and_then(|p| p.pid);
    let (start, end) = (span.start.0 - SKEW_NS, span.end.0 + SKEW_NS);
    let mut best: Option<(bool, i64, &Joinable)> = None;
    for k in connections.known(port, pid) {
        if k.start.0 > end || k.end.is_some_and(|e| e.0 < start) {
            continue;
        }
        let ip = k.server_ip.to_canonical();
        let same_process = pid.is_some() && k.client_pid == pid;
        let address_ok = match wanted {
            Address::Ip(want) => want.to_canonical() == ip,
            Address::Loopback => ip.is_loopback(),
            // A name says nothing about the address: only the process can tell.
            Address::Name => same_process,
        };
        // A connection another known process made is not this span's.
        if !address_ok || (pid.is_some() && k.client_pid.is_some() && !same_process) {
            continue;
        }
        let distance = (k.start.0 - span.start.0).abs();
        let better = best.is_none_or(|(s, d, _)| (same_process, -distance) > (s, -d));
        if better {
            best = Some((same_process, distance, k));
        }
    }
    best.map(|(_, _, k)| k.peer.clone())
}

/// The peer of a client span no kernel connection matched: a tenant's listener on this node,
/// else the owner of the address in `endpoints`.
fn unjoined_peer(span: &AppSpanIn, port: u16, connections: &Connections, ctx: &Ctx<'_>) -> AppPeer {
    let addr = match span.server_address.as_deref().map(address) {
        Some(Address::Ip(ip)) => Some(ip),
        Some(Address::Loopback) | None => Some(IpAddr::from([127, 0, 0, 1])),
        Some(Address::Name) => None,
    };
    let local = addr.is_some_and(|ip| ctx.attributor.local.contains(ip));
    let listener = local.then(|| connections.listener(port)).flatten();
    AppPeer {
        addr,
        port: Some(port),
        tenant: match listener {
            Some(l) => l.tenant.clone(),
            None => addr.and_then(|ip| ctx.rules.tenant_for_endpoint(ip, port)),
        },
        local,
        process: listener.cloned(),
        connection: None,
        tier: None,
    }
}
