//! Spans and rule sets for tests.
use std::net::SocketAddr;

use crate::{
    attribution::Caller,
    config::{RuleSet, TenantId},
    correlation::{ConnectionSpan, SpanEnd},
    events::{Endpoint, Transport},
    rules::{EvalContext, LocalAddrs},
};

/// A caller in `tenant` (pid 42, uid 1000).
pub(crate) fn caller(tenant: Option<TenantId>, comm: &str) -> Caller {
    Caller {
        tenant,
        pid: 42,
        comm: comm.to_owned(),
        uid: 1000,
        cgroup_id: 7,
        cgroup_path: "t/x".to_owned(),
    }
}

fn endpoint(addr: &str) -> Endpoint {
    let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
    Endpoint {
        ip: addr.ip(),
        port: addr.port(),
    }
}

/// A connection from `from` (the client's own address) to `to`; either end may be missing.
pub(crate) fn connection(
    protocol: Transport,
    client: Option<Caller>,
    server: Option<Caller>,
    from: &str,
    to: &str,
) -> ConnectionSpan {
    let (from, to) = (endpoint(from), endpoint(to));
    let end = |caller, endpoint| SpanEnd {
        caller,
        cookie: 1,
        endpoint,
    };
    match (client, server) {
        (Some(c), Some(s)) => ConnectionSpan::paired(protocol, end(c, from), end(s, to), 1),
        (Some(c), None) => ConnectionSpan::client_only(protocol, end(c, from), to, 1),
        (None, Some(s)) => ConnectionSpan::server_only(protocol, end(s, to), from, 1),
        (None, None) => panic!("a span has at least one end"),
    }
}

/// A TCP connection between two tenants' processes on this node.
pub(crate) fn tcp(from: Option<TenantId>, to: Option<TenantId>, port: u16) -> ConnectionSpan {
    connection(
        Transport::Tcp,
        Some(caller(from, "client")),
        Some(caller(to, "server")),
        "127.0.0.1:40000",
        &format!("127.0.0.1:{port}"),
    )
}

/// Loads rules from in-memory files, panicking with the errors.
pub(crate) fn rule_set(files: &[(&str, &str)]) -> RuleSet {
    RuleSet::from_sources(files).unwrap_or_else(|e| panic!("{e}"))
}

/// Evaluation context with no local addresses but loopback.
pub(crate) fn ctx<'a>(rules: &'a RuleSet, local: &'a LocalAddrs) -> EvalContext<'a> {
    EvalContext { rules, local }
}
