//! Spans, Seam's central type: what the kernel saw, attributed to processes and tenants, in the
//! OpenTelemetry data model. Every stage after assembly consumes them: rules (through
//! [`view`]), the feed, OTLP export and the sealed history.
//!
//! A span is self-contained: tenants are carried by **name** (resolved when the span was
//! attributed, so a rules reload that reorders tenants changes nothing), times are wall-clock
//! [`UnixNanos`], and every field serializes both to JSON (the feed) and to compact binary
//! encodings (the store), so nothing here uses serde features a non-self-describing format
//! cannot read back (no `flatten`, `untagged` or skipped fields).
//!
//! Kinds: [`Connection`] (a TCP connection or UDP flow with both ends), [`FileAccess`] (one
//! path one syscall touched), [`ProcessRun`] (a process execution, exec to exit, the root of
//! its trace: see [`ids`]) and [`AppSpan`] (an application's own span received over OTLP,
//! joined to the kernel's view).

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

pub(crate) use super::ids::{SpanId, TraceId};
pub(crate) use crate::model::clock::UnixNanos;
use crate::model::{
    catalogue::SpanName,
    vocab::{
        AppSpanKind, AppStatus, EndReason, FileOp, Outcome, PathConfidence, PathRole, Tier,
        Transport,
    },
};

/// A tenant's name (cheap to clone).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub(crate) struct TenantName(Arc<str>);

/// Names decoded on this thread: decoding history meets the same few tenants millions of
/// times, and sharing their names saves two allocations each time. A short list (tenants on a
/// node are few), searched in order; when full, the oldest entry makes room.
const INTERNED_MAX: usize = 64;

thread_local! {
    static INTERNED: std::cell::RefCell<(Vec<Arc<str>>, usize)> =
        std::cell::RefCell::default();
}

impl<'de> Deserialize<'de> for TenantName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;

        impl serde::de::Visitor<'_> for Name {
            type Value = TenantName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tenant name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<TenantName, E> {
                Ok(INTERNED.with_borrow_mut(|(names, next)| {
                    if let Some(shared) = names.iter().find(|n| &***n == name) {
                        return TenantName(Arc::clone(shared));
                    }
                    let shared: Arc<str> = name.into();
                    if names.len() < INTERNED_MAX {
                        names.push(Arc::clone(&shared));
                    } else {
                        names[*next] = Arc::clone(&shared);
                        *next = (*next + 1) % INTERNED_MAX;
                    }
                    TenantName(shared)
                }))
            }
        }

        deserializer.deserialize_str(Name)
    }
}

impl TenantName {
    pub(crate) fn new(name: &str) -> Self {
        Self(name.into())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Arc<str>> for TenantName {
    fn from(name: Arc<str>) -> Self {
        Self(name)
    }
}

impl fmt::Debug for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant something belongs to, as the rules said when it was attributed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct TenantRef {
    pub name: TenantName,
    /// A shared service (any tenant may reach it).
    pub shared: bool,
}

/// A span's place in a trace, for links across traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct SpanRef {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// A process on this node, as attributed. Its text is shared (`Arc<str>`): every span of a
/// process carries it, and a clone costs a reference count, not an allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRef {
    /// `None` when no task is known (a socket event in softirq with no owner seen).
    pub pid: Option<u32>,
    /// The task's `comm` (at most 15 bytes; empty when unknown).
    pub comm: Arc<str>,
    /// The executable's path, when Seam saw the exec.
    pub exe: Option<Arc<str>>,
    pub uid: Option<u32>,
    /// cgroup v2 id of the task or socket.
    pub cgroup_id: u64,
    /// cgroup path relative to the cgroup2 mount (empty when the cgroup is unknown).
    pub cgroup_path: Arc<str>,
    pub tenant: Option<TenantRef>,
    /// The process span (root of the process's trace), when the process is known.
    pub execution: Option<SpanRef>,
    /// The container (and Kubernetes pod) the cgroup belongs to, when it is one.
    pub container: Option<Arc<ContainerRef>>,
}

/// A container on this node: its id from the cgroup path, its name and pod from the container
/// runtime (OpenTelemetry `container.id`, `k8s.container.name`, `k8s.*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct ContainerRef {
    /// The runtime's full container id (`container.id`).
    pub id: String,
    /// `k8s.container.name` (the kubelet's `io.kubernetes.container.name`), else the runtime's
    /// own name; `None` when the runtime has not named it.
    pub name: Option<String>,
    /// The pod, when the kubelet started the container.
    pub pod: Option<PodRef>,
}

/// A Kubernetes pod, as the kubelet labelled its containers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct PodRef {
    /// `k8s.namespace.name`.
    pub namespace: String,
    /// `k8s.pod.name`.
    pub name: String,
    /// `k8s.pod.uid`.
    pub uid: String,
}

/// A span: ids, times, and what it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The process span for connections and file accesses; `None` for a trace's root.
    pub parent_span_id: Option<SpanId>,
    pub start: UnixNanos,
    /// `None` while the span is open.
    pub end: Option<UnixNanos>,
    pub end_reason: Option<EndReason>,
    pub body: SpanBody,
}

/// What a span is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SpanBody {
    Connection(Connection),
    File(FileAccess),
    Process(ProcessRun),
    App(AppSpan),
}

impl Span {
    /// The span's name in rules (`net.connect`, `file.open`, ...).
    pub(crate) fn name(&self) -> SpanName {
        match &self.body {
            SpanBody::Connection(c) => match c.transport {
                Transport::Tcp => SpanName::NetConnect,
                Transport::Udp => SpanName::NetFlow,
            },
            SpanBody::File(f) => match f.op {
                FileOp::Read | FileOp::Write => SpanName::FileOpen,
                FileOp::Create => SpanName::FileCreate,
                FileOp::Delete => SpanName::FileDelete,
                FileOp::Rename => SpanName::FileRename,
                FileOp::Truncate => SpanName::FileTruncate,
                FileOp::Exec => SpanName::FileExec,
            },
            SpanBody::Process(_) => SpanName::ProcessExec,
            SpanBody::App(a) => match a.kind {
                AppSpanKind::Server => SpanName::AppServer,
                AppSpanKind::Client => SpanName::AppClient,
                AppSpanKind::Internal => SpanName::AppInternal,
                AppSpanKind::Producer => SpanName::AppProducer,
                AppSpanKind::Consumer => SpanName::AppConsumer,
            },
        }
    }

    /// The tier of the resource the span touched: a file's path, a connection's server end,
    /// an application client span's peer; None when unclassified or there is none.
    pub(crate) fn tier(&self) -> Option<Tier> {
        match &self.body {
            SpanBody::Connection(c) => c.server.tier,
            SpanBody::File(f) => f.tier,
            SpanBody::Process(_) => None,
            SpanBody::App(a) => a.peer.as_ref().and_then(|p| p.tier),
        }
    }

    /// The acting process: a connection's client, a file access's or execution's process, an
    /// application span's sender.
    pub(crate) fn actor(&self) -> Option<&ProcessRef> {
        match &self.body {
            SpanBody::Connection(c) => c.client.process.as_ref(),
            SpanBody::File(f) => Some(&f.process),
            SpanBody::Process(p) => Some(&p.process),
            SpanBody::App(a) => a.process.as_ref(),
        }
    }
}

/// A TCP connection or UDP flow between a client (the end that connected or sent first) and a
/// server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Connection {
    pub transport: Transport,
    /// Network namespace inode of the sockets (TCP), when known.
    pub netns: Option<u32>,
    pub client: ConnectionEnd,
    pub server: ConnectionEnd,
}

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConnectionEnd {
    /// This end's own address and port.
    pub addr: SocketAddr,
    /// The socket's process, when the socket is watched on this node.
    pub process: Option<ProcessRef>,
    /// This end's tenant: its process's when watched, else the owner of its address in the
    /// tenants' `endpoints`.
    pub tenant: Option<TenantRef>,
    /// On this node: a watched socket, or a loopback or local interface address.
    pub local: bool,
    /// What the socket counted, read from it when it closed (TCP; `None` for UDP or when the
    /// close was not seen).
    pub traffic: Option<Traffic>,
    /// The tier of this end's address among its tenant's `endpoints` (None: unclassified).
    pub tier: Option<Tier>,
}

/// Counters of one TCP socket (`struct tcp_sock`) at close.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Traffic {
    /// Payload bytes this end sent, retransmissions not counted (`bytes_sent - bytes_retrans`).
    pub bytes_sent: u64,
    /// Payload bytes this end received (`bytes_received`, without the peer's FIN).
    pub bytes_received: u64,
    /// Payload bytes this end sent again (`bytes_retrans`).
    pub bytes_retransmitted: u64,
    /// Segments sent (`segs_out`, control segments included).
    pub segments_sent: u32,
    /// Segments received (`segs_in`).
    pub segments_received: u32,
}

/// One path one file syscall touched (a rename gives two spans, one per path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileAccess {
    pub process: ProcessRef,
    pub op: FileOp,
    pub outcome: Outcome,
    /// The syscall's return value (an fd or 0 on success, -errno on failure).
    pub ret: i64,
    /// Absolute path; starts with `.../` when leading components were cut.
    pub path: String,
    pub path_confidence: PathConfidence,
    /// Leading components are missing (too deep or too long for the kernel walk).
    pub path_truncated: bool,
    /// The tenant owning the path (tenants' `paths`).
    pub owner: Option<TenantRef>,
    /// For a rename: which of its two paths this is.
    pub role: Option<PathRole>,
    /// The tier of the path among its owner's `paths` (None: unclassified).
    pub tier: Option<Tier>,
}

/// A process execution: one program image from exec to exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRun {
    pub process: ProcessRef,
    /// The parent's pid at exec.
    pub ppid: Option<u32>,
    /// How it ended, when the exit was seen.
    pub exit: Option<ExitStatus>,
    /// `false` when the process was already running when Seam first saw it (no exec seen:
    /// `start` is the process's start time from procfs).
    pub exec_seen: bool,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExitStatus {
    /// The exit status when it exited normally.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Decodes `task->exit_code` (`status << 8 | signal`, as wait(2) reports it).
    pub(crate) fn from_raw(raw: u32) -> Self {
        let signal = (raw & 0x7f) as i32;
        if signal == 0 {
            Self {
                code: Some(((raw >> 8) & 0xff) as i32),
                signal: None,
            }
        } else {
            Self {
                code: None,
                signal: Some(signal),
            }
        }
    }
}

/// An application's own span (OTLP), joined to the kernel's view of the process and peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppSpan {
    /// `service.name` of the sender.
    pub service: Option<String>,
    /// The application's span name.
    pub name: String,
    pub kind: AppSpanKind,
    pub status: AppStatus,
    /// The tenant the application declared for the operation (as written; it may name no
    /// tenant Seam knows).
    pub declared_tenant: Option<String>,
    /// The sending process as the kernel sees it (by the resource's `process.pid`).
    pub process: Option<ProcessRef>,
    /// Where a client span went, and whose it was.
    pub peer: Option<AppPeer>,
    /// The application's other string attributes (bounded), for `attr("...")` in rules.
    pub attributes: Vec<(String, String)>,
}

/// The peer of an application client span.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppPeer {
    /// `server.address` (or `network.peer.address`) as an IP, when it is one.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    /// The peer's tenant: from the kernel connection it was joined to, else the owner of the
    /// address in the tenants' `endpoints`.
    pub tenant: Option<TenantRef>,
    pub local: bool,
    /// The server process, when the joined connection's server end is watched.
    pub process: Option<ProcessRef>,
    /// The kernel connection span the client span was joined to.
    pub connection: Option<SpanRef>,
    /// The tier of the peer's address among its tenant's `endpoints` (None: unclassified).
    pub tier: Option<Tier>,
}
