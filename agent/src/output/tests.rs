//! The fan-out: file + webhook + aggregation together, and the real HTTP transport against a
//! loopback server.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{
    Loss, Record, SinkOptions, Sinks,
    webhook::{Post, PostError, WebhookConfig, WebhookSink, http::HttpPost},
};
use crate::{
    detect::violation::fixture,
    metrics::{Metrics, SinkMetrics},
    model::{clock::UnixNanos, loss::LossSubject, vocab::ProbeFamily},
};

const SEC: u64 = 1_000_000_000;

/// What the test server does with one request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Stall(Duration),
}

/// A loopback HTTP/1.1 server answering requests in turn from `answers` (then 200); sends
/// (content-type, body) of every request it read.
fn server(answers: Vec<Answer>) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { return };
            let answer = answers.next().unwrap_or(Answer::Status(200));
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut content_type) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("content-type:") {
                        content_type = v.trim().to_owned();
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = tx.send((content_type, String::from_utf8_lossy(&body).into_owned()));
                let status = match answer {
                    Answer::Status(status) => status,
                    Answer::Stall(d) => {
                        std::thread::sleep(d);
                        200
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            });
        }
    });
    (url, rx)
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn http_post_sends_json_and_reads_the_status() {
    let (url, requests) = server(vec![Answer::Status(500), Answer::Status(204)]);
    let post = HttpPost::from_config(&WebhookConfig::new(url)).unwrap();
    let statuses = block_on(async {
        let first = post.post("{\"n\":1}").await.unwrap();
        let second = post.post("{\"n\":2}").await.unwrap();
        [first.status, second.status]
    });
    assert_eq!(statuses, [500, 204]);
    let seen: Vec<(String, String)> = requests.try_iter().collect();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|(ct, _)| ct == "application/json"),
        "{seen:?}"
    );
    assert_eq!(seen[1].1, "{\"n\":2}");
}

#[test]
fn an_attempt_the_endpoint_stalls_times_out_and_is_retried() {
    let (url, requests) = server(vec![Answer::Stall(Duration::from_secs(2))]);
    let mut config = WebhookConfig::new(url);
    config.timeout = Duration::from_millis(300);
    config.backoff.base = Duration::from_millis(10);
    let metrics = SinkMetrics::default();
    let post = HttpPost::from_config(&config).unwrap();
    let took = block_on(async {
        let mut sink = WebhookSink::start_with(&config, metrics.clone(), Box::new(post)).unwrap();
        let started = Instant::now();
        sink.send("{}".into(), false);
        let deadline = started + Duration::from_secs(10);
        while metrics.delivered.get() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        sink.begin_finish(Instant::now()).unwrap().join().await;
        took
    });
    assert_eq!(metrics.delivered.get(), 1);
    assert_eq!(metrics.failures.get(), 1);
    assert!(
        took < Duration::from_secs(2),
        "per-attempt timeout holds: {took:?}"
    );
    assert_eq!(requests.try_iter().count(), 2);
}

#[test]
fn http_post_to_a_closed_port_is_a_transport_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let post = HttpPost::from_config(&WebhookConfig::new(url)).unwrap();
    assert!(matches!(
        block_on(post.post("{}")),
        Err(PostError::Transport(_))
    ));
}

fn violation(n: u32) -> Record {
    Record::Violation(Box::new(fixture(n, 80, "c", i64::from(n) + 1)))
}

fn loss() -> Record {
    Record::Loss(Loss {
        time: UnixNanos(5),
        node: "n".into(),
        subject: LossSubject::Probe(ProbeFamily::SockAddr),
        lost: 1,
        lost_total: 1,
        message: "m".into(),
    })
}

#[test]
fn burst_reaches_file_and_webhook_as_one_record_plus_one_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.jsonl");
    let (url, requests) = server(vec![Answer::Status(500)]);
    let mut hook = WebhookConfig::new(url);
    hook.backoff.base = Duration::from_millis(10);
    let metrics = Metrics::new();
    let options = SinkOptions {
        stdout: false,
        feed_file: Some(path.clone()),
        webhooks: vec![hook],
        aggregate_window: Duration::from_secs(10),
        ..SinkOptions::default()
    };
    block_on(async {
        let mut sinks = Sinks::open(&options, &metrics).unwrap();
        for n in 0..100 {
            sinks.emit_at(violation(n), u64::from(n) * 1000);
        }
        sinks.emit_at(loss(), 2 * SEC);
        sinks.tick_at(5 * SEC);
        sinks.tick_at(11 * SEC);
        sinks.finish().await;
        assert_eq!(sinks.folded(), 99);
        assert!(sinks.dropped().is_empty(), "{:?}", sinks.dropped());
    });
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["time"], UnixNanos(1).rfc3339());
    assert!(lines[0].get("aggregate").is_none());
    assert_eq!(lines[1]["kind"], "loss");
    assert_eq!(lines[2]["aggregate"]["count"], 99);
    // The webhook got the same three (the first after one 500 and a retry).
    let bodies: Vec<Value> = requests
        .try_iter()
        .map(|(_, body)| serde_json::from_str(&body).unwrap())
        .collect();
    assert_eq!(
        bodies.len(),
        4,
        "one failed attempt + three deliveries: {bodies:#?}"
    );
    assert_eq!(bodies[1..], lines[..]);
    let text = metrics.encode();
    assert!(
        text.contains("seam_feed_delivered_total{sink=\"webhook-0\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("seam_feed_delivery_failures_total{sink=\"webhook-0\"} 1"),
        "{text}"
    );
    assert!(text.contains("seam_violations_folded_total 99"), "{text}");
}

#[test]
fn bad_webhook_urls_are_refused_with_the_url_redacted() {
    let options = SinkOptions {
        webhooks: vec![WebhookConfig::new(
            "ftp://example.invalid/secret-token".into(),
        )],
        ..SinkOptions::default()
    };
    let error = Sinks::open(&options, &Metrics::new())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("http:// or https://"), "{error}");
    assert!(!error.contains("secret-token"), "{error}");
}
