//! OTLP in: applications on this node send their own spans (OTLP/HTTP protobuf on
//! `/v1/traces`, or OTLP/gRPC), which Seam joins to what the kernel saw so a declared tenant that
//! differs from the observed one is caught. Off by default; when on it listens on loopback
//! unless told otherwise. Bodies are size-limited; a malformed request gets 400 (HTTP) or
//! INVALID_ARGUMENT (gRPC) and is counted; nothing a client sends can panic the agent.
pub(crate) mod decode;
mod grpc;
mod http;
mod peer;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// What went wrong with a request (the `reason` label of `seam_otlp_receive_errors_total`).
pub(crate) use crate::metrics::receive::RequestError;
use crate::{
    metrics::{Metrics, serve::Listener},
    model::app::AppSpanIn,
};

/// Where and how to receive.
#[derive(Clone, Debug)]
pub(crate) struct ReceiverConfig {
    /// OTLP/HTTP listener (`/v1/traces`).
    pub http: Option<SocketAddr>,
    /// OTLP/gRPC listener.
    pub grpc: Option<SocketAddr>,
    /// Largest request body (after decompression).
    pub max_bytes: usize,
    /// The attribute that carries the declared tenant.
    pub declared_attribute: String,
    /// The host's procfs (finding the sending process from its socket).
    pub procfs: PathBuf,
    /// TLS and bearer token of the listeners.
    pub security: crate::serve::ListenSecurity,
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveError {
    /// The address could not be bound.
    #[error("cannot listen for OTLP on {addr}: {source}; pick a free port or another address")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server refused the TLS identity.
    #[error("cannot serve OTLP/gRPC over TLS: {0}; check --tls-cert and --tls-key")]
    Tls(#[source] tonic::transport::Error),
}

/// The state both listeners share.
pub(crate) struct Receiver {
    /// Where decoded spans go (the pipeline, wired by the daemon).
    out: mpsc::Sender<Vec<AppSpanIn>>,
    config: ReceiverConfig,
    received: Counter,
    /// By reason, in [`RequestError::ALL`] order.
    errors: [Counter; RequestError::ALL.len()],
    /// Requests refused for a bad token: OTLP/HTTP, OTLP/gRPC.
    unauthorized: [Counter; 2],
    /// Sender's socket (remote, local) -> its process, per connection.
    owners: Mutex<HashMap<(SocketAddr, SocketAddr), Option<u32>>>,
}

/// Most cached socket owners (connections are few; this only bounds memory).
const MAX_OWNERS: usize = 4096;

impl Receiver {
    fn error(&self, error: RequestError, n: u64) {
        self.errors[error as usize].inc_by(n);
    }

    /// The local process behind the client socket `remote` connected to our `local`.
    async fn sender(&self, remote: Option<SocketAddr>, local: SocketAddr) -> Option<u32> {
        let remote = remote?;
        if !remote.ip().is_loopback()
            && !crate::attribution::LocalAddrs::current().contains(remote.ip())
        {
            return None;
        }
        if let Some(cached) = self.owners.lock().ok()?.get(&(remote, local)) {
            return *cached;
        }
        let procfs = self.config.procfs.clone();
        let owner = tokio::task::spawn_blocking(move || peer::socket_owner(&procfs, remote, local))
            .await
            .ok()
            .flatten();
        if let Ok(mut owners) = self.owners.lock() {
            if owners.len() >= MAX_OWNERS {
                owners.clear();
            }
            owners.insert((remote, local), owner);
        }
        owner
    }

    /// Decodes a request's spans and hands them to the pipeline; returns the number refused,
    /// or `Busy` when the pipeline cannot take them now.
    fn accept(
        &self,
        request: ExportTraceServiceRequest,
        sender: Option<u32>,
    ) -> Result<u64, RequestError> {
        let (spans, refused) = decode::decode(request, &self.config.declared_attribute, sender);
        self.error(RequestError::RefusedSpans, refused);
        if spans.is_empty() {
            return Ok(refused);
        }
        let n = spans.len() as u64;
        match self.out.try_send(spans) {
            Ok(()) => {
                self.received.inc_by(n);
                Ok(refused)
            }
            Err(_) => {
                self.error(RequestError::Busy, 1);
                Err(RequestError::Busy)
            }
        }
    }
}

/// Where the listeners ended up (port 0 resolved).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub(crate) struct Bound {
    pub http: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
}

/// Starts the configured listeners.
pub(crate) async fn spawn(
    config: ReceiverConfig,
    out: mpsc::Sender<Vec<AppSpanIn>>,
    metrics: &Metrics,
) -> Result<Bound, ReceiveError> {
    for addr in [config.http, config.grpc].into_iter().flatten() {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "OTLP receiver listens beyond loopback: any host that reaches it can send spans");
        }
    }
    let receiver = Arc::new(Receiver {
        out,
        received: metrics.receive.received(),
        errors: std::array::from_fn(|i| metrics.receive.error(RequestError::ALL[i])),
        unauthorized: [Listener::OtlpHttp, Listener::OtlpGrpc]
            .map(|l| metrics.listeners.unauthorized(l)),
        owners: Mutex::new(HashMap::new()),
        config: config.clone(),
    });
    let mut bound = Bound::default();
    if let Some(addr) = config.http {
        bound.http = Some(http::spawn(addr, receiver.clone()).await?);
    }
    if let Some(addr) = config.grpc {
        bound.grpc = Some(grpc::spawn(addr, receiver).await?);
    }
    Ok(bound)
}
