//! The real transport over TLS: a loopback HTTPS server with a certificate made here (a test
//! CA, trusted through `--webhook-ca`), a bearer token header, the HMAC signature verified
//! with the key, `Retry-After` read and 4xx refusals not retried.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, mpsc},
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use ring::hmac;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{
    Answer, Post, PostError, WebhookConfig, WebhookSink,
    http::{HttpPost, SIGNATURE_HEADER},
};
use crate::{metrics::SinkMetrics, output::delivery::backoff::Backoff};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// One request as the server read it.
struct Seen {
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A test CA (PEM) and a TLS server for 127.0.0.1 signed by it, answering `answers` in turn
/// (a status and extra header lines), then 200.
fn tls_server(answers: Vec<(u16, &'static str)>) -> (String, String, mpsc::Receiver<Seen>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { return };
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut reader = BufReader::new(&mut tls);
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    headers.push((k.to_owned(), v.trim().to_owned()));
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).into_owned();
            let _ = tx.send(Seen { headers, body });
            let (status, extra) = answers.next().unwrap_or((200, ""));
            let _ = write!(
                tls,
                "HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (url, ca.pem(), rx)
}

fn config(url: &str, ca_pem: &str, dir: &tempfile::TempDir) -> WebhookConfig {
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let mut config = WebhookConfig::new(url.to_owned());
    config.ca_file = Some(ca);
    config.headers = vec![("Authorization".into(), "Bearer s3cr3t".into())];
    config.hmac_key = Some(Arc::from(&b"hook key"[..]));
    config.timeout = Duration::from_secs(5);
    config
}

#[test]
fn https_with_a_trusted_ca_a_bearer_token_and_a_verifiable_signature() {
    let (url, ca_pem, requests) = tls_server(vec![(429, "Retry-After: 7\r\n"), (503, "")]);
    let dir = tempfile::tempdir().unwrap();
    let post = HttpPost::from_config(&config(&url, &ca_pem, &dir)).unwrap();
    let body = r#"{"rule_id":"cross-tenant-network"}"#;
    let answers: Vec<Answer> = block_on(async {
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(post.post(body).await.unwrap());
        }
        answers
    });
    let answer = |status, retry_after| Answer {
        status,
        retry_after,
    };
    assert_eq!(
        answers,
        [
            answer(429, Some(Duration::from_secs(7))),
            answer(503, None),
            answer(200, None)
        ]
    );
    let seen: Vec<Seen> = requests.try_iter().collect();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.body, body);
        assert_eq!(request.header("authorization"), Some("Bearer s3cr3t"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        // The receiver's check: HMAC-SHA256 over the body with the shared key.
        let signature = request.header(SIGNATURE_HEADER.as_str()).expect("signed");
        let hex = signature.strip_prefix("sha256=").expect("sha256= prefix");
        let tag: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"hook key");
        hmac::verify(&key, request.body.as_bytes(), &tag).expect("signature verifies");
        let wrong = hmac::Key::new(hmac::HMAC_SHA256, b"other key");
        assert!(hmac::verify(&wrong, request.body.as_bytes(), &tag).is_err());
    }
}

#[test]
fn an_untrusted_certificate_is_a_transport_error() {
    let (url, _, _requests) = tls_server(Vec::new());
    let post = HttpPost::from_config(&WebhookConfig::new(url)).unwrap();
    match block_on(post.post("{}")) {
        Err(PostError::Transport(message)) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}");
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[test]
fn a_client_error_is_not_retried_and_counts_as_rejected() {
    let (url, ca_pem, requests) = tls_server(vec![(401, ""), (401, "")]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&url, &ca_pem, &dir);
    config.attempts = 5;
    config.backoff = Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(1),
    };
    let post = HttpPost::from_config(&config).unwrap();
    let metrics = SinkMetrics::default();
    block_on(async {
        let mut sink =
            WebhookSink::start_with(&config, metrics.clone(), Box::new(post) as Box<dyn Post>)
                .unwrap();
        sink.send("{}".into(), false);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        sink.begin_finish(deadline).unwrap().join().await;
    });
    assert_eq!(requests.try_iter().count(), 1, "one attempt only");
    assert_eq!(metrics.failures.get(), 1);
    assert_eq!(metrics.dropped_by_reason(), [("rejected", 1)]);
}

#[test]
fn a_missing_ca_file_is_refused_at_start() {
    let mut config = WebhookConfig::new("https://127.0.0.1:1/".into());
    config.ca_file = Some("/nonexistent/ca.pem".into());
    let error = HttpPost::from_config(&config).err().expect("refused");
    assert!(error.to_string().contains("--webhook-ca"), "{error}");
}
