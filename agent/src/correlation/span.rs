//! Connection spans in the OpenTelemetry data model: a trace id, a span id, a start time and
//! both ends (client and server), each with its own caller and tenant.
use rand::RngCore;

use crate::{
    attribution::Caller,
    events::{Endpoint, Transport},
};

/// 16-byte OpenTelemetry trace id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);
/// 8-byte OpenTelemetry span id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TraceId {
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        id[0] |= 1; // never all-zero (invalid in OTel)
        Self(id)
    }
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl SpanId {
    pub fn random() -> Self {
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        id[0] |= 1;
        Self(id)
    }
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// One end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanEnd {
    pub caller: Caller,
    pub cookie: u64,
    /// This end's own address and port.
    pub endpoint: Endpoint,
}

/// A connection (TCP) or flow (UDP) between a client and a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub protocol: Transport,
    /// Boot-time ns of the first end seen.
    pub start_ns: u64,
    /// The initiating end, when it is a watched socket on this node.
    pub client: Option<SpanEnd>,
    /// The accepting end, when it is a watched socket on this node.
    pub server: Option<SpanEnd>,
    /// Where the client connected from.
    pub client_endpoint: Endpoint,
    /// Where the client connected to.
    pub server_endpoint: Endpoint,
}

impl ConnectionSpan {
    /// A span between two endpoints; either end may be unobserved (off-node or unwatched).
    fn new(
        protocol: Transport,
        client: Option<SpanEnd>,
        server: Option<SpanEnd>,
        endpoints: (Endpoint, Endpoint),
        start_ns: u64,
    ) -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            protocol,
            start_ns,
            client_endpoint: endpoints.0,
            server_endpoint: endpoints.1,
            client,
            server,
        }
    }

    pub fn paired(protocol: Transport, client: SpanEnd, server: SpanEnd, start_ns: u64) -> Self {
        let endpoints = (client.endpoint, server.endpoint);
        Self::new(protocol, Some(client), Some(server), endpoints, start_ns)
    }

    pub fn client_only(
        protocol: Transport,
        client: SpanEnd,
        remote: Endpoint,
        start_ns: u64,
    ) -> Self {
        let endpoints = (client.endpoint, remote);
        Self::new(protocol, Some(client), None, endpoints, start_ns)
    }

    pub fn server_only(
        protocol: Transport,
        server: SpanEnd,
        remote: Endpoint,
        start_ns: u64,
    ) -> Self {
        let endpoints = (remote, server.endpoint);
        Self::new(protocol, None, Some(server), endpoints, start_ns)
    }
}
