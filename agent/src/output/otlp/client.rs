//! Sending one OTLP request over HTTP (protobuf bodies) or gRPC, and what the answer means. The
//! retry rules follow the OTLP specification: HTTP 429, 502, 503 and 504, connection failures
//! and the gRPC codes it lists are retried (honouring `Retry-After`), every other failure drops
//! the batch.
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
use crate::output::delivery::{RetryAction, error_chain};

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

/// What the receiver answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// An HTTP status; `rejected` items refused in a partial success (2xx only), and how long
    /// the receiver asked to wait (`Retry-After`).
    Http {
        status: StatusCode,
        retry_after: Option<Duration>,
        rejected: u64,
    },
    /// A gRPC success; `rejected` items refused in a partial success.
    Grpc { rejected: u64 },
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The HTTP request could not be built (a header the HTTP stack refuses).
    #[error(
        "cannot build the OTLP request: {0}; check --otlp-header and OTEL_EXPORTER_OTLP_HEADERS"
    )]
    Request(#[source] hyper::http::Error),
    /// Connecting or sending failed.
    #[error("OTLP connection failed: {}; check that the receiver is up and reachable", error_chain(.0))]
    Connection(#[source] hyper_util::client::legacy::Error),
    /// The gRPC call failed.
    #[error("gRPC {:?}: {}", .0.code(), .0.message())]
    Grpc(#[source] tonic::Status),
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
    /// the shared connection). The delivery worker times the attempt out.
    pub(crate) async fn send(&self, payload: &Payload) -> Result<Answer, SendError> {
        match self {
            Self::Http {
                client,
                traces,
                logs,
                headers,
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
                let request = request
                    .body(Full::new(payload.body.clone()))
                    .map_err(SendError::Request)?;
                http_send(client, request, payload.signal).await
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
                let rejected = match payload.signal {
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
                }
                .map_err(SendError::Grpc)?;
                Ok(Answer::Grpc {
                    rejected: u64::try_from(rejected).unwrap_or(0),
                })
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
    signal: Signal,
) -> Result<Answer, SendError> {
    let response = client
        .request(request)
        .await
        .map_err(SendError::Connection)?;
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
    Ok(http_answer(status, retry_after, &body, signal))
}

/// An HTTP answer, with the partial success of a 2xx body.
fn http_answer(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    signal: Signal,
) -> Answer {
    let rejected = if status.is_success() {
        match signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_log_records),
        }
    } else {
        0
    };
    Answer::Http {
        status,
        retry_after,
        rejected: u64::try_from(rejected).unwrap_or(0),
    }
}

/// What an answer means (OTLP/HTTP: 2xx ok with an optional partial success; 429, 502, 503 and
/// 504 retryable; everything else final).
pub(crate) fn answer_action(answer: &Answer) -> RetryAction {
    let (status, retry_after, rejected) = match *answer {
        Answer::Grpc { rejected } => return RetryAction::Successful { refused: rejected },
        Answer::Http {
            status,
            retry_after,
            rejected,
        } => (status, retry_after, rejected),
    };
    if status.is_success() {
        return RetryAction::Successful { refused: rejected };
    }
    let reason = format!("HTTP {status}").into();
    match status.as_u16() {
        429 | 502 | 503 | 504 => RetryAction::Retry {
            reason,
            after: retry_after,
        },
        _ => RetryAction::DontRetry { reason },
    }
}

/// Whether another attempt may succeed after `error` (a connection failure, or one of the gRPC
/// codes the OTLP specification lists as retryable).
pub(crate) fn retriable(error: &SendError) -> bool {
    use tonic::Code;
    match error {
        SendError::Request(_) => false,
        SendError::Connection(_) => true,
        SendError::Grpc(status) => matches!(
            status.code(),
            Code::Cancelled
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: StatusCode, after: Option<Duration>, body: &[u8]) -> RetryAction {
        answer_action(&http_answer(status, after, body, Signal::Traces))
    }

    #[test]
    fn http_status_rules() {
        let ok = http(StatusCode::OK, None, &[]);
        assert_eq!(ok, RetryAction::Successful { refused: 0 });
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
            http(StatusCode::OK, None, &partial),
            RetryAction::Successful { refused: 3 }
        );
        let after = Some(Duration::from_secs(2));
        assert!(matches!(
            http(StatusCode::SERVICE_UNAVAILABLE, after, &[]),
            RetryAction::Retry { after: Some(a), .. } if a == Duration::from_secs(2)
        ));
        assert!(matches!(
            http(StatusCode::TOO_MANY_REQUESTS, None, &[]),
            RetryAction::Retry { .. }
        ));
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert!(
                matches!(http(status, None, &[]), RetryAction::DontRetry { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn grpc_status_rules() {
        let unavailable = SendError::Grpc(tonic::Status::unavailable("down"));
        assert!(retriable(&unavailable));
        assert_eq!(unavailable.to_string(), "gRPC Unavailable: down");
        assert!(!retriable(&SendError::Grpc(
            tonic::Status::invalid_argument("bad")
        )));
        assert_eq!(
            answer_action(&Answer::Grpc { rejected: 4 }),
            RetryAction::Successful { refused: 4 }
        );
    }
}
