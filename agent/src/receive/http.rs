//! OTLP/HTTP: `POST /v1/traces` with a protobuf body (optionally gzip), HTTP/1.1.
use std::{convert::Infallible, io::Read as _, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tokio::net::TcpListener;

use super::{ReceiveError, Receiver, RequestError};
use crate::serve::Auth;

pub(super) async fn spawn(
    addr: SocketAddr,
    receiver: Arc<Receiver>,
) -> Result<SocketAddr, ReceiveError> {
    let bind = |source| ReceiveError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let scheme = if receiver.config.security.tls() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%bound, "receiving application spans over OTLP/HTTP on {scheme}://{bound}/v1/traces");
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "OTLP/HTTP listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let receiver = receiver.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(
                    Duration::from_secs(10),
                    receiver.config.security.accept(stream),
                )
                .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "OTLP/HTTP connection: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let sender = receiver.sender(Some(remote), bound).await;
                let service = service_fn(move |request| {
                    let receiver = receiver.clone();
                    async move { Ok::<_, Infallible>(respond(&receiver, request, sender).await) }
                });
                if let Err(error) = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "OTLP/HTTP connection ended");
                }
            });
        }
    });
    Ok(bound)
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn refuse(
    receiver: &Receiver,
    error: RequestError,
    status: StatusCode,
    message: &str,
) -> Response<Full<Bytes>> {
    receiver.error(error, 1);
    plain(status, message)
}

async fn respond(
    receiver: &Receiver,
    request: Request<Incoming>,
    sender: Option<u32>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/v1/traces" {
        return plain(
            StatusCode::NOT_FOUND,
            "Seam receives traces only: POST /v1/traces",
        );
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    if receiver.config.security.check(request.headers()) == Auth::Denied {
        receiver.unauthorized[0].inc();
        let mut response = plain(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <token> (--auth-token-file)",
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return refuse(
            receiver,
            RequestError::Unsupported,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send OTLP protobuf (Content-Type: application/x-protobuf); JSON is not supported",
        );
    }
    let gzip = match request
        .headers()
        .get(CONTENT_ENCODING)
        .map(HeaderValue::to_str)
    {
        None | Some(Ok("identity")) => false,
        Some(Ok("gzip")) => true,
        _ => {
            return refuse(
                receiver,
                RequestError::Unsupported,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Encoding must be gzip or identity",
            );
        }
    };
    let limit = receiver.config.max_bytes;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return refuse(
                receiver,
                RequestError::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request is larger than {limit} bytes (--otlp-receive-max-bytes)"),
            );
        }
    };
    let body = if gzip {
        let mut out = Vec::new();
        let decoder = flate2::read::GzDecoder::new(&body[..]);
        // One byte past the limit tells "too large" from "exactly the limit".
        match decoder.take(limit as u64 + 1).read_to_end(&mut out) {
            Ok(n) if n > limit => {
                return refuse(
                    receiver,
                    RequestError::TooLarge,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the request inflates past {limit} bytes (--otlp-receive-max-bytes)"),
                );
            }
            Ok(_) => Bytes::from(out),
            Err(_) => {
                return refuse(
                    receiver,
                    RequestError::Malformed,
                    StatusCode::BAD_REQUEST,
                    "the gzip body does not inflate",
                );
            }
        }
    } else {
        body
    };
    let Ok(decoded) = ExportTraceServiceRequest::decode(body) else {
        return refuse(
            receiver,
            RequestError::Malformed,
            StatusCode::BAD_REQUEST,
            "the body is not an OTLP ExportTraceServiceRequest",
        );
    };
    match receiver.accept(decoded, sender) {
        Ok(refused) => {
            let answer = ExportTraceServiceResponse {
                partial_success: (refused > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(refused).unwrap_or(i64::MAX),
                    error_message: "spans with invalid trace or span ids or times were refused"
                        .to_owned(),
                }),
            };
            let mut response = Response::new(Full::new(Bytes::from(answer.encode_to_vec())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            response
        }
        Err(_) => {
            let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "Seam is busy; retry");
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}
