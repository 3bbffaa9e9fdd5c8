//! Seam's records in OTLP: spans as spans, violations and losses as log records. Attribute names
//! follow the OpenTelemetry semantic conventions where one exists (`client.address`,
//! `server.port`, `network.transport`, `process.pid`, `process.executable.name`, `file.path`,
//! ...) and the `seam.*` namespace otherwise (tenants, cgroups, byte counts); docs/otlp.md lists
//! the mapping from the JSON feed.
use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value},
    logs::v1::{LogRecord, SeverityNumber},
    resource::v1::Resource,
    trace::v1::{self as trace, span::SpanKind, status::StatusCode},
};

use crate::{
    detect::{Party, Target, Violation},
    model::{
        spans::{
            AppSpan, Connection, ConnectionEnd, ContainerRef, FileAccess, PodRef, ProcessRef,
            ProcessRun, Span, SpanBody, TenantRef,
        },
        vocab::{AppSpanKind, AppStatus, EndReason, Outcome, Severity},
    },
    output::Loss,
};

/// Attributes being built. Keys are taken as `impl Into<String>`: a key built with `format!`
/// moves in instead of being copied (export allocates per attribute; it is its main cost).
struct Attrs(Vec<KeyValue>);

impl Default for Attrs {
    /// Room for a connection span's attributes (the most of any record).
    fn default() -> Self {
        Self(Vec::with_capacity(32))
    }
}

impl Attrs {
    fn value(&mut self, key: impl Into<String>, value: Value) {
        self.0.push(KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        });
    }

    fn str(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.value(key, Value::StringValue(value.into()));
    }

    fn text(&mut self, key: impl Into<String>, value: &str) {
        if !value.is_empty() {
            self.str(key, value);
        }
    }

    fn int(&mut self, key: impl Into<String>, value: impl Into<i64>) {
        self.value(key, Value::IntValue(value.into()));
    }

    fn bool(&mut self, key: impl Into<String>, value: bool) {
        self.value(key, Value::BoolValue(value));
    }

    fn tenant(&mut self, prefix: &str, tenant: Option<&TenantRef>) {
        if let Some(t) = tenant {
            self.str(prefix, t.name.as_str());
            self.bool(format!("{prefix}.shared"), t.shared);
        }
    }

    /// A process under `prefix` (`process` for the actor, `seam.peer.process` for the peer).
    fn process(&mut self, prefix: &str, p: &ProcessRef) {
        if let Some(pid) = p.pid {
            self.int(format!("{prefix}.pid"), pid);
        }
        self.text(format!("{prefix}.executable.name"), &p.comm);
        if let Some(exe) = &p.exe {
            self.str(format!("{prefix}.executable.path"), &**exe);
        }
        if let Some(uid) = p.uid {
            self.int(format!("{prefix}.user.id"), uid);
        }
    }

    /// The container and pod of a process (`container.id`, `k8s.*`; under `prefix` for the
    /// peer: `seam.peer.container.id`, ...).
    fn container(&mut self, prefix: &str, container: Option<&ContainerRef>) {
        let Some(c) = container else {
            return;
        };
        self.str(format!("{prefix}container.id"), c.id.as_str());
        if let Some(pod) = &c.pod {
            self.str(
                format!("{prefix}k8s.namespace.name"),
                pod.namespace.as_str(),
            );
            self.str(format!("{prefix}k8s.pod.name"), pod.name.as_str());
            self.text(format!("{prefix}k8s.pod.uid"), &pod.uid);
            if let Some(name) = &c.name {
                self.str(format!("{prefix}k8s.container.name"), name.as_str());
            }
        } else if let Some(name) = &c.name {
            self.str(format!("{prefix}container.name"), name.as_str());
        }
    }

    /// A violation's party's container and pod (see [`Attrs::container`]).
    fn party_container(&mut self, prefix: &str, p: &Party) {
        let pod = p.k8s_namespace.as_ref().zip(p.k8s_pod_name.as_ref());
        let container = p.container_id.as_ref().map(|id| ContainerRef {
            id: id.clone(),
            name: p.k8s_container_name.clone(),
            pod: pod.map(|(namespace, name)| PodRef {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: p.k8s_pod_uid.clone().unwrap_or_default(),
            }),
        });
        self.container(prefix, container.as_ref());
    }

    /// The acting process and its tenant and cgroup (`process.*`, `seam.tenant`,
    /// `seam.cgroup.*`).
    fn actor(&mut self, p: &ProcessRef) {
        self.process("process", p);
        self.container("", p.container.as_deref());
        self.tenant("seam.tenant", p.tenant.as_ref());
        self.int(
            "seam.cgroup.id",
            i64::try_from(p.cgroup_id).unwrap_or(i64::MAX),
        );
        self.text("seam.cgroup.path", &p.cgroup_path);
    }
}

/// The resource every export carries.
pub(crate) fn resource(
    service_name: &str,
    node: &str,
    extra: &std::collections::BTreeMap<String, String>,
) -> Resource {
    let mut a = Attrs::default();
    a.str("service.name", service_name);
    a.str("service.version", env!("CARGO_PKG_VERSION"));
    a.str("host.name", node);
    a.str("os.type", "linux");
    if let Ok(uname) = nix::sys::utsname::uname() {
        a.str("os.version", uname.release().to_string_lossy());
        a.str("host.arch", uname.machine().to_string_lossy());
    }
    for (k, v) in extra {
        a.0.retain(|kv| kv.key != *k);
        a.str(k, v.as_str());
    }
    Resource {
        attributes: a.0,
        ..Resource::default()
    }
}

/// The instrumentation scope of everything Seam exports.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "seam".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

fn end(a: &mut Attrs, prefix: &str, e: &ConnectionEnd) {
    a.str(format!("{prefix}.address"), e.addr.ip().to_string());
    a.int(format!("{prefix}.port"), i64::from(e.addr.port()));
}

fn traffic(a: &mut Attrs, prefix: &str, e: &ConnectionEnd) {
    if let Some(t) = e.traffic {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        a.int(format!("seam.{prefix}.bytes_sent"), n(t.bytes_sent));
        a.int(format!("seam.{prefix}.bytes_received"), n(t.bytes_received));
        a.int(
            format!("seam.{prefix}.bytes_retransmitted"),
            n(t.bytes_retransmitted),
        );
        a.int(format!("seam.{prefix}.segments_sent"), t.segments_sent);
        a.int(
            format!("seam.{prefix}.segments_received"),
            t.segments_received,
        );
    }
}

fn connection(a: &mut Attrs, c: &Connection) -> SpanKind {
    a.str("network.transport", c.transport.as_str());
    a.str(
        "network.type",
        if c.server.addr.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        },
    );
    end(a, "client", &c.client);
    end(a, "server", &c.server);
    if let Some(p) = &c.client.process {
        a.actor(p);
    }
    a.tenant("seam.peer.tenant", c.server.tenant.as_ref());
    a.bool("seam.peer.local", c.server.local);
    a.bool("seam.caller.local", c.client.local);
    if let Some(p) = &c.server.process {
        a.process("seam.peer.process", p);
        a.text("seam.peer.cgroup.path", &p.cgroup_path);
        a.container("seam.peer.", p.container.as_deref());
    }
    if let Some(netns) = c.netns {
        a.int("seam.netns", netns);
    }
    traffic(a, "client", &c.client);
    traffic(a, "server", &c.server);
    if c.client.process.is_some() {
        SpanKind::Client
    } else {
        SpanKind::Server
    }
}

fn file(a: &mut Attrs, f: &FileAccess) {
    a.actor(&f.process);
    a.str("file.path", f.path.as_str());
    if let Some((dir, name)) = f.path.rsplit_once('/') {
        a.text("file.name", name);
        a.str("file.directory", if dir.is_empty() { "/" } else { dir });
    }
    a.str("seam.file.op", f.op.as_str());
    a.str("seam.file.outcome", f.outcome.as_str());
    if f.ret < 0 {
        a.int("seam.file.errno", -f.ret);
    }
    a.tenant("seam.file.tenant", f.owner.as_ref());
    a.str("seam.file.path_confidence", f.path_confidence.as_str());
    a.bool("seam.file.path_truncated", f.path_truncated);
    if let Some(role) = f.role {
        a.str("seam.file.role", role.as_str());
    }
}

fn process(a: &mut Attrs, p: &ProcessRun) {
    a.actor(&p.process);
    if let Some(ppid) = p.ppid {
        a.int("process.parent_pid", ppid);
    }
    if let Some(exit) = p.exit {
        if let Some(code) = exit.code {
            a.int("process.exit.code", code);
        }
        if let Some(signal) = exit.signal {
            a.int("seam.process.signal", signal);
        }
    }
    a.bool("seam.process.exec_seen", p.exec_seen);
}

fn app(a: &mut Attrs, s: &AppSpan) -> SpanKind {
    if let Some(p) = &s.process {
        a.actor(p);
    }
    if let Some(declared) = &s.declared_tenant {
        a.str("seam.declared.tenant", declared.as_str());
    }
    if let Some(service) = &s.service {
        a.str("seam.app.service", service.as_str());
    }
    if let Some(peer) = &s.peer {
        if let Some(ip) = peer.addr {
            a.str("server.address", ip.to_string());
        }
        if let Some(port) = peer.port {
            a.int("server.port", i64::from(port));
        }
        a.tenant("seam.peer.tenant", peer.tenant.as_ref());
        a.bool("seam.app.joined", peer.connection.is_some());
    }
    match s.kind {
        AppSpanKind::Internal => SpanKind::Internal,
        AppSpanKind::Server => SpanKind::Server,
        AppSpanKind::Client => SpanKind::Client,
        AppSpanKind::Producer => SpanKind::Producer,
        AppSpanKind::Consumer => SpanKind::Consumer,
    }
}

/// An ended span as an OTLP span.
pub(crate) fn span(s: &Span) -> trace::Span {
    let mut a = Attrs::default();
    let kind = match &s.body {
        SpanBody::Connection(c) => connection(&mut a, c),
        SpanBody::File(f) => {
            file(&mut a, f);
            SpanKind::Internal
        }
        SpanBody::Process(p) => {
            process(&mut a, p);
            SpanKind::Internal
        }
        SpanBody::App(x) => app(&mut a, x),
    };
    if let Some(reason) = s.end_reason {
        a.str("seam.end_reason", reason.as_str());
    }
    let error = match &s.body {
        SpanBody::Connection(_) => (s.end_reason == Some(EndReason::Failed))
            .then(|| "the connection was refused or never completed".to_owned()),
        SpanBody::File(f) => (f.outcome != Outcome::Ok).then(|| match f.outcome {
            Outcome::Denied => format!("permission denied (errno {})", -f.ret),
            _ => format!("failed (errno {})", -f.ret),
        }),
        SpanBody::App(x) => (x.status == AppStatus::Error).then(String::new),
        SpanBody::Process(_) => None,
    };
    // The peer process's span, in the peer's own trace.
    let links = match &s.body {
        SpanBody::Connection(c) => c
            .server
            .process
            .as_ref()
            .and_then(|p| p.execution)
            .filter(|e| e.trace_id != s.trace_id)
            .map(|e| trace::span::Link {
                trace_id: e.trace_id.0.to_vec(),
                span_id: e.span_id.0.to_vec(),
                attributes: {
                    let mut l = Attrs::default();
                    l.str("seam.link", "peer.process");
                    l.0
                },
                ..trace::span::Link::default()
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let start = s.start.as_u64();
    trace::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        name: s.name().as_str().to_owned(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: s.end.map_or(start, |e| e.as_u64().max(start)),
        attributes: a.0,
        links,
        status: error.map(|message| trace::Status {
            message,
            code: StatusCode::Error as i32,
        }),
        ..trace::Span::default()
    }
}

fn severity(s: Severity) -> SeverityNumber {
    match s {
        Severity::Info => SeverityNumber::Info,
        Severity::Low => SeverityNumber::Warn,
        Severity::Medium => SeverityNumber::Warn2,
        Severity::High => SeverityNumber::Error,
        Severity::Critical => SeverityNumber::Fatal,
    }
}

/// A violation as a log record in the trace and span it is about.
pub(crate) fn violation(v: &Violation, observed: u64) -> LogRecord {
    let mut a = Attrs::default();
    a.str("seam.rule_id", v.rule_id.as_str());
    a.str("seam.signal_id", v.signal_id.as_str());
    a.str("seam.kind", v.kind.kind());
    if let Some(t) = &v.intended_tenant {
        a.str("seam.intended_tenant", t.as_str());
    }
    if let Some(t) = &v.actual_tenant {
        a.str("seam.actual_tenant", t.as_str());
    }
    a.str("seam.node", v.node.as_str());
    if let Some(c) = &v.caller {
        if let Some(pid) = c.pid {
            a.int("process.pid", pid);
        }
        a.text("process.executable.name", &c.comm);
        if let Some(t) = &c.tenant {
            a.str("seam.tenant", t.as_str());
        }
        a.text("seam.cgroup.path", &c.cgroup_path);
        a.party_container("", c);
    }
    match &v.target {
        Target::Network {
            tenant,
            addr,
            port,
            protocol,
            process,
        } => {
            if let Some(p) = process {
                a.party_container("seam.peer.", p);
            }
            a.str("server.address", addr.to_string());
            a.int("server.port", i64::from(*port));
            a.str("network.transport", protocol.as_str());
            if let Some(t) = tenant {
                a.str("seam.peer.tenant", t.as_str());
            }
        }
        Target::File {
            tenant,
            path,
            op,
            outcome,
            ..
        } => {
            a.str("file.path", path.as_str());
            a.str("seam.file.op", op.as_str());
            a.str("seam.file.outcome", outcome.as_str());
            if let Some(t) = tenant {
                a.str("seam.file.tenant", t.as_str());
            }
        }
        Target::Process { exe, .. } => {
            if let Some(exe) = exe {
                a.str("process.executable.path", &**exe);
            }
        }
        Target::App {
            declared_tenant,
            span_name,
            ..
        } => {
            if let Some(d) = declared_tenant {
                a.str("seam.declared.tenant", d.as_str());
            }
            a.str("seam.app.span_name", span_name.as_str());
        }
    }
    if let Some(agg) = &v.aggregate {
        a.int(
            "seam.aggregate.count",
            i64::try_from(agg.count).unwrap_or(i64::MAX),
        );
    }
    let sev = severity(v.severity);
    LogRecord {
        time_unix_nano: v.time.as_u64(),
        observed_time_unix_nano: observed,
        severity_number: sev as i32,
        severity_text: v.severity.as_str().to_owned(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(v.message.clone())),
        }),
        attributes: a.0,
        trace_id: v.trace_id.0.to_vec(),
        span_id: v.span_id.0.to_vec(),
        event_name: "seam.violation".to_owned(),
        ..LogRecord::default()
    }
}

/// A loss report as a log record.
pub(crate) fn loss(l: &Loss, observed: u64) -> LogRecord {
    let mut a = Attrs::default();
    a.str("seam.loss.source", l.source().as_str());
    a.text("seam.loss.probe", &l.subject.to_string());
    a.int("seam.loss.lost", i64::try_from(l.lost).unwrap_or(i64::MAX));
    a.int(
        "seam.loss.lost_total",
        i64::try_from(l.lost_total).unwrap_or(i64::MAX),
    );
    a.str("seam.node", l.node.as_str());
    LogRecord {
        time_unix_nano: l.time.as_u64(),
        observed_time_unix_nano: observed,
        severity_number: SeverityNumber::Warn as i32,
        severity_text: "warn".to_owned(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(l.message.clone())),
        }),
        attributes: a.0,
        event_name: "seam.loss".to_owned(),
        ..LogRecord::default()
    }
}

#[cfg(test)]
mod tests;
