//! Application spans joined to the connection their process made.

use super::{CG_A, CG_B, Ctx, MS, SpanBody, SpanUpdate, WallClock, World, established, tenant};
use crate::model::vocab::JoinOutcome;

fn app_span(pid: u32, server: &str, start_ns: u64) -> crate::model::app::AppSpanIn {
    let (host, port) = server.rsplit_once(':').unwrap();
    crate::model::app::AppSpanIn {
        trace_id: crate::model::spans::TraceId::random(),
        span_id: crate::model::spans::SpanId::random(),
        parent_span_id: None,
        name: "SELECT".into(),
        kind: crate::model::vocab::AppSpanKind::Client,
        status: crate::model::vocab::AppStatus::Unset,
        start: WallClock::fixed(1_000_000_000_000).unix(start_ns),
        end: WallClock::fixed(1_000_000_000_000).unix(start_ns + MS),
        service: Some("svc".into()),
        pid: None,
        sender_pid: Some(pid),
        declared_tenant: Some("a".into()),
        server_address: Some(host.into()),
        server_port: port.parse().ok(),
        attributes: Vec::new(),
    }
}

fn app_peer(updates: &[(JoinOutcome, SpanUpdate)]) -> (JoinOutcome, crate::model::spans::AppPeer) {
    let (outcome, update) = &updates[0];
    let SpanUpdate::Whole(span) = update else {
        panic!("{update:?}")
    };
    let SpanBody::App(app) = &span.body else {
        panic!("{span:?}")
    };
    (
        *outcome,
        app.peer.clone().expect("a client span has a peer"),
    )
}

#[test]
fn a_client_span_joins_the_connection_its_process_made() {
    let mut w = World::new(100);
    w.feed(&established(CG_A, CG_B));
    let ctx = Ctx {
        attributor: &mut w.attributor,
        rules: &w.rules,
        clock: &w.clock,
    };
    // The same process, the same server, a call while the connection is open: joined.
    let joined = w
        .assembler
        .app(vec![app_span(10, "127.0.0.1:5432", 5 * MS)], 5 * MS, &ctx);
    let (outcome, peer) = app_peer(&joined);
    assert_eq!(outcome, JoinOutcome::Joined);
    assert_eq!(peer.tenant, Some(tenant("b")));
    assert!(peer.connection.is_some());
    assert_eq!(peer.process.as_ref().and_then(|p| p.pid), Some(20));
    // "localhost" means loopback.
    let named = w
        .assembler
        .app(vec![app_span(10, "localhost:5432", 5 * MS)], 5 * MS, &ctx);
    assert_eq!(app_peer(&named).0, JoinOutcome::Joined);
    // Another known process did not make that connection: it waits, then goes unjoined, its
    // peer from the tenant listening on that port.
    let other = w
        .assembler
        .app(vec![app_span(20, "127.0.0.1:5432", 5 * MS)], 5 * MS, &ctx);
    assert!(other.is_empty(), "waits for its own connection");
    let later = w.assembler.app_tick(5 * MS + 2_000 * MS, &ctx);
    let (outcome, peer) = app_peer(&later);
    assert_eq!(outcome, JoinOutcome::Unmatched);
    assert_eq!(peer.tenant, Some(tenant("b")), "b listens on 5432");
    assert!(peer.connection.is_none());
}
