//! Spans for tests: processes in tenants, connections, file accesses.
use std::net::SocketAddr;

use crate::model::{
    spans::{
        Connection, ConnectionEnd, FileAccess, ProcessRef, Span, SpanBody, SpanId, TenantName,
        TenantRef, TraceId, UnixNanos,
    },
    vocab::{EndReason, FileOp, Outcome, PathConfidence, Transport},
};

/// A tenant (not shared).
pub(crate) fn tenant(name: &str) -> TenantRef {
    TenantRef {
        name: TenantName::new(name),
        shared: false,
    }
}

/// A shared tenant.
pub(crate) fn shared(name: &str) -> TenantRef {
    TenantRef {
        name: TenantName::new(name),
        shared: true,
    }
}

/// A process in `tenant` (pid 42, uid 1000).
pub(crate) fn process(tenant: Option<TenantRef>, comm: &str) -> ProcessRef {
    ProcessRef {
        pid: Some(42),
        comm: comm.into(),
        exe: None,
        uid: Some(1000),
        cgroup_id: 7,
        cgroup_path: "t/x".into(),
        tenant,
        execution: None,
        container: None,
    }
}

fn span(body: SpanBody) -> Span {
    Span {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: None,
        start: UnixNanos(1),
        end: None,
        end_reason: None,
        body,
    }
}

/// An end of a connection at `addr`; `local` as given when unwatched.
fn end(
    process: Option<ProcessRef>,
    addr: &str,
    owner: Option<TenantRef>,
    local: bool,
) -> ConnectionEnd {
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
    ConnectionEnd {
        addr,
        tenant: process.as_ref().map_or(owner, |p| p.tenant.clone()),
        local: process.is_some() || local,
        process,
        traffic: None,
        tier: None,
    }
}

/// A connection from `from` (the client's own address) to `to`; an unwatched end's tenant is
/// `owner` and it is local when its address is loopback or 10.9.9.9 (the fixture node).
pub(crate) fn connection(
    transport: Transport,
    client: Option<ProcessRef>,
    server: Option<ProcessRef>,
    from: &str,
    to: &str,
    owner: Option<TenantRef>,
) -> Span {
    let is_local = |a: &str| a.starts_with("127.") || a.starts_with("10.9.9.9");
    span(SpanBody::Connection(Connection {
        transport,
        netns: None,
        client: end(client, from, None, is_local(from)),
        server: end(server, to, owner, is_local(to)),
    }))
}

/// A TCP connection between two tenants' processes on this node.
pub(crate) fn tcp(from: Option<TenantRef>, to: Option<TenantRef>, port: u16) -> Span {
    connection(
        Transport::Tcp,
        Some(process(from, "client")),
        Some(process(to, "server")),
        "127.0.0.1:40000",
        &format!("127.0.0.1:{port}"),
        None,
    )
}

/// A file access by a process of `tenant` to `path` owned by `owner`.
pub(crate) fn file(
    tenant: Option<TenantRef>,
    path: &str,
    op: FileOp,
    owner: Option<TenantRef>,
) -> Span {
    let mut s = span(SpanBody::File(FileAccess {
        process: process(tenant, "app"),
        op,
        outcome: Outcome::Ok,
        ret: 0,
        path: path.to_owned(),
        path_confidence: PathConfidence::Full,
        path_truncated: false,
        owner,
        role: None,
        tier: None,
    }));
    s.end = Some(s.start);
    s.end_reason = Some(EndReason::Instant);
    s
}
