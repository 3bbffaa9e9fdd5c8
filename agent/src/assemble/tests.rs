//! Span assembly from recorded event sequences: pairing by 4-tuple, callers joined by cookie
//! and listener, one-sided spans after the pairing window, closes with counters, failed
//! connects, process executions as trace roots, eviction and shutdown.
use std::{net::SocketAddr, path::PathBuf};

use seam_common::tcp_state::{
    CLOSE, CLOSE_WAIT, ESTABLISHED, FIN_WAIT2, LAST_ACK, LISTEN, SYN_RECV, SYN_SENT,
};

use super::{Assembler, Ctx, SpanUpdate};
use crate::{
    attribution::{
        Attributor, LocalAddrs, ProcessTable,
        cgroups::{CgroupInfo, CgroupRegistry},
    },
    kernel::events::{
        Header, KernelEvent, KernelEventKind, TcpCounters, TcpTransition,
        file::{FileEvent, FilePath},
    },
    model::{
        clock::WallClock,
        fixtures::tenant,
        spans::{ExitStatus, Span, SpanBody},
        vocab::{EndReason, PathConfidence, Transport},
    },
    policy::RuleSet,
};

const CG_A: u64 = 100;
const CG_B: u64 = 200;
const NETNS: u32 = 4026531840;
const MS: u64 = 1_000_000;

const RULES: &str = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]
endpoints = ["192.0.2.0/24"]

[[rule]]
id = "any"
severity = "low"
description = "d"
expr = "trace.has(*)"
"#;

struct World {
    attributor: Attributor,
    rules: RuleSet,
    clock: WallClock,
    assembler: Assembler,
}

impl World {
    fn new(max_open: usize) -> Self {
        let entries = [
            CgroupInfo {
                id: CG_A,
                path: "t/a".into(),
                tenant: Some(tenant("a")),
            },
            CgroupInfo {
                id: CG_B,
                path: "t/b".into(),
                tenant: Some(tenant("b")),
            },
        ];
        Self {
            attributor: Attributor {
                cgroups: CgroupRegistry::from_entries("/nonexistent".into(), entries),
                processes: ProcessTable::new([9; 16], PathBuf::from("/nonexistent")),
                local: LocalAddrs::new(vec!["10.9.9.9".parse().unwrap()]),
            },
            rules: RuleSet::from_sources(&[("t.toml", RULES)]).unwrap_or_else(|e| panic!("{e}")),
            clock: WallClock::fixed(1_000_000_000_000),
            assembler: Assembler::new(100),
        }
        .with_cap(max_open)
    }

    fn with_cap(mut self, max_open: usize) -> Self {
        self.assembler = Assembler::new(max_open);
        self
    }

    fn feed(&mut self, events: &[KernelEvent]) -> Vec<SpanUpdate> {
        let mut ctx = Ctx {
            attributor: &mut self.attributor,
            rules: &self.rules,
            clock: &self.clock,
        };
        events
            .iter()
            .flat_map(|e| self.assembler.on_event(e, &mut ctx))
            .collect()
    }

    fn tick(&mut self, now: u64) -> Vec<SpanUpdate> {
        let mut ctx = Ctx {
            attributor: &mut self.attributor,
            rules: &self.rules,
            clock: &self.clock,
        };
        self.assembler.tick(now, &mut ctx)
    }

    fn flush(&mut self, now: u64) -> Vec<SpanUpdate> {
        let mut ctx = Ctx {
            attributor: &mut self.attributor,
            rules: &self.rules,
            clock: &self.clock,
        };
        self.assembler.flush(now, &mut ctx)
    }
}

fn ep(s: &str) -> SocketAddr {
    s.parse().unwrap()
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

fn transition(cookie: u64, local: &str, remote: &str, old: u8, new: u8) -> TcpTransition {
    TcpTransition {
        cookie,
        netns: NETNS,
        local: ep(local),
        remote: ep(remote),
        old,
        new,
    }
}

fn tcp(h: Header, t: TcpTransition) -> KernelEvent {
    KernelEvent {
        header: h,
        kind: KernelEventKind::TcpState(t),
    }
}

fn close(h: Header, t: TcpTransition, sent: u64, received: u64) -> KernelEvent {
    KernelEvent {
        header: h,
        kind: KernelEventKind::TcpClose {
            transition: t,
            counters: Some(TcpCounters {
                bytes_received: received,
                bytes_sent: sent,
                bytes_retrans: 0,
                segs_in: 3,
                segs_out: 4,
            }),
        },
    }
}

fn connect(h: Header, cookie: u64, to: &str) -> KernelEvent {
    KernelEvent {
        header: h,
        kind: KernelEventKind::SockAddr {
            sendmsg: false,
            cookie,
            protocol: Some(Transport::Tcp),
            destination: ep(to),
        },
    }
}

/// Listener of `server_cg` on 5432, client of `client_cg` connecting from 40000: the events up
/// to both ends established.
fn established(client_cg: u64, server_cg: u64) -> Vec<KernelEvent> {
    let (server, client) = ("127.0.0.1:5432", "127.0.0.1:40000");
    vec![
        tcp(
            header(server_cg, 20, "db", MS),
            transition(1, "0.0.0.0:5432", "0.0.0.0:0", CLOSE, LISTEN),
        ),
        connect(header(client_cg, 10, "client", 2 * MS), 2, server),
        // Softirq: the header names nobody; the caller comes from the cookie join.
        tcp(
            header(client_cg, 0, "", 3 * MS),
            transition(2, client, server, SYN_SENT, ESTABLISHED),
        ),
        tcp(
            header(server_cg, 0, "", 4 * MS),
            transition(3, server, client, SYN_RECV, ESTABLISHED),
        ),
    ]
}

fn connection(span: &Span) -> &crate::model::spans::Connection {
    match &span.body {
        SpanBody::Connection(c) => c,
        other => panic!("not a connection: {other:?}"),
    }
}

fn started(updates: &[SpanUpdate]) -> Vec<&Span> {
    updates
        .iter()
        .filter_map(|u| match u {
            SpanUpdate::Started(s) | SpanUpdate::Whole(s) => Some(s),
            SpanUpdate::Ended(_) => None,
        })
        .collect()
}

fn ended(updates: &[SpanUpdate]) -> Vec<&Span> {
    updates
        .iter()
        .filter_map(|u| match u {
            SpanUpdate::Ended(s) | SpanUpdate::Whole(s) => Some(s),
            SpanUpdate::Started(_) => None,
        })
        .collect()
}

fn connections(spans: Vec<&Span>) -> Vec<&Span> {
    spans
        .into_iter()
        .filter(|s| matches!(s.body, SpanBody::Connection(_)))
        .collect()
}

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
        w.tick(MS + super::connections::PAIR_WINDOW_NS - 1)
            .is_empty(),
        "still inside the window"
    );
    let updates = w.tick(MS + super::connections::PAIR_WINDOW_NS);
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
    let updates = w.tick(2 * MS + super::connections::PAIR_WINDOW_NS);
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
    let updates = w.tick(600 * MS + super::connections::PAIR_WINDOW_NS);
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

#[test]
fn a_process_execution_is_the_root_of_its_trace() {
    let mut w = World::new(100);
    let exec = KernelEvent {
        header: header(CG_A, 30, "app", MS),
        kind: KernelEventKind::Exec { ppid: 1 },
    };
    let exe = KernelEvent {
        header: header(CG_A, 30, "app", MS),
        kind: KernelEventKind::File(FileEvent {
            op: seam_common::FileSyscall::Exec,
            ret: 0,
            flags: 0,
            f_mode: 0,
            paths: vec![FilePath {
                path: "/usr/bin/app".into(),
                confidence: PathConfidence::Full,
                truncated: false,
            }],
            dir: None,
        }),
    };
    let updates = w.feed(&[exec, exe]);
    let root = updates
        .iter()
        .find_map(|u| match u {
            SpanUpdate::Started(s) if matches!(s.body, SpanBody::Process(_)) => Some(s.clone()),
            _ => None,
        })
        .expect("the process span starts once its executable is known");
    let SpanBody::Process(run) = &root.body else {
        unreachable!()
    };
    assert_eq!(run.process.exe.as_deref(), Some("/usr/bin/app"));
    assert_eq!(run.ppid, Some(1));
    assert!(run.exec_seen);
    assert_eq!(root.parent_span_id, None);
    // The exec'd file is a child span of the process.
    let file = updates
        .iter()
        .find_map(|u| match u {
            SpanUpdate::Whole(s) if matches!(s.body, SpanBody::File(_)) => Some(s.clone()),
            _ => None,
        })
        .expect("a file.exec span");
    assert_eq!(
        (file.trace_id, file.parent_span_id),
        (root.trace_id, Some(root.span_id))
    );
    let exit = KernelEvent {
        header: header(CG_A, 30, "app", 9 * MS),
        kind: KernelEventKind::Exit { exit_code: 3 << 8 },
    };
    let updates = w.feed(&[exit]);
    let [SpanUpdate::Ended(end)] = updates.as_slice() else {
        panic!("{updates:#?}");
    };
    assert_eq!(end.span_id, root.span_id);
    assert_eq!(end.end_reason, Some(EndReason::Exited));
    let SpanBody::Process(run) = &end.body else {
        unreachable!()
    };
    assert_eq!(
        run.exit,
        Some(ExitStatus {
            code: Some(3),
            signal: None
        })
    );
}

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

fn app_peer(
    updates: &[(super::JoinOutcome, SpanUpdate)],
) -> (super::JoinOutcome, crate::model::spans::AppPeer) {
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
    assert_eq!(outcome, super::JoinOutcome::Joined);
    assert_eq!(peer.tenant, Some(tenant("b")));
    assert!(peer.connection.is_some());
    assert_eq!(peer.process.as_ref().and_then(|p| p.pid), Some(20));
    // "localhost" means loopback.
    let named = w
        .assembler
        .app(vec![app_span(10, "localhost:5432", 5 * MS)], 5 * MS, &ctx);
    assert_eq!(app_peer(&named).0, super::JoinOutcome::Joined);
    // Another known process did not make that connection: it waits, then goes unjoined, its
    // peer from the tenant listening on that port.
    let other = w
        .assembler
        .app(vec![app_span(20, "127.0.0.1:5432", 5 * MS)], 5 * MS, &ctx);
    assert!(other.is_empty(), "waits for its own connection");
    let later = w.assembler.app_tick(5 * MS + 2_000 * MS, &ctx);
    let (outcome, peer) = app_peer(&later);
    assert_eq!(outcome, super::JoinOutcome::Unmatched);
    assert_eq!(peer.tenant, Some(tenant("b")), "b listens on 5432");
    assert!(peer.connection.is_none());
}

impl World {
    fn unwatched(&mut self, cgroup_id: u64, now: u64) -> Vec<SpanUpdate> {
        self.assembler.unwatched(cgroup_id, now)
    }
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
