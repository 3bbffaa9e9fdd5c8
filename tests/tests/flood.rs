//! The per-tenant kernel event budget: a tenant flooding the event channel (the evasion of
//! Falco CVE-2019-8339 and Inspektor Gadget GHSA-wv52-frfv-mfh4) loses its own events, counted
//! and reported as its flood, never another tenant's: B's crossing is reported while A floods.
use seam_integration_tests::{Agent, Cgroups, Workload, listen, two_tenants};
use serde_json::Value;

/// A ring buffer of four pages (~150 events): a flood that is not held back overflows it in
/// milliseconds, which is what the budget has to prevent.
const SMALL_RING: &str = "16384";
/// Connect/accept/close rounds of A's flood (~10 events each): seconds of flooding.
const FLOOD_ROUNDS: &str = "40000";

/// Total lost per (source, probe) in the feed's loss records.
fn lost(feed: &[Value], source: &str, probe: &str) -> u64 {
    feed.iter()
        .filter(|r| r["kind"] == "loss" && r["source"] == source && r["probe"] == probe)
        .map(|r| r["lost"].as_u64().unwrap())
        .sum()
}

/// A floods with same-tenant TCP rounds while B connects to A's listener once (a crossing) and
/// to its own listener once (not one). Returns the agent's feed and stats.
fn b_crosses_while_a_floods(budget: &[&str]) -> (Vec<Value>, Value, u32, u16) {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut args = vec!["--ring-buffer-bytes", SMALL_RING];
    args.extend_from_slice(budget);
    let mut agent = Agent::start_with(&two_tenants(&cgroups, ""), &args);
    // Listeners first, so their listen() is seen before the flood starts.
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    let own_b = listen("tcp-listen", Some(&b), "own-b", "127.0.0.1:0", 1);
    let flood = Workload::start(
        Some(&a),
        "flood-a",
        &["tcp-loop", "--iterations", FLOOD_ROUNDS],
    );
    // Let the flood get going (no timing is asserted: only that B acts during it).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let own = Workload::start(
        Some(&b),
        "client-b",
        &[
            "tcp-connect",
            "--addr",
            &format!("127.0.0.1:{}", own_b.port),
        ],
    );
    own.finish();
    let cross = Workload::start(
        Some(&b),
        "client-b",
        &[
            "tcp-connect",
            "--addr",
            &format!("127.0.0.1:{}", web_a.port),
        ],
    );
    let pid = cross.pid();
    cross.finish();
    flood.finish();
    web_a.workload.finish();
    own_b.workload.finish();
    let stats = agent.stop();
    (agent.feed(), stats, pid, web_a.port)
}

#[test]
fn b_crossing_is_reported_while_a_floods_and_only_a_loses_events() {
    let (feed, stats, pid, port) =
        b_crosses_while_a_floods(&["--tenant-event-rate", "200", "--tenant-event-burst", "20"]);
    let violations: Vec<&Value> = feed.iter().filter(|r| r["kind"] == "network").collect();
    // B's crossing is reported, naming B's caller and A's port; B's own connection is not.
    let crossing: Vec<&&Value> = violations
        .iter()
        .filter(|v| v["caller"]["tenant"] == "b")
        .collect();
    assert_eq!(crossing.len(), 1, "{violations:#?}\nstats {stats}");
    let v = crossing[0];
    assert_eq!(v["actual_tenant"], "a", "{v}");
    assert_eq!(v["caller"]["pid"], pid, "{v}");
    assert_eq!(v["caller"]["comm"], "client-b", "{v}");
    assert_eq!(v["target"]["port"], port, "{v}");
    // A's flood is same-tenant: no crossing of A's is invented from it.
    assert!(
        violations.iter().all(|v| v["caller"]["tenant"] != "a"),
        "{violations:#?}"
    );
    // A's flood was dropped in the kernel, counted and reported as A's.
    let a_lost = lost(&feed, "tenant_flood", "a");
    assert!(
        a_lost > 1000,
        "A's flood is reported as A's loss: {feed:#?}"
    );
    let message = feed
        .iter()
        .find(|r| r["source"] == "tenant_flood")
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(message.contains("tenant a flooded"), "{message}");
    // B lost nothing: neither over its own budget nor to a full ring.
    assert_eq!(lost(&feed, "tenant_flood", "b"), 0, "{feed:#?}");
    let ring: u64 = feed
        .iter()
        .filter(|r| r["kind"] == "loss" && r["source"] == "ring_buffer")
        .map(|r| r["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(
        ring, 0,
        "A's budget keeps the ring from overflowing: {feed:#?}"
    );
}

/// The control: the same flood without a budget overflows the small ring, so the test above
/// would see ring-buffer losses (any tenant's events, B's included) if the budget did nothing.
/// (Run that way, the test above fails: B's crossing was lost in the overflow, the evasion.)
#[test]
fn without_a_budget_the_same_flood_overflows_the_ring() {
    let (feed, stats, _, _) = b_crosses_while_a_floods(&["--tenant-event-rate", "0"]);
    assert_eq!(lost(&feed, "tenant_flood", "a"), 0, "{feed:#?}");
    assert!(
        stats["lost_total"].as_u64().unwrap() > 0,
        "an unbudgeted flood overflows a 16 KiB ring: {stats}"
    );
}
