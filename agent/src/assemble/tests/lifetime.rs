//! How long spans stay open: eviction over the cap, shutdown, cgroups no longer watched, a
//! wall clock stepped while open.

use super::{
    CG_A, CG_B, CLOSE, ESTABLISHED, EndReason, FIN_WAIT2, LAST_ACK, MS, SYN_RECV, SYN_SENT, Span,
    WallClock, World, close, connection, connections, ended, established, header, started, tcp,
    transition,
};

#[test]
fn too_many_open_spans_evict_the_oldest_and_shutdown_ends_the_rest() {
    let mut w = World::new(2);
    let mut opened = Vec::new();
    for i in 0..4u16 {
        let client = format!("127.0.0.1:{}", 40000 + i);
        let server = "127.0.0.1:5432";
        let cookie = u64::from(i) * 2 + 10;
        let updates = w.feed(&[
            tcp(
                header(CG_A, 0, "", u64::from(i) * MS),
                transition(cookie, &client, server, SYN_SENT, ESTABLISHED),
            ),
            tcp(
                header(CG_B, 0, "", u64::from(i) * MS),
                transition(cookie + 1, server, &client, SYN_RECV, ESTABLISHED),
            ),
        ]);
        opened.extend(connections(started(&updates)).into_iter().cloned());
        let evicted: Vec<&Span> = ended(&updates)
            .into_iter()
            .filter(|s| s.end_reason == Some(EndReason::Evicted))
            .collect();
        if i < 2 {
            assert!(evicted.is_empty(), "{i}: under the cap");
        } else {
            assert_eq!(evicted.len(), 1, "{i}: one over the cap");
        }
    }
    assert_eq!(w.assembler.evicted, 2);
    let rest = w.flush(100 * MS);
    let stopped: Vec<&Span> = connections(ended(&rest));
    assert_eq!(stopped.len(), 2);
    assert!(
        stopped
            .iter()
            .all(|s| s.end_reason == Some(EndReason::AgentStopped))
    );
    assert_eq!(opened.len(), 4);
}

#[test]
fn a_removed_cgroup_leaves_the_span_open_while_the_other_end_is_watched() {
    let mut w = World::new(100);
    w.feed(&established(CG_A, CG_B));
    // a's cgroup goes while its end is open (its process moved out, or FIN_WAIT2 after exit).
    assert!(
        ended(&w.unwatched(CG_A, 20 * MS)).is_empty(),
        "b's end is still open and watched"
    );
    let (server, client) = ("127.0.0.1:5432", "127.0.0.1:40000");
    let last = w.feed(&[close(
        header(CG_B, 0, "", 30 * MS),
        transition(3, server, client, LAST_ACK, CLOSE),
        7,
        6,
    )]);
    let done = connections(ended(&last));
    assert_eq!(done.len(), 1, "{last:#?}");
    assert_eq!(done[0].end_reason, Some(EndReason::Closed));
    assert_eq!(done[0].end, Some(w.clock.unix(30 * MS)));
    let c = connection(done[0]);
    assert!(c.client.traffic.is_none(), "a's counters were never seen");
    assert!(c.server.traffic.is_some());
}

#[test]
fn a_span_with_every_end_unwatched_ends_unobserved_at_once() {
    let mut w = World::new(100);
    w.feed(&established(CG_A, CG_B));
    assert!(ended(&w.unwatched(CG_A, 20 * MS)).is_empty());
    let done = w.unwatched(CG_B, 25 * MS);
    let done = connections(ended(&done));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].end_reason, Some(EndReason::Unobserved));
    assert_eq!(done[0].end, Some(w.clock.unix(25 * MS)));
    assert!(
        w.feed(&[close(
            header(CG_B, 0, "", 30 * MS),
            transition(3, "127.0.0.1:5432", "127.0.0.1:40000", LAST_ACK, CLOSE),
            0,
            0,
        )])
        .is_empty(),
        "ended once"
    );
}

#[test]
fn a_wall_clock_step_while_open_does_not_change_how_long_a_connection_lasted() {
    let mut w = World::new(100);
    let opened = w.feed(&established(CG_A, CG_B));
    let start = connections(started(&opened))[0].start;
    // The wall clock steps back ten minutes while the connection is open.
    w.clock = WallClock::fixed(1_000_000_000_000 - 600_000_000_000);
    let (server, client) = ("127.0.0.1:5432", "127.0.0.1:40000");
    let updates = w.feed(&[
        close(
            header(CG_A, 0, "", 10 * MS),
            transition(2, client, server, FIN_WAIT2, CLOSE),
            0,
            0,
        ),
        close(
            header(CG_B, 0, "", 11 * MS),
            transition(3, server, client, LAST_ACK, CLOSE),
            0,
            0,
        ),
    ]);
    let span = connections(ended(&updates))[0];
    assert_eq!(span.start, start);
    assert_eq!(span.end, Some(start.plus_ns(8 * MS)), "11 ms - 3 ms");
}
