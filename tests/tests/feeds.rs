//! Violation feeds, metrics and health on the real kernel: a webhook receiver that fails, stalls
//! and then recovers; the Prometheus endpoint and health checks; aggregation of a burst of
//! identical violations from real connections. All traffic stays on 127.0.0.1.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use seam_integration_tests::{
    Agent, Cgroups, Workload,
    http::{get, listen_addr, parse_metrics},
    listen, two_tenants,
};
use serde_json::Value;

/// What the receiver does with its n-th request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Sleep this long, then answer 200 (the client has given up by then).
    Stall(Duration),
}

/// A request the receiver answered 200, and when.
struct Delivered {
    body: Value,
    content_type: String,
    at: Instant,
}

/// A minimal HTTP/1.1 webhook receiver on 127.0.0.1: answers requests in turn from `script`,
/// then 200. Returns its URL, a channel of delivered (200-answered) records and the count of
/// requests seen.
fn receiver(script: Vec<Answer>) -> (String, mpsc::Receiver<Delivered>, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    let seen = Arc::new(Mutex::new(0u32));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        // Bounded: the test sends a handful of requests.
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { return };
            *counter.lock().unwrap() += 1;
            let answer = script.next().unwrap_or(Answer::Status(200));
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
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
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let status = match answer {
                    Answer::Status(status) => status,
                    Answer::Stall(d) => {
                        std::thread::sleep(d);
                        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                        return; // too late: the agent counts this attempt as failed
                    }
                };
                let ok = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .is_ok();
                if ok && status == 200 {
                    let body = serde_json::from_slice(&body).expect("webhook body is JSON");
                    let _ = tx.send(Delivered {
                        body,
                        content_type,
                        at: Instant::now(),
                    });
                }
            });
        }
    });
    (url, rx, seen)
}

/// The agent's metrics; the exposition ends as OpenMetrics requires.
fn scrape(agent: &Agent) -> BTreeMap<String, f64> {
    let (status, body) = get(&listen_addr(agent), "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    parse_metrics(&body)
}

#[test]
fn webhook_outlives_failure_and_stall_while_file_and_metrics_stay_live() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let (url, delivered, requests) = receiver(vec![
        Answer::Status(500),
        Answer::Stall(Duration::from_secs(3)),
    ]);
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &[
            "--webhook",
            &url,
            "--webhook-timeout-ms",
            "500",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let addr = listen_addr(&agent);
    assert_eq!(get(&addr, "/readyz").0, 200);
    agent.wait_until("/healthz to report healthy", |_| {
        get(&addr, "/healthz").0 == 200
    });

    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    let client = Workload::start(
        Some(&a),
        "client-a",
        &["tcp-connect", "--addr", &format!("127.0.0.1:{}", db_b.port)],
    );
    client.finish();
    let violation = agent.wait_violations(1).remove(0);
    let in_file_at = Instant::now();

    // The receiver failed once (500), stalled once (timeout), then took it.
    let got = delivered
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("webhook never delivered; log:\n{}", agent.log()));
    assert_eq!(got.body, violation, "the webhook gets the feed's record");
    assert_eq!(got.content_type, "application/json");
    assert!(
        in_file_at <= got.at,
        "the feed file had the violation before the webhook got through"
    );
    assert_eq!(*requests.lock().unwrap(), 3, "500, stall, then 200");

    // The receiver saw the request before the agent read the response and counted it.
    let delivered_series = "seam_feed_delivered_total{sink=\"webhook-0\"}";
    agent.wait_until("the webhook delivery to be counted", |a| {
        scrape(a).get(delivered_series) == Some(&1.0)
    });
    let metrics = scrape(&agent);
    let m = |series: &str| {
        *metrics
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from {metrics:#?}"))
    };
    assert_eq!(
        m(
            "seam_violations_total{rule=\"cross-tenant-network\",severity=\"high\",from_tenant=\"a\",to_tenant=\"b\"}"
        ),
        1.0
    );
    assert_eq!(m("seam_feed_delivered_total{sink=\"webhook-0\"}"), 1.0);
    assert_eq!(
        m("seam_feed_delivery_failures_total{sink=\"webhook-0\"}"),
        2.0
    );
    // The file got the start record and the violation.
    assert_eq!(m("seam_feed_delivered_total{sink=\"file\"}"), 2.0);
    assert_eq!(m("seam_feed_queue_depth{sink=\"webhook-0\"}"), 0.0);
    for reason in [
        "queue_full",
        "retries_exhausted",
        "shutdown",
        "write_error",
        "rejected",
    ] {
        assert_eq!(
            m(&format!(
                "seam_feed_dropped_total{{sink=\"webhook-0\",reason=\"{reason}\"}}"
            )),
            0.0
        );
    }
    assert_eq!(m("seam_tenant_cgroups"), 2.0);
    assert_eq!(m("seam_decode_errors_total"), 0.0);
    // TCP needs no connect record: the caller travels with the client's ESTABLISHED.
    assert!(m("seam_events_total{kind=\"tcp_state\"}") >= 2.0);
    assert!(m("seam_events_total{kind=\"tcp_close\"}") >= 1.0);
    assert!(m("seam_rule_evaluation_seconds_count") >= 1.0);
    let ready: Value =
        serde_json::from_str(&std::fs::read_to_string(agent.dir.join("ready.json")).unwrap())
            .unwrap();
    let hooks = ready["live_hooks"].as_array().expect("live hooks");
    assert!(!hooks.is_empty());
    for hook in hooks {
        let hook = hook.as_str().unwrap();
        assert_eq!(
            m(&format!("seam_hooks_live{{hook=\"{hook}\"}}")),
            1.0,
            "{hook}"
        );
    }
    let live: Vec<&String> = metrics
        .keys()
        .filter(|k| k.starts_with("seam_hooks_live{"))
        .collect();
    assert_eq!(live.len(), hooks.len(), "{live:?}");
    assert_eq!(get(&addr, "/healthz").0, 200);
    assert_eq!(get(&addr, "/nope").0, 404);

    db_b.workload.finish();
    let stats = agent.stop();
    assert_eq!(stats["feed_dropped"], serde_json::json!({}), "{stats}");
}

#[test]
fn webhook_that_never_answers_does_not_hold_up_the_feed_and_drops_are_counted() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let (url, delivered, _) = receiver((0..50).map(|_| Answer::Status(503)).collect());
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &[
            "--webhook",
            &url,
            "--webhook-attempts",
            "2",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    Workload::start(
        Some(&a),
        "client-a",
        &["tcp-connect", "--addr", &format!("127.0.0.1:{}", db_b.port)],
    )
    .finish();
    agent.wait_violations(1);
    agent.wait_until("the webhook to give up", |a| {
        scrape(a)
            .get("seam_feed_dropped_total{sink=\"webhook-0\",reason=\"retries_exhausted\"}")
            .copied()
            == Some(1.0)
    });
    assert!(delivered.try_recv().is_err(), "nothing was accepted");
    db_b.workload.finish();
    let stats = agent.stop();
    // The violation was dropped, then the loss record that reports it (to the same mute
    // webhook: dropped in turn, counted, and not reported again), by retries or at shutdown.
    let dropped = &stats["feed_dropped"];
    let total: u64 = ["webhook-0/retries_exhausted", "webhook-0/shutdown"]
        .iter()
        .filter_map(|k| dropped[*k].as_u64())
        .sum();
    assert_eq!(total, 2, "{stats}");
    let loss = agent
        .feed()
        .into_iter()
        .find(|r| r["kind"] == "loss" && r["source"] == "feed")
        .unwrap_or_else(|| panic!("no feed loss record in {:#?}", agent.feed()));
    assert_eq!(loss["probe"], "webhook-0/retries_exhausted", "{loss}");
    assert_eq!(loss["lost"], 1, "{loss}");
}

#[test]
fn burst_of_identical_violations_is_folded_into_one_aggregate() {
    const N: u32 = 20;
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &["--aggregate-window", "2", "--listen", "127.0.0.1:0"],
    );
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", N);
    // One client process, N connections, each from a new client port.
    Workload::start(
        Some(&a),
        "client-a",
        &[
            "tcp-connect",
            "--addr",
            &format!("127.0.0.1:{}", db_b.port),
            "--count",
            &N.to_string(),
        ],
    )
    .finish();
    db_b.workload.finish();
    let first = agent.wait_violations(1).remove(0);
    assert!(
        first.get("aggregate").is_none(),
        "the first is emitted at once: {first}"
    );
    // Once the window closes (2 s), the rest arrives folded.
    let total = |violations: &[Value]| -> u64 {
        violations
            .iter()
            .map(|v| v["aggregate"]["count"].as_u64().unwrap_or(1))
            .sum()
    };
    agent.wait_until("every connection to be accounted for", |a| {
        total(&a.violations()) == u64::from(N)
    });
    let violations = agent.violations();
    let aggregates: Vec<&Value> = violations
        .iter()
        .filter(|v| v.get("aggregate").is_some())
        .collect();
    assert!(!aggregates.is_empty(), "{violations:#?}");
    assert!(
        violations.len() <= 4,
        "{N} identical violations within a 2 s window fold into a few records: {violations:#?}"
    );
    for aggregate in &aggregates {
        let agg = &aggregate["aggregate"];
        assert!(agg["count"].as_u64().unwrap() >= 1, "{aggregate}");
        assert!(agg["first_seen"].as_str().unwrap() <= agg["last_seen"].as_str().unwrap());
        assert_eq!(agg["window_s"], 2.0);
        assert_eq!(aggregate["caller"]["comm"], "client-a");
        assert_eq!(aggregate["target"]["port"], db_b.port);
    }
    let metrics = scrape(&agent);
    let violations_total = metrics["seam_violations_total{rule=\"cross-tenant-network\",severity=\"high\",from_tenant=\"a\",to_tenant=\"b\"}"];
    assert_eq!(violations_total, f64::from(N), "every violation is counted");
    let folded = metrics["seam_violations_folded_total"];
    assert_eq!(
        folded,
        (f64::from(N) - (violations.len() - aggregates.len()) as f64)
    );
    let stats = agent.stop();
    assert_eq!(stats["violations"], N, "{stats}");
    assert_eq!(stats["violations_folded"].as_f64(), Some(folded), "{stats}");
}

#[test]
fn unusable_webhooks_and_rotation_without_a_file_are_refused() {
    let cgroups = Cgroups::new();
    let dir = std::env::temp_dir().join(format!("seam-feeds-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.toml"), two_tenants(&cgroups, "")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(seam_integration_tests::seam_bin())
            .args(["run", "--rules"])
            .arg(&dir)
            .args(args)
            .output()
            .expect("run seam")
    };
    let out = run(&["--webhook", "ftp://127.0.0.1:1/secret", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http:// or https://"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the URL path is redacted: {stderr}"
    );
    let out = run(&[
        "--webhook",
        "https://127.0.0.1:1/secret",
        "--webhook-ca",
        "/nonexistent/ca.pem",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--webhook-ca /nonexistent/ca.pem"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    let out = run(&["--feed-max-bytes", "1000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--feed-file"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `seam run` publishes what `seam fingerprint` reports: the feed's first record, the
/// `seam_kernel_info` metric, and a feed `seam fleet-check` reads like a fingerprint file.
#[test]
fn a_running_agent_publishes_its_fingerprint() {
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    cgroups.create("b");
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &["--listen", "127.0.0.1:0", "--node", "node-fp"],
    );
    let start = agent.feed().into_iter().next().expect("a start record");
    assert_eq!(start["kind"], "start", "{start}");
    let fp = &start["fingerprint"];
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(fp["kernel"]["release"], release.trim(), "{fp}");
    assert_eq!(fp["node"], "node-fp");
    assert_eq!(fp["capabilities"]["tcp_ends"]["program_type"], "tp_btf");
    // The rules hash is the one `seam fingerprint --rules` computes for the same files.
    let offline = std::process::Command::new(seam_integration_tests::seam_bin())
        .arg("fingerprint")
        .arg("--rules")
        .arg(agent.dir.join("rules"))
        .env("SEAM_LOG", "error")
        .output()
        .unwrap();
    assert!(offline.status.success());
    let offline: Value = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(fp["rules_sha256"], offline["rules_sha256"]);
    assert_eq!(fp["probe_object_sha256"], offline["probe_object_sha256"]);

    let metrics = scrape(&agent);
    let kernel_info = metrics
        .iter()
        .find(|(series, _)| series.starts_with("seam_kernel_info{"))
        .unwrap_or_else(|| panic!("no seam_kernel_info in {metrics:?}"));
    assert!(
        kernel_info
            .0
            .contains(&format!("release=\"{}\"", release.trim())),
        "{kernel_info:?}"
    );
    assert_eq!(*kernel_info.1, 1.0);
    agent.stop();

    let out = std::process::Command::new(seam_integration_tests::seam_bin())
        .arg("fleet-check")
        .arg(agent.dir.join("feed.jsonl"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("uniform: 1 node(s)"), "{text}");
}
