//! OTLP/gRPC: the `TraceService/Export` method (tonic), with a decoding size limit.
use std::{net::SocketAddr, sync::Arc};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Identity, Server, ServerTlsConfig, server::TcpIncoming},
};

use super::{ReceiveError, Receiver};
use crate::serve::Auth;

struct Traces {
    receiver: Arc<Receiver>,
    local: SocketAddr,
}

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let sender = self
            .receiver
            .sender(request.remote_addr(), self.local)
            .await;
        match self.receiver.accept(request.into_inner(), sender) {
            Ok(refused) => Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: (refused > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(refused).unwrap_or(i64::MAX),
                    error_message: "spans with invalid trace or span ids or times were refused"
                        .to_owned(),
                }),
            })),
            Err(_) => Err(tonic::Status::unavailable("Seam is busy; retry")),
        }
    }
}

pub(super) async fn spawn(
    addr: SocketAddr,
    receiver: Arc<Receiver>,
) -> Result<SocketAddr, ReceiveError> {
    let bind = |source| ReceiveError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let limit = receiver.config.max_bytes;
    let security = receiver.config.security.clone();
    let mut server = Server::builder();
    if let Some((cert, key)) = security.identity_pem() {
        server = server
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(ReceiveError::Tls)?;
    }
    let denied = receiver.unauthorized[1].clone();
    // The token is checked on the headers, before the body is decoded.
    let service = InterceptedService::new(
        TraceServiceServer::new(Traces {
            receiver,
            local: bound,
        })
        .max_decoding_message_size(limit),
        move |request: tonic::Request<()>| {
            let value = request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes());
            match security.check_value(value) {
                Auth::Allowed => Ok(request),
                Auth::Denied => {
                    denied.inc();
                    Err(tonic::Status::unauthenticated(
                        "send authorization: Bearer <token> (--auth-token-file)",
                    ))
                }
            }
        },
    );
    tracing::info!(%bound, "receiving application spans over OTLP/gRPC on {bound}");
    tokio::spawn(async move {
        if let Err(error) = server
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
        {
            tracing::error!(%error, "OTLP/gRPC receiver stopped");
        }
    });
    Ok(bound)
}
