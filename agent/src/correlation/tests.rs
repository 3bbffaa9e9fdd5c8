//! Correlation on fixtures: pairing by 4-tuple, caller joins by cookie, listener ownership,
//! one-sided spans after the pairing window.
use std::net::IpAddr;

use seam_common::tcp_state::{CLOSE, ESTABLISHED, LISTEN, SYN_RECV, SYN_SENT};

use super::*;
use crate::{
    attribution::{CgroupInfo, CgroupRegistry, ProcessTable},
    config::TenantId,
    events::Header,
};

const CG_A: u64 = 100;
const CG_B: u64 = 200;
const NETNS: u32 = 4026531840;

fn attributor() -> Attributor {
    let entries = [
        CgroupInfo {
            id: CG_A,
            path: "t/a".into(),
            tenant: Some(TenantId(0)),
        },
        CgroupInfo {
            id: CG_B,
            path: "t/b".into(),
            tenant: Some(TenantId(1)),
        },
    ];
    Attributor {
        cgroups: CgroupRegistry::from_entries("/nonexistent".into(), entries),
        processes: ProcessTable::default(),
    }
}

fn ep(ip: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip.parse::<IpAddr>().unwrap(),
        port,
    }
}

fn header(cgroup_id: u64, pid: u32, comm: &str, time_ns: u64) -> Header {
    Header {
        pid,
        tid: pid,
        uid: 1000,
        time_ns,
        cgroup_id,
        comm: comm.into(),
    }
}

fn tcp(h: Header, cookie: u64, local: Endpoint, remote: Endpoint, old: u8, new: u8) -> KernelEvent {
    KernelEvent {
        header: h,
        kind: KernelEventKind::TcpState {
            cookie,
            netns: NETNS,
            local,
            remote,
            old,
            new,
        },
    }
}

/// Feeds a whole loopback TCP connection from a client in `client_cg` to a listener in
/// `server_cg`; returns every span produced.
fn connection(
    c: &mut Correlator,
    a: &Attributor,
    client_cg: u64,
    server_cg: u64,
) -> Vec<ConnectionSpan> {
    let server = ep("127.0.0.1", 5432);
    let client = ep("127.0.0.1", 40000);
    let any = ep("0.0.0.0", 0);
    let mut spans = Vec::new();
    let events = [
        tcp(
            header(server_cg, 20, "db", 1),
            1,
            ep("0.0.0.0", 5432),
            any,
            CLOSE,
            LISTEN,
        ),
        KernelEvent {
            header: header(client_cg, 10, "client", 2),
            kind: KernelEventKind::SockAddr {
                sendmsg: false,
                cookie: 2,
                protocol: Some(Transport::Tcp),
                destination: server,
            },
        },
        tcp(
            header(client_cg, 10, "client", 3),
            2,
            ep("0.0.0.0", 0),
            server,
            CLOSE,
            SYN_SENT,
        ),
        tcp(
            header(server_cg, 0, "", 4),
            3,
            server,
            client,
            LISTEN,
            SYN_RECV,
        ),
        // Softirq: the header names nobody; the caller comes from the cookie join.
        tcp(
            header(client_cg, 0, "", 5),
            2,
            client,
            server,
            SYN_SENT,
            ESTABLISHED,
        ),
        tcp(
            header(server_cg, 0, "", 6),
            3,
            server,
            client,
            SYN_RECV,
            ESTABLISHED,
        ),
    ];
    for event in &events {
        spans.extend(c.on_event(event, a));
    }
    spans
}

#[test]
fn pairs_client_and_server_with_their_own_tenants_and_callers() {
    let a = attributor();
    let mut c = Correlator::default();
    let spans = connection(&mut c, &a, CG_A, CG_B);
    assert_eq!(spans.len(), 1, "exactly one span per connection");
    let span = &spans[0];
    let client = span.client.as_ref().unwrap();
    let server = span.server.as_ref().unwrap();
    assert_eq!(client.caller.tenant, Some(TenantId(0)));
    assert_eq!(client.caller.pid, 10);
    assert_eq!(client.caller.comm, "client");
    assert_eq!(client.caller.cgroup_path, "t/a");
    assert_eq!(server.caller.tenant, Some(TenantId(1)));
    assert_eq!(
        server.caller.pid, 20,
        "server named by the listener's owner"
    );
    assert_eq!(server.caller.comm, "db");
    assert_eq!(span.server_endpoint, ep("127.0.0.1", 5432));
    assert_eq!(span.start_ns, 5);
    assert_eq!(c.pending(), 0);
}

#[test]
fn unpaired_client_expires_into_a_one_sided_span() {
    let a = attributor();
    let mut c = Correlator::default();
    let server = ep("192.0.2.7", 443);
    let client = ep("10.0.0.5", 40001);
    let event = tcp(
        header(CG_A, 0, "", 1_000),
        9,
        client,
        server,
        SYN_SENT,
        ESTABLISHED,
    );
    assert!(c.on_event(&event, &a).is_empty());
    assert!(
        c.expire(1_000 + PAIR_WINDOW_NS - 1).is_empty(),
        "still inside the window"
    );
    let spans = c.expire(1_000 + PAIR_WINDOW_NS);
    assert_eq!(spans.len(), 1);
    assert!(spans[0].server.is_none());
    assert_eq!(spans[0].server_endpoint, server);
}

#[test]
fn udp_flow_pairs_egress_with_ingress() {
    let a = attributor();
    let mut c = Correlator::default();
    let sender = ep("127.0.0.1", 50000);
    let receiver = ep("127.0.0.1", 5353);
    let flow = |cg, pid, cookie, local, remote, ingress| KernelEvent {
        header: header(cg, pid, "udp", 1),
        kind: KernelEventKind::FlowStart {
            cookie,
            protocol: Transport::Udp,
            local,
            remote,
            ingress,
        },
    };
    assert!(
        c.on_event(&flow(CG_A, 11, 1, sender, receiver, false), &a)
            .is_empty()
    );
    let spans = c.on_event(&flow(CG_B, 0, 2, receiver, sender, true), &a);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].protocol, Transport::Udp);
    assert_eq!(spans[0].client.as_ref().unwrap().caller.pid, 11);
    assert_eq!(
        spans[0].server.as_ref().unwrap().caller.tenant,
        Some(TenantId(1))
    );
}
