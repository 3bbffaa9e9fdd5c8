//! Fault: the rules file is rewritten again and again, valid and invalid versions, through
//! file changes and SIGHUP, while a tenant makes thousands of connections a second. The agent
//! never stops; invalid versions are rejected and the last good rules stay in force; crossings
//! after each reload are judged by the rules then in force; and every connect the kernel saw
//! was either handled or counted as lost.
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use seam_integration_tests::{Agent, Cgroups, Workload, listen};
use serde_json::Value;

use crate::common::{CROSS_TENANT, connect, local, network, weight};

/// Connections per load workload.
const BATCH: u64 = 2000;

/// Tenants a and b, the cross-tenant rule under id `cross-<version>`.
fn version(cgroups: &Cgroups, version: &str) -> String {
    format!(
        "[[tenant]]\nname = \"a\"\ncgroups = [\"{}\"]\n\n[[tenant]]\nname = \"b\"\ncgroups = \
         [\"{}\"]\n{}",
        cgroups.rel("a"),
        cgroups.rel("b"),
        CROSS_TENANT.replace("\"cross-tenant-network\"", &format!("\"cross-{version}\"")),
    )
}

/// What the agent logged about reloads so far (accepted, rejected).
fn reloads(agent: &Agent) -> (usize, usize) {
    let log = agent.log();
    (
        log.matches("rules reloaded").count(),
        log.matches("rules reload rejected").count(),
    )
}

fn hangup(agent: &Agent) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
}

/// Crosses a -> b as `comm` and returns the rule its violation names.
fn judged_by(agent: &mut Agent, a: &str, port: u16, comm: &str) -> String {
    connect(a, comm, &local(port));
    agent.wait_until(&format!("{comm}'s violation"), |ag| {
        network(&ag.feed())
            .iter()
            .any(|v| v["caller"]["comm"] == comm)
    });
    let feed = agent.feed();
    let v: &Value = network(&feed)
        .into_iter()
        .find(|v| v["caller"]["comm"] == comm)
        .unwrap();
    v["rule_id"].as_str().unwrap().to_owned()
}

#[test]
fn rules_rewritten_under_load_are_applied_or_rejected_and_nothing_is_lost_silently() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start(&version(&cgroups, "0"));
    let rules_file = agent.rules_file();
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    connect(&a, "same-a", &local(web_a.port));
    web_a.workload.finish();
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", u32::MAX);
    let port = db_b.port;

    // The load: batches of connections a -> b until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, made, a) = (stop.clone(), made.clone(), a.clone());
        std::thread::spawn(move || {
            // Bounded: at most 50 batches.
            for _ in 0..50 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                Workload::start(
                    Some(&a),
                    "load",
                    &[
                        "tcp-connect",
                        "--addr",
                        &local(port),
                        "--count",
                        &BATCH.to_string(),
                    ],
                )
                .finish();
                made.fetch_add(BATCH, Ordering::Relaxed);
            }
        })
    };
    agent.wait_until("the load to be flagged", |ag| {
        network(&ag.feed())
            .iter()
            .any(|v| v["caller"]["comm"] == "load")
    });

    // Valid and invalid versions, through file changes and SIGHUP.
    let steps: [(&str, bool, bool); 6] = [
        ("1", true, false),
        ("bad-syntax", false, false),
        ("2", true, true),
        ("bad-rule", false, true),
        ("3", true, false),
        ("final", true, true),
    ];
    let mut in_force = "0".to_owned();
    let mut probes = Vec::new();
    for (n, (name, valid, by_signal)) in steps.into_iter().enumerate() {
        let before = reloads(&agent);
        let text = match name {
            "bad-syntax" => "[[tenant]\nname = ".to_owned(),
            "bad-rule" => version(&cgroups, "x").replace("peer.tenant != tenant", "peer.nope !="),
            _ => version(&cgroups, name),
        };
        std::fs::write(&rules_file, text).expect("rewrite the rules");
        if by_signal {
            hangup(&agent);
        }
        agent.wait_until(&format!("version {name} to be handled"), |ag| {
            let now = reloads(ag);
            if valid {
                now.0 > before.0
            } else {
                now.1 > before.1
            }
        });
        if valid {
            in_force = name.to_owned();
        }
        let comm = format!("probe-{n}");
        let rule = judged_by(&mut agent, &a, port, &comm);
        assert_eq!(
            rule,
            format!("cross-{in_force}"),
            "{comm} after version {name}"
        );
        probes.push(comm);
    }
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    let load_made = made.load(Ordering::Relaxed);
    let stats = agent.stop();
    let feed = agent.feed();
    let flagged = network(&feed);
    let load_flagged: u64 = flagged
        .iter()
        .filter(|v| v["caller"]["comm"] == "load")
        .map(|v| weight(v))
        .sum();
    assert!(
        flagged.iter().all(|v| v["caller"]["comm"] != "same-a"),
        "same tenant is not flagged"
    );
    for v in &flagged {
        assert_eq!(v["caller"]["tenant"], "a", "{v:#}");
        assert_eq!(v["actual_tenant"], "b", "{v:#}");
    }
    // Every connect() from a: the same-tenant one, the probes and the load. Each is one
    // connection span (TCP is seen at its state changes: no per-connect event), unless the
    // ring lost its events, which are counted.
    let connects = 1 + probes.len() as u64 + load_made;
    let seen = stats["spans"].as_u64().unwrap_or(0);
    let lost = stats["lost_total"].as_u64().unwrap_or(0);
    eprintln!(
        "reload: {load_made} load connections, {load_flagged} flagged, {seen} connections seen, \
         {lost} events lost; stats {stats}"
    );
    assert!(load_made >= BATCH, "the load ran");
    assert!(seen <= connects, "no connection seen twice: {stats}");
    assert!(
        seen + lost >= connects,
        "every connection handled or its events counted lost: {stats}"
    );
    let lost_total = stats["lost_total"].as_u64().unwrap();
    if lost_total == 0 {
        assert_eq!(load_flagged, load_made, "every load crossing flagged");
    }
    let reported: u64 = feed
        .iter()
        .filter(|r| r["kind"] == "loss" && r["source"] == "ring_buffer")
        .map(|r| r["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported, lost_total,
        "ring buffer losses are in the feed: {stats}"
    );
}
