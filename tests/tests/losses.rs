//! A full ring buffer: every event the kernel could not hand over is counted and reported, so
//! events delivered + events lost always add up to what happened. Never silent.
use seam_integration_tests::{Agent, Cgroups, Workload};

#[test]
fn burst_into_a_tiny_ring_buffer_is_delivered_or_counted_exactly() {
    const DESTINATIONS: u64 = 2000;
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    cgroups.create("b");
    let rules = seam_integration_tests::two_tenants(&cgroups, "");
    // One page of ring buffer holds ~40 events: a burst of 4000 overflows it unless the agent
    // drains faster than the kernel fills it.
    let mut agent = Agent::start_with(&rules, &["--ring-buffer-bytes", "4096"]);
    // 2000 destinations (closed ports on loopback): one sendmsg event and one flow event each.
    let sender = Workload::start(
        Some(&a),
        "burst",
        &["udp-send", "--addr", "127.0.0.1:20000", "--spread", "2000"],
    );
    sender.finish();
    let stats = agent.stop();
    let delivered = |kind: &str| stats["events_by_kind"][kind].as_u64().unwrap_or(0);
    let lost = |slot: &str| stats["lost"][slot].as_u64().unwrap_or(0);
    assert_eq!(
        delivered("sendmsg") + lost("sock_addr"),
        DESTINATIONS,
        "every sendmsg is delivered or counted as lost: {stats}"
    );
    assert_eq!(
        delivered("flow_start") + lost("flow"),
        DESTINATIONS,
        "every first packet is delivered or counted as lost: {stats}"
    );
    // Losses, when there are any, are also in the feed with their counts.
    let reported: u64 = agent
        .feed()
        .iter()
        .filter(|r| r["kind"] == "loss")
        .map(|r| r["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(reported, stats["lost_total"].as_u64().unwrap(), "{stats}");
}
