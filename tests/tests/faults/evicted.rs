//! Loss: more connections open at once than `--max-open-spans` holds. The oldest spans are
//! ended early (`end_reason: evicted`), and every one is in the feed's `span_evicted` loss
//! records, exactly; the crossings among them are still flagged, to the right tenant, and the
//! same-tenant connection is not.
use std::collections::BTreeSet;

use seam_integration_tests::{Agent, Cgroups, Workload, listen, listen_with, two_tenants};
use serde_json::Value;

use crate::common::{HoldFile, connect, local, losses, network, spans};

/// Connections from a's cgroup to b's listener, held open together.
const HELD: usize = 16;
const MAX_OPEN: &str = "6";

/// Spans ended early in `feed`, and the span loss records' sum.
fn evictions(feed: &[Value]) -> (usize, u64) {
    let evicted = spans(feed)
        .into_iter()
        .filter(|s| s["end_reason"] == "evicted")
        .count();
    let reported = losses(feed)
        .into_iter()
        .filter(|l| l["source"] == "span_evicted")
        .map(|l| l["lost"].as_u64().unwrap())
        .sum();
    (evicted, reported)
}

#[test]
fn spans_evicted_past_the_cap_are_loss_records_and_crossings_are_still_flagged() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let rules = two_tenants(&cgroups, "");
    // Each violation on its own (not folded), so each client's can be seen.
    let mut agent = Agent::start_with(
        &rules,
        &[
            "--max-open-spans",
            MAX_OPEN,
            "--feed-spans",
            "--aggregate-window",
            "0",
        ],
    );
    let hold = HoldFile::new("evicted");
    // b accepts one connection and keeps it; the others wait, established, in its backlog.
    let db_b = listen_with(
        "tcp-listen",
        Some(&b),
        "db-b",
        "127.0.0.1:0",
        1,
        &["--hold-file", hold.arg()],
    );
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    connect(&a, "same-a", &local(web_a.port));
    let clients: Vec<Workload> = (0..HELD)
        .map(|_| {
            Workload::start(
                Some(&a),
                "client-a",
                &[
                    "tcp-connect",
                    "--addr",
                    &local(db_b.port),
                    "--hold-file",
                    hold.arg(),
                ],
            )
        })
        .collect();
    let pids: BTreeSet<u32> = clients.iter().map(Workload::pid).collect();
    // Every client connected and holding (at most MAX_OPEN spans open at once) before any
    // lets go: the first to let go ends b's listener.
    agent.wait_until("spans evicted and reported", |ag| {
        let (evicted, reported) = evictions(&ag.feed());
        evicted >= HELD - 6 && reported >= (HELD - 6) as u64
    });
    hold.release();
    for client in clients {
        client.finish();
    }
    db_b.workload.finish();
    web_a.workload.finish();
    agent.wait_until("every held connection flagged", |ag| {
        let feed = ag.feed();
        let callers: BTreeSet<u64> = network(&feed)
            .iter()
            .filter_map(|v| v["caller"]["pid"].as_u64())
            .collect();
        pids.iter().all(|p| callers.contains(&u64::from(*p)))
    });
    agent.stop();
    let feed = agent.feed();
    let (evicted, reported) = evictions(&feed);
    // At most MAX_OPEN open at once: of HELD connections, most were ended early.
    assert!(evicted >= HELD - 6, "{evicted} evicted of {HELD}");
    assert_eq!(
        reported, evicted as u64,
        "every evicted span is in a loss record, once"
    );
    for l in losses(&feed)
        .into_iter()
        .filter(|l| l["source"] == "span_evicted")
    {
        // What, how many, when.
        assert_eq!(l["probe"], "connection", "{l}");
        assert!(l["lost"].as_u64() > Some(0), "{l}");
        assert!(l["lost_total"].as_u64() >= l["lost"].as_u64(), "{l}");
        assert!(l["time"].is_string(), "{l}");
    }
    for v in network(&feed) {
        assert_eq!(v["caller"]["tenant"], "a", "{v:#}");
        assert_eq!(v["target"]["tenant"], "b", "{v:#}");
        assert_eq!(v["target"]["port"], db_b.port, "only the crossings: {v:#}");
    }
}
