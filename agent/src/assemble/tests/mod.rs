//! Span assembly from recorded event sequences: pairing by 4-tuple, callers joined by cookie
//! and listener, one-sided spans after the pairing window, closes with counters, failed
//! connects ([`pairing`]), process executions as trace roots ([`processes`]), eviction and
//! shutdown ([`lifetime`]), application spans' joins ([`app_joins`]). This module holds the
//! fixture: a [`World`] of two tenants and builders of kernel events.
mod app_joins;
mod lifetime;
mod pairing;
mod processes;

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

    fn unwatched(&mut self, cgroup_id: u64, now: u64) -> Vec<SpanUpdate> {
        self.assembler.unwatched(cgroup_id, now)
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
