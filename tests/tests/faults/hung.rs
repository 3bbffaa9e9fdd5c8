//! Fault: the webhook receivers and the OTLP receiver hang, one accepting connections and
//! never answering, one never accepting (its accept queue full, so SYNs are dropped). The feed
//! file keeps getting every violation promptly; the sinks' queues stay bounded and what they
//! drop is counted in metrics and reported as loss records in the feed (which stop once the
//! traffic does: a loss record that cannot be delivered does not breed another); the agent's
//! memory stays flat; and SIGINT stops it within seconds, not after every retry ran out.
use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::FromRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use seam_integration_tests::{
    Agent, Cgroups, Workload,
    http::{get, listen_addr, scrape},
    listen, two_tenants,
};
use serde_json::Value;

use crate::common::{connect, local, losses, network, wait_stable};

/// Accepts every connection on 127.0.0.1 and never reads or answers.
struct Mute {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Mute {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: a minute at most.
            for _ in 0..6000 {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                while let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Listens on 127.0.0.1 with a backlog of 0 and never accepts; one connection already fills
/// its accept queue, so every further SYN is dropped and connecting hangs.
struct Deaf {
    port: u16,
    _listener: TcpListener,
    _filler: TcpStream,
}

impl Deaf {
    fn start() -> Self {
        // SAFETY: plain socket calls on a descriptor we own; errors are checked.
        let listener = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let listener = TcpListener::from_raw_fd(fd);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, (&raw const addr).cast(), len);
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            assert_eq!(libc::listen(fd, 0), 0, "listen");
            listener
        };
        let addr: SocketAddr = listener.local_addr().unwrap();
        let filler = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("fill");
        Self {
            port: addr.port(),
            _listener: listener,
            _filler: filler,
        }
    }
}

const N: u32 = 30;
const WEBHOOK_QUEUE: u64 = 4;

/// Loss records summed by `source/probe`.
fn reported(feed: &[Value]) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for l in losses(feed) {
        let key = format!(
            "{}/{}",
            l["source"].as_str().unwrap(),
            l["probe"].as_str().unwrap()
        );
        *out.entry(key).or_default() += l["lost"].as_u64().unwrap();
    }
    out
}

fn hung_receivers(otlp_protocol: &str, otlp_deaf: bool) {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mute = Mute::start();
    let deaf = Deaf::start();
    let (otlp_mute, otlp_deaf_server);
    let otlp_port = if otlp_deaf {
        otlp_deaf_server = Deaf::start();
        otlp_deaf_server.port
    } else {
        otlp_mute = Mute::start();
        otlp_mute.port
    };
    let hooks = [
        format!("http://127.0.0.1:{}/hook", mute.port),
        format!("http://127.0.0.1:{}/hook", deaf.port),
    ];
    let otlp = format!("http://127.0.0.1:{otlp_port}");
    let queue = WEBHOOK_QUEUE.to_string();
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &[
            "--webhook",
            &hooks[0],
            "--webhook",
            &hooks[1],
            "--webhook-queue",
            &queue,
            "--otlp-endpoint",
            &otlp,
            "--otlp-protocol",
            otlp_protocol,
            "--otlp-queue",
            "8",
            "--otlp-batch",
            "4",
            "--aggregate-window",
            "0",
            "--feed-spans",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    connect(&a, "same-a", &local(web_a.port));
    web_a.workload.finish();
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 2 * N);
    let round = || {
        Workload::start(
            Some(&a),
            "client-a",
            &[
                "tcp-connect",
                "--addr",
                &local(db_b.port),
                "--count",
                &N.to_string(),
            ],
        )
        .finish()
    };
    round();
    // The feed file does not wait for the hung receivers.
    agent.wait_violations(N as usize);
    let expected = ["feed/webhook-0/queue_full", "feed/webhook-1/queue_full"];
    agent.wait_until("the sinks' drops to be reported as losses", |ag| {
        let r = reported(&ag.feed());
        expected.iter().all(|k| r.contains_key(*k)) && r.keys().any(|k| k.starts_with("otlp/"))
    });
    let rss_1 = agent.rss_kib();
    round();
    agent.wait_violations(2 * N as usize);
    db_b.workload.finish();
    // Once the traffic is over, so are the loss records.
    let settled = wait_stable(
        &agent,
        "the loss records",
        Duration::from_secs(2),
        Duration::from_secs(30),
        |ag| losses(&ag.feed()).len(),
    );
    let rss_2 = agent.rss_kib();
    let metrics = scrape(&agent);
    let m = |series: &str| metrics.get(series).copied().unwrap_or(0.0);
    let r = reported(&agent.feed());
    for sink in ["webhook-0", "webhook-1"] {
        let depth = m(&format!("seam_feed_queue_depth{{sink=\"{sink}\"}}"));
        assert!(
            depth <= WEBHOOK_QUEUE as f64,
            "{sink} queue bounded: {depth}"
        );
        let dropped = m(&format!(
            "seam_feed_dropped_total{{sink=\"{sink}\",reason=\"queue_full\"}}"
        ));
        let key = format!("{sink}/queue_full");
        let lost = m(&format!(
            "seam_lost_total{{source=\"feed\",probe=\"{key}\"}}"
        ));
        let in_feed = r.get(&format!("feed/{key}")).copied().unwrap_or(0) as f64;
        assert!(
            lost > 0.0 && lost == in_feed,
            "{sink}: lost {lost}, in feed {in_feed}"
        );
        assert!(
            in_feed <= dropped,
            "{sink}: reported {in_feed} of {dropped} drops"
        );
    }
    for (key, n) in &r {
        if let Some(signal) = key.strip_prefix("otlp/") {
            let lost = m(&format!(
                "seam_lost_total{{source=\"otlp\",probe=\"{signal}\"}}"
            ));
            assert_eq!(lost, *n as f64, "{key}");
        }
    }
    assert_eq!(get(&listen_addr(&agent), "/healthz").0, 200);
    let (stats, took) = agent.stop_within(Duration::from_secs(30));
    eprintln!(
        "hung {otlp_protocol} (deaf: {otlp_deaf}): stop took {took:?}, rss {rss_1} -> {rss_2} \
         KiB, {settled} loss records, reported {r:?}, stats {stats}"
    );
    assert!(
        rss_2 < rss_1 + 16 * 1024,
        "memory grew from {rss_1} to {rss_2} KiB"
    );
    let feed = agent.feed();
    let flagged = network(&feed);
    assert_eq!(
        flagged.len(),
        2 * N as usize,
        "every crossing, only crossings"
    );
    for v in &flagged {
        assert_eq!(v["caller"]["comm"], "client-a", "{v:#}");
        assert_eq!(v["actual_tenant"], "b", "{v:#}");
    }
    // Everything dropped, up to the records still queued at shutdown, is in the feed.
    let r = reported(&feed);
    for sink in ["webhook-0", "webhook-1"] {
        let total: u64 = r
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("feed/{sink}/")))
            .map(|(_, n)| n)
            .sum();
        let dropped: u64 = stats["feed_dropped"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{sink}/")))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum();
        assert!(
            total > 0 && total <= dropped,
            "{sink}: {total} of {dropped}: {stats}"
        );
    }
}

#[test]
fn hung_webhooks_and_a_mute_otlp_http_receiver_cost_bounded_memory_and_a_quick_stop() {
    hung_receivers("http/protobuf", false);
}

#[test]
fn hung_webhooks_and_a_deaf_otlp_grpc_receiver_cost_bounded_memory_and_a_quick_stop() {
    hung_receivers("grpc", true);
}
