//! The violation record: one JSON object per line in the feed, an OTLP log record in export,
//! built from the span a rule matched.
use std::{net::IpAddr, sync::Arc};

use rand::RngCore;
use serde::Serialize;

use crate::{
    model::{
        clock::UnixNanos,
        spans::{ProcessRef, Span, SpanBody, SpanId, TenantName, TraceId},
        vocab::{
            AppSpanKind, FileOp, Outcome, PathConfidence, PathRole, Severity, Tier, Transport,
        },
    },
    policy::{
        Rule,
        lang::{Attr, Attributes, Family, Value},
    },
};

/// A process in a violation: who it is and whose.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, Hash)]
pub(crate) struct Party {
    /// `null` when the process is in no tenant.
    pub tenant: Option<TenantName>,
    /// `null` when unknown (a socket event with no owner seen).
    pub pid: Option<u32>,
    pub comm: Arc<str>,
    pub exe: Option<Arc<str>>,
    pub uid: Option<u32>,
    pub cgroup_id: u64,
    pub cgroup_path: Arc<str>,
    /// The container the process runs in (OpenTelemetry names; absent outside containers).
    #[serde(rename = "container.id", skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(rename = "k8s.namespace.name", skip_serializing_if = "Option::is_none")]
    pub k8s_namespace: Option<String>,
    #[serde(rename = "k8s.pod.name", skip_serializing_if = "Option::is_none")]
    pub k8s_pod_name: Option<String>,
    #[serde(rename = "k8s.pod.uid", skip_serializing_if = "Option::is_none")]
    pub k8s_pod_uid: Option<String>,
    #[serde(rename = "k8s.container.name", skip_serializing_if = "Option::is_none")]
    pub k8s_container_name: Option<String>,
}

impl From<&ProcessRef> for Party {
    fn from(p: &ProcessRef) -> Self {
        let container = p.container.as_deref();
        let pod = container.and_then(|c| c.pod.as_ref());
        Self {
            tenant: p.tenant.as_ref().map(|t| t.name.clone()),
            pid: p.pid,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
            uid: p.uid,
            cgroup_id: p.cgroup_id,
            cgroup_path: p.cgroup_path.clone(),
            container_id: container.map(|c| c.id.clone()),
            k8s_namespace: pod.map(|p| p.namespace.clone()),
            k8s_pod_name: pod.map(|p| p.name.clone()),
            k8s_pod_uid: pod.map(|p| p.uid.clone()),
            k8s_container_name: pod.and(container.and_then(|c| c.name.clone())),
        }
    }
}

/// What a violation touched.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub(crate) enum Target {
    /// A connection's destination.
    Network {
        /// `null` when no tenant owns the destination.
        tenant: Option<TenantName>,
        addr: IpAddr,
        port: u16,
        protocol: Transport,
        /// The process behind the target socket, when it is on this node.
        #[serde(skip_serializing_if = "Option::is_none")]
        process: Option<Party>,
    },
    /// A file that was touched (or that an attempt aimed at).
    File {
        /// `null` when no tenant owns the path.
        tenant: Option<TenantName>,
        path: String,
        op: FileOp,
        outcome: Outcome,
        path_confidence: PathConfidence,
        /// Leading path components are missing (too deep or too long for the kernel walk).
        path_truncated: bool,
        /// For a rename: whether this is the "from" or the "to" path.
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<PathRole>,
    },
    /// A program that ran.
    Process {
        exe: Option<Arc<str>>,
        ppid: Option<u32>,
    },
    /// An application's operation.
    App {
        /// The tenant of the peer the operation reached (`null`: none, or not a client span).
        tenant: Option<TenantName>,
        /// What the application declared.
        declared_tenant: Option<String>,
        service: Option<String>,
        span_name: String,
        span_kind: AppSpanKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        addr: Option<IpAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
}

/// Identical violations within the aggregation window, folded into this one.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Aggregate {
    /// Violations folded (not emitted one by one).
    pub count: u64,
    pub first_seen: UnixNanos,
    pub last_seen: UnixNanos,
    pub window_s: f64,
}

/// A broken isolation rule.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Violation {
    pub signal_id: String,
    pub rule_id: String,
    pub severity: Severity,
    /// When the offending access happened (the span's start).
    pub time: UnixNanos,
    pub node: String,
    /// `network`, `file`, `process` or `app`: the family of the span.
    pub kind: Family,
    /// The tenant the access should have stayed within (the caller's, or what an application
    /// declared), `null` for none.
    pub intended_tenant: Option<TenantName>,
    /// The tenant whose resource was touched (or, for a declared tenant, the one observed).
    pub actual_tenant: Option<TenantName>,
    /// The acting process, when it is on this node.
    pub caller: Option<Party>,
    pub target: Target,
    /// The data tier of the touched resource (`file.tier`, `peer.tier`); null when
    /// unclassified.
    pub tier: Option<Tier>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub message: String,
    /// Set on the record that closes an aggregation window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
}

fn signal_id() -> String {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn tenant_value(value: Value<'_>) -> Option<TenantName> {
    value.as_str().map(TenantName::new)
}

impl Violation {
    /// The violation of `rule` by `span`.
    pub(crate) fn new(node: &str, rule: &Rule, span: &Span) -> Self {
        let family = span.name().family();
        let intended = rule.intended.unwrap_or(Attr::Tenant);
        let actual = rule.actual.or_else(|| Attr::target_tenant(family));
        Self {
            signal_id: signal_id(),
            rule_id: rule.id.clone(),
            severity: rule.severity,
            time: span.start,
            node: node.to_owned(),
            kind: family,
            intended_tenant: tenant_value(span.attr(intended)),
            actual_tenant: actual.and_then(|a| tenant_value(span.attr(a))),
            caller: span.actor().map(Party::from),
            target: target(span),
            tier: span.tier(),
            trace_id: span.trace_id,
            span_id: span.span_id,
            message: describe(span),
            aggregate: None,
        }
    }
}

fn target(span: &Span) -> Target {
    match &span.body {
        SpanBody::Connection(c) => Target::Network {
            tenant: c.server.tenant.as_ref().map(|t| t.name.clone()),
            addr: c.server.addr.ip(),
            port: c.server.addr.port(),
            protocol: c.transport,
            process: c.server.process.as_ref().map(Party::from),
        },
        SpanBody::File(f) => Target::File {
            tenant: f.owner.as_ref().map(|t| t.name.clone()),
            path: f.path.clone(),
            op: f.op,
            outcome: f.outcome,
            path_confidence: f.path_confidence,
            path_truncated: f.path_truncated,
            role: f.role,
        },
        SpanBody::Process(p) => Target::Process {
            exe: p.process.exe.clone(),
            ppid: p.ppid,
        },
        SpanBody::App(a) => Target::App {
            tenant: a
                .peer
                .as_ref()
                .and_then(|p| p.tenant.as_ref())
                .map(|t| t.name.clone()),
            declared_tenant: a.declared_tenant.clone(),
            service: a.service.clone(),
            span_name: a.name.clone(),
            span_kind: a.kind,
            addr: a.peer.as_ref().and_then(|p| p.addr),
            port: a.peer.as_ref().and_then(|p| p.port),
        },
    }
}

/// "tenant-a process web (pid 7)", or who else acted.
fn who(p: Option<&ProcessRef>) -> String {
    let Some(p) = p else {
        return "a process outside any tenant".to_owned();
    };
    let owner = p.tenant.as_ref().map_or_else(
        || "a process outside any tenant:".to_owned(),
        |t| t.name.to_string(),
    );
    let pid = p
        .pid
        .map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"));
    format!("{owner} process {} ({pid})", p.comm)
}

fn whose(t: Option<&crate::model::spans::TenantRef>, none: &str) -> String {
    t.map_or_else(|| none.to_owned(), |t| format!("{}'s", t.name))
}

/// One sentence for the violation's `message`.
fn describe(span: &Span) -> String {
    match &span.body {
        SpanBody::Connection(c) => {
            let to = whose(c.server.tenant.as_ref(), "no tenant's");
            let verb = match span.end_reason {
                Some(crate::model::vocab::EndReason::Failed) => "tried to open",
                _ => "opened",
            };
            match &c.client.process {
                Some(p) => format!(
                    "{} {verb} a {} connection to {to} {}",
                    who(Some(p)),
                    c.transport,
                    c.server.addr
                ),
                None => format!(
                    "a process outside any tenant at {} {verb} a {} connection to {to} {}",
                    c.client.addr, c.transport, c.server.addr
                ),
            }
        }
        SpanBody::File(f) => {
            let owner = whose(f.owner.as_ref(), "an unowned path");
            let verb = match f.outcome {
                Outcome::Ok => "touched",
                Outcome::Denied => "was denied",
                Outcome::Error => "tried",
            };
            format!(
                "{} {verb} {} on {owner} {}",
                who(Some(&f.process)),
                f.op,
                f.path
            )
        }
        SpanBody::Process(p) => format!(
            "{} ran {}",
            who(Some(&p.process)),
            p.process.exe.as_deref().unwrap_or("an unknown program")
        ),
        SpanBody::App(a) => {
            let declared = a.declared_tenant.as_deref().unwrap_or("no tenant");
            let service = a.service.as_deref().unwrap_or("an application");
            let mut text = format!(
                "{service} ({}) declared {declared} for {} span {:?}",
                who(a.process.as_ref()),
                a.kind,
                a.name
            );
            if let Some(peer) = &a.peer {
                let to = whose(peer.tenant.as_ref(), "no tenant's");
                let addr = match (peer.addr, peer.port) {
                    (Some(ip), Some(port)) => std::net::SocketAddr::new(ip, port).to_string(),
                    (Some(ip), None) => ip.to_string(),
                    _ => "an unknown address".to_owned(),
                };
                text.push_str(&format!(" and reached {to} {addr}"));
            }
            text
        }
    }
}

/// A violation of `cross-tenant-network` from a's `comm` (pid 1000 + `caller_pid`) to b's
/// 127.0.0.1:`target_port`, at `time` ns.
#[cfg(test)]
pub(crate) fn fixture(caller_pid: u32, target_port: u16, comm: &str, time: i64) -> Violation {
    Violation {
        signal_id: format!("id-{caller_pid}"),
        rule_id: "cross-tenant-network".into(),
        severity: Severity::High,
        time: UnixNanos(time),
        node: "n".into(),
        kind: Family::Network,
        intended_tenant: Some(TenantName::new("a")),
        actual_tenant: Some(TenantName::new("b")),
        caller: Some(Party {
            tenant: Some(TenantName::new("a")),
            pid: Some(1000 + caller_pid),
            comm: comm.into(),
            exe: None,
            uid: Some(0),
            cgroup_id: 7,
            cgroup_path: "t/a".into(),
            container_id: None,
            k8s_namespace: None,
            k8s_pod_name: None,
            k8s_pod_uid: None,
            k8s_container_name: None,
        }),
        target: Target::Network {
            tenant: Some(TenantName::new("b")),
            addr: "127.0.0.1".parse().expect("an address"),
            port: target_port,
            protocol: Transport::Tcp,
            process: None,
        },
        tier: None,
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        message: String::new(),
        aggregate: None,
    }
}
