//! Sending one OTLP request over HTTP (protobuf bodies) or gRPC, and what became of it. The
//! retry rules follow the OTLP specification: HTTP 429, 502, 503 and 504 and the gRPC codes it
//! lists are retried (honouring `Retry-After`), every other failure drops the batch.
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, StatusCode};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse, logs_service_client::LogsServiceClient,
    },
    trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_client::TraceServiceClient,
    },
};
use prost::Message as _;
use tonic::{
    metadata::{MetadataKey, MetadataValue},
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use super::config::{OtlpConfig, Protocol};

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The gRPC endpoint is not a usable URI.
    #[error("OTLP gRPC endpoint {url}: {source}; write e.g. http://collector:4317")]
    GrpcEndpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The system's CA certificates could not be loaded for https:// endpoints.
    #[error("cannot load the system's CA certificates for https:// OTLP endpoints: {0}")]
    Roots(#[source] std::io::Error),
}

/// What one request came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted; `rejected` items were refused by the receiver (partial success).
    Accepted { rejected: u64 },
    /// Worth trying again, after at least `after` when the receiver said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for good (a client error other than throttling): drop the batch.
    Rejected { reason: String },
}

/// A signal's request, encoded once.
pub(crate) enum Payload {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
}

/// An OTLP client for one protocol.
pub(crate) enum OtlpClient {
    Http {
        client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
        traces: String,
        logs: String,
        headers: Vec<(String, String)>,
        timeout: Duration,
    },
    Grpc {
        traces: TraceServiceClient<Channel>,
        logs: LogsServiceClient<Channel>,
        metadata: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        timeout: Duration,
    },
}

fn grpc_channel(url: &str, timeout: Duration) -> Result<Channel, ClientError> {
    let error = |source| ClientError::GrpcEndpoint {
        url: url.to_owned(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(error)?
        .timeout(timeout)
        .connect_timeout(timeout);
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().with_native_roots())
            .map_err(error)?;
    }
    Ok(endpoint.connect_lazy())
}

impl OtlpClient {
    /// A client for `config` (connections are opened on first use).
    pub(crate) fn new(config: &OtlpConfig) -> Result<Self, ClientError> {
        match config.protocol {
            Protocol::HttpProtobuf => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(ClientError::Roots)?
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .build();
                Ok(Self::Http {
                    client: Client::builder(TokioExecutor::new()).build(connector),
                    traces: config.traces.clone(),
                    logs: config.logs.clone(),
                    headers: config.headers.clone(),
                    timeout: config.timeout,
                })
            }
            Protocol::Grpc => {
                let metadata = config
                    .headers
                    .iter()
                    .filter_map(|(k, v)| {
                        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()).ok();
                        let value = MetadataValue::try_from(v.as_str()).ok();
                        if key.is_none() || value.is_none() {
                            tracing::warn!(header = %k, "OTLP header is not valid gRPC metadata; not sent");
                        }
                        Some((key?, value?))
                    })
                    .collect();
                Ok(Self::Grpc {
                    traces: TraceServiceClient::new(grpc_channel(&config.traces, config.timeout)?),
                    logs: LogsServiceClient::new(grpc_channel(&config.logs, config.timeout)?),
                    metadata,
                    timeout: config.timeout,
                })
            }
        }
    }

    /// Sends one request.
    pub(crate) async fn send(&mut self, payload: &Payload) -> Outcome {
        match self {
            Self::Http {
                client,
                traces,
                logs,
                headers,
                timeout,
            } => {
                let (url, body) = match payload {
                    Payload::Traces(r) => (traces.as_str(), r.encode_to_vec()),
                    Payload::Logs(r) => (logs.as_str(), r.encode_to_vec()),
                };
                let mut request = Request::post(url)
                    .header("content-type", "application/x-protobuf")
                    .header("user-agent", concat!("seam/", env!("CARGO_PKG_VERSION")));
                for (k, v) in headers.iter() {
                    request = request.header(k.as_str(), v.as_str());
                }
                let request = match request.body(Full::new(Bytes::from(body))) {
                    Ok(r) => r,
                    Err(e) => {
                        return Outcome::Rejected {
                            reason: format!("cannot build the request: {e}"),
                        };
                    }
                };
                match tokio::time::timeout(*timeout, http_send(client, request, payload)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::Retry {
                        reason: format!("no answer within {timeout:?}"),
                        after: None,
                    },
                }
            }
            Self::Grpc {
                traces,
                logs,
                metadata,
                timeout,
            } => {
                let result = match payload {
                    Payload::Traces(r) => {
                        let mut request = tonic::Request::new(r.clone());
                        request.set_timeout(*timeout);
                        for (k, v) in metadata.iter() {
                            request.metadata_mut().insert(k.clone(), v.clone());
                        }
                        traces.export(request).await.map(|r| {
                            r.into_inner()
                                .partial_success
                                .map_or(0, |p| p.rejected_spans)
                        })
                    }
                    Payload::Logs(r) => {
                        let mut request = tonic::Request::new(r.clone());
                        request.set_timeout(*timeout);
                        for (k, v) in metadata.iter() {
                            request.metadata_mut().insert(k.clone(), v.clone());
                        }
                        logs.export(request).await.map(|r| {
                            r.into_inner()
                                .partial_success
                                .map_or(0, |p| p.rejected_log_records)
                        })
                    }
                };
                match result {
                    Ok(rejected) => Outcome::Accepted {
                        rejected: u64::try_from(rejected).unwrap_or(0),
                    },
                    Err(status) => grpc_outcome(&status),
                }
            }
        }
    }
}

async fn http_send(
    client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    request: Request<Full<Bytes>>,
    payload: &Payload,
) -> Outcome {
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Retry {
                reason: format!("connection failed: {e}"),
                after: None,
            };
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    http_outcome(status, retry_after, &body, payload)
}

/// What an HTTP answer means (OTLP/HTTP: 2xx ok with an optional partial success in the body;
/// 429, 502, 503, 504 retryable; everything else final).
fn http_outcome(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    payload: &Payload,
) -> Outcome {
    if status.is_success() {
        let rejected = match payload {
            Payload::Traces(_) => ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans),
            Payload::Logs(_) => ExportLogsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_log_records),
        };
        return Outcome::Accepted {
            rejected: u64::try_from(rejected).unwrap_or(0),
        };
    }
    let reason = format!("HTTP {status}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => Outcome::Retry {
            reason,
            after: retry_after,
        },
        _ => Outcome::Rejected { reason },
    }
}

/// What a gRPC status means (the OTLP specification's list of retryable codes).
fn grpc_outcome(status: &tonic::Status) -> Outcome {
    use tonic::Code;
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry {
            reason,
            after: None,
        },
        _ => Outcome::Rejected { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces() -> Payload {
        Payload::Traces(ExportTraceServiceRequest::default())
    }

    #[test]
    fn http_status_rules() {
        let ok = http_outcome(StatusCode::OK, None, &[], &traces());
        assert_eq!(ok, Outcome::Accepted { rejected: 0 });
        let partial = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 3,
                    error_message: "x".into(),
                },
            ),
        }
        .encode_to_vec();
        assert_eq!(
            http_outcome(StatusCode::OK, None, &partial, &traces()),
            Outcome::Accepted { rejected: 3 }
        );
        let after = Some(Duration::from_secs(2));
        assert!(matches!(
            http_outcome(StatusCode::SERVICE_UNAVAILABLE, after, &[], &traces()),
            Outcome::Retry { after: Some(a), .. } if a == Duration::from_secs(2)
        ));
        assert!(matches!(
            http_outcome(StatusCode::TOO_MANY_REQUESTS, None, &[], &traces()),
            Outcome::Retry { .. }
        ));
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert!(
                matches!(
                    http_outcome(status, None, &[], &traces()),
                    Outcome::Rejected { .. }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn grpc_status_rules() {
        assert!(matches!(
            grpc_outcome(&tonic::Status::unavailable("down")),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            grpc_outcome(&tonic::Status::invalid_argument("bad")),
            Outcome::Rejected { .. }
        ));
    }
}
