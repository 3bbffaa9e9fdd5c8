//! An application's own span as Seam received it over OTLP (`receive`), before the join to
//! what the kernel saw (`assemble`).
use crate::model::{
    clock::UnixNanos,
    spans::{SpanId, TraceId},
    vocab::{AppSpanKind, AppStatus},
};

/// An application span as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppSpanIn {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: AppSpanKind,
    pub status: AppStatus,
    pub start: UnixNanos,
    pub end: UnixNanos,
    /// `service.name` of the resource.
    pub service: Option<String>,
    /// `process.pid` of the resource (or the span).
    pub pid: Option<u32>,
    /// The process that sent the request, from the kernel's view of its socket.
    pub sender_pid: Option<u32>,
    /// The declared tenant (the configured attribute, on the span or else the resource).
    pub declared_tenant: Option<String>,
    /// `server.address` (or `network.peer.address`, `net.peer.name`).
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
    /// Other string-valued attributes, bounded.
    pub attributes: Vec<(String, String)>,
}
