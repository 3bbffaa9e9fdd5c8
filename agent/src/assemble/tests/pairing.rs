//! Connection spans: TCP ends paired by 4-tuple, callers joined by cookie and listener, closes
//! with each socket's counters and their reasons, failed connects, one-sided spans after the
//! pairing window, UDP flows.

use super::{
    CG_A, CG_B, CLOSE, CLOSE_WAIT, ESTABLISHED, EndReason, FIN_WAIT2, KernelEvent, KernelEventKind,
    LAST_ACK, LISTEN, MS, SYN_SENT, Span, SpanBody, SpanUpdate, Transport, World, close, connect,
    connection, connections, ended, ep, established, header, started, tcp, tenant, transition,
};
use crate::assemble::connections::PAIR_WINDOW_NS;

#[test]
fn pairs_both_ends_then_ends_with_the_counters_of_each_socket() {
    let mut w = World::new(100);
    let updates = w.feed(&established(CG_A, CG_B));
    let opened = connections(started(&updates));
    assert_eq!(
        opened.len(),
        1,
        "exactly one span per connection: {updates:#?}"
    );
    let span = opened[0];
    assert!(span.end.is_none(), "open until the sockets close");
    let c = connection(span);
    let client = c.client.process.as_ref().unwrap();
    let server = c.server.process.as_ref().unwrap();
    assert_eq!(client.tenant, Some(tenant("a")));
    assert_eq!((client.pid, &*client.comm), (Some(10), "client"));
    assert_eq!(&*client.cgroup_path, "t/a");
    assert_eq!(server.tenant, Some(tenant("b")));
    assert_eq!(server.pid, Some(20), "server named by the listener's owner");
    assert_eq!(&*server.comm, "db");
    assert_eq!(c.server.addr, ep("127.0.0.1:5432"));
    assert_eq!(span.start, w.clock.unix(3 * MS));
    // The connection is a child of the client's process span (its trace root).
    let root = client.execution.expect("client process known");
    assert_eq!(
        (span.trace_id, span.parent_span_id),
        (root.trace_id, Some(root.span_id))
    );

    // Client closes first (FIN_WAIT2 -> CLOSE), the server last (LAST_ACK -> CLOSE).
    let (server_addr, client_addr) = ("127.0.0.1:5432", "127.0.0.1:40000");
    // Each received the other's FIN: one more in `bytes_received` than the payload.
    let first = w.feed(&[close(
        header(CG_A, 0, "", 10 * MS),
        transition(2, client_addr, server_addr, FIN_WAIT2, CLOSE),
        5,
        8,
    )]);
    assert!(ended(&first).is_empty(), "one end still open");
    let last = w.feed(&[close(
        header(CG_B, 0, "", 11 * MS),
        transition(3, server_addr, client_addr, LAST_ACK, CLOSE),
        7,
        6,
    )]);
    let done = connections(ended(&last));
    assert_eq!(done.len(), 1);
    let span = done[0];
    assert_eq!(span.span_id, opened[0].span_id, "the same span, now ended");
    assert_eq!(span.end, Some(w.clock.unix(11 * MS)));
    assert_eq!(span.end_reason, Some(EndReason::Closed));
    let c = connection(span);
    let client = c.client.traffic.expect("client counters");
    let server = c.server.traffic.expect("server counters");
    assert_eq!((client.bytes_sent, client.bytes_received), (5, 7));
    assert_eq!((server.bytes_sent, server.bytes_received), (7, 5));
    assert_eq!((client.segments_sent, client.segments_received), (4, 3));
}

#[test]
fn a_close_from_established_is_a_reset() {
    let mut w = World::new(100);
    w.feed(&established(CG_A, CG_B));
    let (server, client) = ("127.0.0.1:5432", "127.0.0.1:40000");
    let updates = w.feed(&[
        close(
            header(CG_A, 0, "", 10 * MS),
            transition(2, client, server, ESTABLISHED, CLOSE),
            0,
            0,
        ),
        close(
            header(CG_B, 0, "", 11 * MS),
            transition(3, server, client, CLOSE_WAIT, CLOSE),
            0,
            0,
        ),
    ]);
    let done = connections(ended(&updates));
    assert_eq!(done[0].end_reason, Some(EndReason::Reset));
}

#[test]
fn unpaired_client_expires_into_a_one_sided_span_owned_by_the_endpoint() {
    let mut w = World::new(100);
    let event = tcp(
        header(CG_A, 0, "", MS),
        transition(9, "10.0.0.5:40001", "192.0.2.7:443", SYN_SENT, ESTABLISHED),
    );
    assert!(w.feed(&[event]).is_empty());
    assert!(
        w.tick(MS + PAIR_WINDOW_NS - 1).is_empty(),
        "still inside the window"
    );
    let updates = w.tick(MS + PAIR_WINDOW_NS);
    let opened = connections(started(&updates));
    assert_eq!(opened.len(), 1);
    let c = connection(opened[0]);
    assert!(c.server.process.is_none());
    assert_eq!(c.server.addr, ep("192.0.2.7:443"));
    assert_eq!(c.server.tenant, Some(tenant("b")), "b owns 192.0.2.0/24");
    assert!(!c.server.local);
}

#[test]
fn a_refused_connect_is_an_attempt_to_the_listeners_tenant() {
    let mut w = World::new(100);
    let updates = w.feed(&[
        tcp(
            header(CG_B, 20, "db", MS),
            transition(1, "0.0.0.0:5432", "0.0.0.0:0", CLOSE, LISTEN),
        ),
        connect(header(CG_A, 10, "client", 2 * MS), 2, "127.0.0.1:5432"),
        close(
            header(CG_A, 0, "", 3 * MS),
            transition(2, "127.0.0.1:40000", "127.0.0.1:5432", SYN_SENT, CLOSE),
            0,
            0,
        ),
    ]);
    let whole: Vec<&Span> = updates
        .iter()
        .filter_map(|u| match u {
            SpanUpdate::Whole(s) if matches!(s.body, SpanBody::Connection(_)) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(whole.len(), 1, "{updates:#?}");
    assert_eq!(whole[0].end_reason, Some(EndReason::Failed));
    let c = connection(whole[0]);
    assert_eq!(c.client.process.as_ref().and_then(|p| p.pid), Some(10));
    assert_eq!(c.server.tenant, Some(tenant("b")));
}

#[test]
fn a_closed_listener_no_longer_owns_its_port() {
    let mut w = World::new(100);
    w.feed(&[
        tcp(
            header(CG_B, 20, "db", MS),
            transition(1, "127.0.0.1:5432", "0.0.0.0:0", CLOSE, LISTEN),
        ),
        // The kernel reports a listener's close after it gave its port back (port 0).
        tcp(
            header(CG_B, 0, "", 2 * MS),
            transition(1, "127.0.0.1:0", "0.0.0.0:0", LISTEN, CLOSE),
        ),
    ]);
    let updates = w.feed(&[close(
        header(CG_A, 0, "", 3 * MS),
        transition(2, "127.0.0.1:0", "127.0.0.1:5432", SYN_SENT, CLOSE),
        0,
        0,
    )]);
    let spans = connections(ended(&updates));
    let c = connection(spans[0]);
    assert_eq!(c.server.tenant, None, "{c:#?}");
    assert!(c.server.process.is_none());
}

/// The server end of a crossing can be missing (dropped in the kernel over its tenant's event
/// budget); when the listener then closes inside the pair window, the one-sided span still
/// names the tenant that listened when the client connected.
#[test]
fn a_listener_closed_inside_the_pair_window_still_owns_the_connection_made_to_it() {
    let mut w = World::new(100);
    let (server, client) = ("127.0.0.1:5432", "127.0.0.1:40000");
    w.feed(&[
        tcp(
            header(CG_B, 20, "db", MS),
            transition(1, "127.0.0.1:5432", "0.0.0.0:0", CLOSE, LISTEN),
        ),
        tcp(
            header(CG_A, 0, "", 2 * MS),
            transition(2, client, server, SYN_SENT, ESTABLISHED),
        ),
        close(
            header(CG_A, 0, "", 3 * MS),
            transition(2, client, server, ESTABLISHED, CLOSE),
            5,
            0,
        ),
        tcp(
            header(CG_B, 0, "", 4 * MS),
            transition(1, "127.0.0.1:0", "0.0.0.0:0", LISTEN, CLOSE),
        ),
    ]);
    let updates = w.tick(2 * MS + PAIR_WINDOW_NS);
    let opened = connections(started(&updates));
    assert_eq!(opened.len(), 1, "{updates:#?}");
    let c = connection(opened[0]);
    assert_eq!(c.server.tenant, Some(tenant("b")), "{c:#?}");
    assert_eq!(c.server.process.as_ref().and_then(|p| p.pid), Some(20));
    // A connection made after the listener closed is nobody's.
    w.feed(&[tcp(
        header(CG_A, 0, "", 600 * MS),
        transition(3, "127.0.0.1:40001", server, SYN_SENT, ESTABLISHED),
    )]);
    let updates = w.tick(600 * MS + PAIR_WINDOW_NS);
    let later = connections(started(&updates));
    assert_eq!(later.len(), 1, "{updates:#?}");
    assert_eq!(connection(later[0]).server.tenant, None);
}

#[test]
fn udp_flow_pairs_egress_with_ingress_at_once() {
    let mut w = World::new(100);
    let flow = |cg, pid, cookie, local: &str, remote: &str, ingress| KernelEvent {
        header: header(cg, pid, "udp", MS),
        kind: KernelEventKind::FlowStart {
            cookie,
            protocol: Transport::Udp,
            local: ep(local),
            remote: ep(remote),
            ingress,
        },
    };
    assert!(
        connections(started(&w.feed(&[flow(
            CG_A,
            11,
            1,
            "127.0.0.1:50000",
            "127.0.0.1:5353",
            false
        )])))
        .is_empty()
    );
    let updates = w.feed(&[flow(CG_B, 0, 2, "127.0.0.1:5353", "127.0.0.1:50000", true)]);
    let spans: Vec<&Span> = updates
        .iter()
        .filter_map(|u| match u {
            SpanUpdate::Whole(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(spans.len(), 1);
    let c = connection(spans[0]);
    assert_eq!(c.transport, Transport::Udp);
    assert_eq!(c.client.process.as_ref().and_then(|p| p.pid), Some(11));
    assert_eq!(c.server.tenant, Some(tenant("b")));
    assert_eq!(spans[0].end_reason, Some(EndReason::Instant));
}
