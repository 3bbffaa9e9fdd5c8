//! The OTLP receiver under hostile input: garbage, truncated and oversized bodies, gzip bombs,
//! wrong methods and types, a full pipeline, missing or wrong tokens, and TLS. Each gets its
//! status code and its counter; nothing panics. Plus bounded property runs of the decoder over
//! arbitrary bytes and arbitrary requests.
use std::{io::Write as _, net::SocketAddr, path::PathBuf, sync::Arc};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    common::v1::{AnyValue, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use proptest::prelude::*;
use prost::Message as _;
use rustls::pki_types::pem::PemObject as _;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
};

use super::{Bound, ReceiverConfig, decode::decode, spawn};
use crate::{
    metrics::Metrics,
    model::app::AppSpanIn,
    serve::{ListenArgs, ListenSecurity},
};

const LIMIT: usize = 4096;
const TOKEN: &str = "t0ken-for-tests";

fn span(i: u8) -> Span {
    Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: "GET /".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Span::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// A self-signed certificate for 127.0.0.1, as (cert PEM, key PEM) files in `dir`.
fn certificate(dir: &std::path::Path) -> (PathBuf, PathBuf, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let pem = cert.cert.pem();
    std::fs::write(&cert_path, &pem).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, pem)
}

struct Harness {
    bound: Bound,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<Vec<AppSpanIn>>,
    cert_pem: Option<String>,
    _dir: tempfile::TempDir,
}

async fn start(tls: bool, token: bool, queue: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut args = ListenArgs::default();
    let mut cert_pem = None;
    if tls {
        let (cert, key, pem) = certificate(dir.path());
        args.tls_cert = Some(cert);
        args.tls_key = Some(key);
        cert_pem = Some(pem);
    }
    if token {
        let path = dir.path().join("token");
        std::fs::write(&path, TOKEN).unwrap();
        args.auth_token_file = Some(path);
    }
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = mpsc::channel(queue);
    let config = ReceiverConfig {
        http: Some("127.0.0.1:0".parse().unwrap()),
        grpc: Some("127.0.0.1:0".parse().unwrap()),
        max_bytes: LIMIT,
        declared_attribute: "tenant.id".into(),
        procfs: PathBuf::from("/proc"),
        security: ListenSecurity::load(&args).unwrap(),
    };
    let bound = spawn(config, tx, &metrics).await.unwrap();
    Harness {
        bound,
        metrics,
        rx,
        cert_pem,
        _dir: dir,
    }
}

/// Sends one raw HTTP/1.1 request on `io`; returns the status code and body.
async fn exchange(
    mut io: impl AsyncRead + AsyncWrite + Unpin,
    head: &str,
    body: &[u8],
) -> (u16, String) {
    let mut raw = format!(
        "{head}\r\nHost: seam\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    // A refused request may be answered before the whole body is read.
    let _ = io.write_all(&raw).await;
    let mut out = Vec::new();
    let _ = io.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn post(addr: SocketAddr, headers: &str, body: &[u8]) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    exchange(stream, &format!("POST /v1/traces HTTP/1.1{headers}"), body).await
}

const PROTOBUF: &str = "\r\nContent-Type: application/x-protobuf";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn counter(metrics: &Metrics, needle: &str) -> u64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn hostile_http_requests_get_their_status_and_are_counted() {
    let h = start(false, false, 64).await;
    let addr = h.bound.http.unwrap();
    let good = request(vec![span(1)]).encode_to_vec();
    assert_eq!(post(addr, PROTOBUF, &good).await.0, 200);
    // Garbage, and a valid request cut short.
    assert_eq!(
        post(addr, PROTOBUF, b"\xff\xff\xff\xff garbage").await.0,
        400
    );
    assert_eq!(post(addr, PROTOBUF, &good[..good.len() - 3]).await.0, 400);
    // Too large, plain and as a gzip bomb (small on the wire, huge inflated).
    assert_eq!(post(addr, PROTOBUF, &vec![0u8; LIMIT + 1]).await.0, 413);
    let bomb = gzip(&vec![0u8; 1 << 21]);
    assert!(bomb.len() < LIMIT);
    let gz = format!("{PROTOBUF}\r\nContent-Encoding: gzip");
    assert_eq!(post(addr, &gz, &bomb).await.0, 413);
    assert_eq!(post(addr, &gz, b"not gzip").await.0, 400);
    assert_eq!(post(addr, &gz, &gzip(&good)).await.0, 200);
    // Types, encodings, methods and paths Seam does not serve.
    assert_eq!(
        post(addr, "\r\nContent-Type: application/json", b"{}")
            .await
            .0,
        415
    );
    assert_eq!(
        post(addr, &format!("{PROTOBUF}\r\nContent-Encoding: br"), &good)
            .await
            .0,
        415
    );
    let stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        exchange(stream, "GET /v1/traces HTTP/1.1", b"").await.0,
        405
    );
    let stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(stream, "POST /v1/logs HTTP/1.1", b"").await.0, 404);
    // Spans with bad ids are refused one by one, in a partial success.
    let mut bad = span(2);
    bad.trace_id = vec![0; 3];
    assert_eq!(
        post(addr, PROTOBUF, &request(vec![bad, span(3)]).encode_to_vec())
            .await
            .0,
        200
    );
    let m = &h.metrics;
    assert_eq!(
        counter(m, "seam_otlp_receive_errors_total{reason=\"malformed\"}"),
        3
    );
    assert_eq!(
        counter(m, "seam_otlp_receive_errors_total{reason=\"too_large\"}"),
        2
    );
    assert_eq!(
        counter(m, "seam_otlp_receive_errors_total{reason=\"unsupported\"}"),
        2
    );
    assert_eq!(
        counter(
            m,
            "seam_otlp_receive_errors_total{reason=\"refused_spans\"}"
        ),
        1
    );
    assert_eq!(counter(m, "seam_otlp_received_spans_total"), 3);
}

#[tokio::test]
async fn a_full_pipeline_answers_503_with_retry_after() {
    let h = start(false, false, 1).await;
    let addr = h.bound.http.unwrap();
    let good = request(vec![span(1)]).encode_to_vec();
    assert_eq!(post(addr, PROTOBUF, &good).await.0, 200);
    // Nobody drains the queue of one: the next request is refused, to be retried.
    let (status, text) = post(addr, PROTOBUF, &good).await;
    assert_eq!(status, 503);
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert_eq!(
        counter(
            &h.metrics,
            "seam_otlp_receive_errors_total{reason=\"busy\"}"
        ),
        1
    );
    drop(h.rx);
}

#[tokio::test]
async fn a_token_is_required_when_configured_over_http_and_grpc() {
    let h = start(false, true, 64).await;
    let addr = h.bound.http.unwrap();
    let good = request(vec![span(1)]).encode_to_vec();
    let (status, text) = post(addr, PROTOBUF, &good).await;
    assert_eq!(status, 401);
    assert!(
        text.contains("WWW-Authenticate: Bearer") || text.contains("www-authenticate: Bearer"),
        "{text}"
    );
    let wrong = format!("{PROTOBUF}\r\nAuthorization: Bearer nope");
    assert_eq!(post(addr, &wrong, &good).await.0, 401);
    let right = format!("{PROTOBUF}\r\nAuthorization: Bearer {TOKEN}");
    assert_eq!(post(addr, &right, &good).await.0, 200);

    let url = format!("http://{}", h.bound.grpc.unwrap());
    let mut client = TraceServiceClient::connect(url).await.unwrap();
    let status = client.export(request(vec![span(2)])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut authorized = tonic::Request::new(request(vec![span(2)]));
    authorized
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    client.export(authorized).await.unwrap();
    let m = &h.metrics;
    assert_eq!(
        counter(
            m,
            "seam_listener_unauthorized_total{listener=\"otlp_http\"}"
        ),
        2
    );
    assert_eq!(
        counter(
            m,
            "seam_listener_unauthorized_total{listener=\"otlp_grpc\"}"
        ),
        1
    );
    assert_eq!(counter(m, "seam_otlp_received_spans_total"), 2);
}

#[tokio::test]
async fn grpc_refuses_an_oversized_message() {
    let h = start(false, false, 64).await;
    let url = format!("http://{}", h.bound.grpc.unwrap());
    let mut client = TraceServiceClient::connect(url).await.unwrap();
    let mut big = span(1);
    big.name = "x".repeat(LIMIT * 2);
    let status = client.export(request(vec![big])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status}");
    client.export(request(vec![span(1)])).await.unwrap();
}

#[tokio::test]
async fn tls_serves_both_protocols_and_plain_clients_get_nothing() {
    let h = start(true, false, 64).await;
    let pem = h.cert_pem.clone().unwrap();
    let good = request(vec![span(1)]).encode_to_vec();
    // OTLP/HTTP over TLS, trusting the test certificate.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = h.bound.http.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (status, _) = exchange(tls, &format!("POST /v1/traces HTTP/1.1{PROTOBUF}"), &good).await;
    assert_eq!(status, 200);
    // A plain-text client gets no HTTP answer from a TLS listener.
    assert_eq!(post(addr, PROTOBUF, &good).await.0, 0);
    // OTLP/gRPC over TLS.
    let channel = tonic::transport::Channel::from_shared(format!(
        "https://localhost:{}",
        h.bound.grpc.unwrap().port()
    ))
    .unwrap()
    .tls_config(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&pem))
            .domain_name("localhost"),
    )
    .unwrap()
    .connect()
    .await
    .unwrap();
    TraceServiceClient::new(channel)
        .export(request(vec![span(2)]))
        .await
        .unwrap();
    assert_eq!(counter(&h.metrics, "seam_otlp_received_spans_total"), 2);
}

fn any_value() -> impl Strategy<Value = Option<AnyValue>> {
    prop_oneof![
        Just(None),
        ".{0,300}".prop_map(|s| Some(AnyValue {
            value: Some(Value::StringValue(s))
        })),
        any::<i64>().prop_map(|i| Some(AnyValue {
            value: Some(Value::IntValue(i))
        })),
        any::<f64>().prop_map(|d| Some(AnyValue {
            value: Some(Value::DoubleValue(d))
        })),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Some(AnyValue {
            value: Some(Value::BytesValue(b))
        })),
    ]
}

fn any_span() -> impl Strategy<Value = Span> {
    (
        prop::collection::vec(any::<u8>(), 0..20),
        prop::collection::vec(any::<u8>(), 0..10),
        any::<u64>(),
        any::<u64>(),
        ".{0,400}",
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "tenant.id",
                    "server.port",
                    "process.pid",
                    "x",
                    "server.address",
                ]),
                any_value(),
            ),
            0..40,
        ),
        any::<i32>(),
    )
        .prop_map(|(trace_id, span_id, start, end, name, attrs, kind)| Span {
            trace_id,
            span_id,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            name,
            kind,
            attributes: attrs
                .into_iter()
                .map(|(k, value)| KeyValue {
                    key: k.into(),
                    value,
                    ..KeyValue::default()
                })
                .collect(),
            ..Span::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary bytes: not a request, or a request whose spans decode within bounds.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(request) = ExportTraceServiceRequest::decode(bytes.as_slice()) {
            let _ = decode(request, "tenant.id", None);
        }
    }

    /// Arbitrary requests: every span is either decoded (valid ids, end >= start, bounded
    /// name and attributes) or counted as refused.
    #[test]
    fn every_span_is_decoded_within_bounds_or_counted(spans in prop::collection::vec(any_span(), 0..8)) {
        let total = spans.len() as u64;
        let (out, refused) = decode(request(spans), "tenant.id", None);
        prop_assert_eq!(out.len() as u64 + refused, total);
        for s in out {
            prop_assert!(s.end >= s.start);
            prop_assert!(s.name.chars().count() <= 256);
            prop_assert!(s.attributes.len() <= 32);
            prop_assert!(s.attributes.iter().all(|(_, v)| v.len() <= 256));
        }
    }
}
