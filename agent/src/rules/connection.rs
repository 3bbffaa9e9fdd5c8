//! [`SpanView`] for connection spans (`net.connect`, `net.flow`).

use super::{
    catalogue::{Attr, SpanName},
    eval::{EvalContext, SpanView, Value, caller_attr},
};
use crate::{
    attribution::Caller,
    config::TenantId,
    correlation::{ConnectionSpan, SpanId, TraceId},
    events::Transport,
};

impl ConnectionSpan {
    /// The tenant whose resource the span touched: the server socket's own tenant when it is
    /// on this node, else the owner of the destination address from `endpoints`.
    pub fn peer_tenant(&self, ctx: &EvalContext<'_>) -> Option<TenantId> {
        match &self.server {
            Some(server) => server.caller.tenant,
            None => ctx
                .rules
                .tenant_for_endpoint(self.server_endpoint.ip, self.server_endpoint.port),
        }
    }
}

impl SpanView for ConnectionSpan {
    fn name(&self) -> SpanName {
        match self.protocol {
            Transport::Tcp => SpanName::NetConnect,
            Transport::Udp => SpanName::NetFlow,
        }
    }

    fn get<'a>(&'a self, attr: Attr, ctx: &'a EvalContext<'_>) -> Value<'a> {
        if let Some(v) = caller_attr(self.caller(), attr, ctx) {
            return v;
        }
        match attr {
            Attr::PeerTenant => ctx.tenant(self.peer_tenant(ctx)),
            Attr::PeerShared => ctx.shared(self.peer_tenant(ctx)),
            Attr::PeerAddr => Value::Addr(self.server_endpoint.ip),
            Attr::PeerPort => Value::Int(i64::from(self.server_endpoint.port)),
            Attr::PeerLocal => {
                Value::Bool(self.server.is_some() || ctx.local.contains(self.server_endpoint.ip))
            }
            Attr::PeerProcessComm => match &self.server {
                Some(s) if !s.caller.comm.is_empty() => Value::Str(&s.caller.comm),
                _ => Value::Null,
            },
            Attr::NetProtocol => Value::Str(match self.protocol {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
            }),
            Attr::CallerAddr => Value::Addr(self.client_endpoint.ip),
            Attr::CallerLocal => {
                Value::Bool(self.client.is_some() || ctx.local.contains(self.client_endpoint.ip))
            }
            _ => Value::Null,
        }
    }

    fn caller(&self) -> Option<&Caller> {
        self.client.as_ref().map(|c| &c.caller)
    }

    fn peer(&self) -> Option<&Caller> {
        self.server.as_ref().map(|s| &s.caller)
    }

    fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    fn span_id(&self) -> SpanId {
        self.span_id
    }

    fn start_ns(&self) -> u64 {
        self.start_ns
    }
}
