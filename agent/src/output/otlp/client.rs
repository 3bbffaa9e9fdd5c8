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
    logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use prost::Message as _;
use tonic::{
    client::Grpc,
    codec::{Codec, EncodeBuf, Encoder},
    metadata::{MetadataKey, MetadataValue},
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use super::{
    Signal,
    config::{OtlpConfig, Protocol},
};

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

/// A signal's request, encoded once: every attempt sends the same bytes (over HTTP as the
/// body, over gRPC as the message), so a retry costs no encoding and no copy.
pub(crate) struct Payload {
    signal: Signal,
    body: Bytes,
}

impl Payload {
    pub(crate) fn traces(request: &ExportTraceServiceRequest) -> Self {
        Self {
            signal: Signal::Traces,
            body: Bytes::from(request.encode_to_vec()),
        }
    }

    pub(crate) fn logs(request: &ExportLogsServiceRequest) -> Self {
        Self {
            signal: Signal::Logs,
            body: Bytes::from(request.encode_to_vec()),
        }
    }
}

/// gRPC codec of a message encoded beforehand ([`Payload`]); the answer `R` is decoded with
/// prost, as the generated clients do.
struct PreEncoded<R>(std::marker::PhantomData<R>);

impl<R: prost::Message + Default + Send + 'static> Codec for PreEncoded<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Writes encoded bytes as the gRPC message.
struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

/// The OTLP/gRPC methods.
const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

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
        traces: Grpc<Channel>,
        logs: Grpc<Channel>,
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
                    traces: Grpc::new(grpc_channel(&config.traces, config.timeout)?),
                    logs: Grpc::new(grpc_channel(&config.logs, config.timeout)?),
                    metadata,
                    timeout: config.timeout,
                })
            }
        }
    }

    /// Sends one request (requests may be sent concurrently: each takes its own handle on
    /// the shared connection).
    pub(crate) async fn send(&self, payload: &Payload) -> Outcome {
        match self {
            Self::Http {
                client,
                traces,
                logs,
                headers,
                timeout,
            } => {
                let url = match payload.signal {
                    Signal::Traces => traces.as_str(),
                    Signal::Logs => logs.as_str(),
                };
                let mut request = Request::post(url)
                    .header("content-type", "application/x-protobuf")
                    .header("user-agent", concat!("seam/", env!("CARGO_PKG_VERSION")));
                for (k, v) in headers {
                    request = request.header(k.as_str(), v.as_str());
                }
                let request = match request.body(Full::new(payload.body.clone())) {
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
                let mut request = tonic::Request::new(payload.body.clone());
                request.set_timeout(*timeout);
                for (k, v) in metadata {
                    request.metadata_mut().insert(k.clone(), v.clone());
                }
                let result = match payload.signal {
                    Signal::Traces => {
                        grpc_unary::<ExportTraceServiceResponse>(traces, request, TRACES_EXPORT)
                            .await
                            .map(|r| r.partial_success.map_or(0, |p| p.rejected_spans))
                    }
                    Signal::Logs => {
                        grpc_unary::<ExportLogsServiceResponse>(logs, request, LOGS_EXPORT)
                            .await
                            .map(|r| r.partial_success.map_or(0, |p| p.rejected_log_records))
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

/// One unary call of `path` with an encoded message, as the generated clients make it.
async fn grpc_unary<R: prost::Message + Default + Send + 'static>(
    grpc: &Grpc<Channel>,
    request: tonic::Request<Bytes>,
    path: &'static str,
) -> Result<R, tonic::Status> {
    let mut grpc = grpc.clone();
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("the connection is not ready: {e}")))?;
    let path = hyper::http::uri::PathAndQuery::from_static(path);
    grpc.unary(request, path, PreEncoded::<R>(std::marker::PhantomData))
        .await
        .map(tonic::Response::into_inner)
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
        let rejected = match payload.signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
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
        Payload::traces(&ExportTraceServiceRequest::default())
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
