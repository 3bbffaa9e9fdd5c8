//! Fault: an agent keeping sealed history (`--store`) is killed with SIGKILL and started again
//! on the same store. Every crossing sealed before the kill, and every one after the restart,
//! is read back by `seam replay` exactly once (none lost, none duplicated); same-tenant
//! connections are never a violation, live or replayed; `seam report` shows the killed run
//! without a stop mark and the downtime it left.
use std::{collections::BTreeSet, path::Path, time::Duration};

use seam_integration_tests::{Agent, Cgroups, history::History, listen, store::text, two_tenants};
use serde_json::Value;

use crate::common::{connect, local, network};

/// (rule, trace id, span id) of each violation.
fn ids<'a>(list: impl IntoIterator<Item = &'a Value>) -> BTreeSet<(String, String, String)> {
    list.into_iter()
        .map(|v| {
            (
                v["rule_id"].as_str().unwrap().to_owned(),
                v["trace_id"].as_str().unwrap().to_owned(),
                v["span_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `seam replay` of the whole store.
fn replayed(history: &History, rules: &Path) -> Value {
    history.replay(rules, &[])
}

#[test]
fn a_killed_agent_keeps_its_sealed_history_and_the_restart_appends_without_duplicates() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let rules = two_tenants(&cgroups, "");
    let history = History::new();
    let rules_dir = history.rules_dir("rules", &rules);
    let args = history.run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Run 1: three crossings and a same-tenant connection, sealed, then SIGKILL.
    let mut first = Agent::start_with(&rules, &args);
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 2);
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 5);
    connect(&a, "same-a", &local(web_a.port));
    for _ in 0..3 {
        connect(&a, "client-a", &local(db_b.port));
    }
    first.wait_violations(3);
    let before: Vec<Value> = network(&first.feed()).into_iter().cloned().collect();
    assert_eq!(before.len(), 3, "{before:#?}");
    // Sealed: `seam replay` (reading the store while the agent writes it) finds all three.
    let deadline = std::time::Instant::now() + seam_integration_tests::WAIT;
    loop {
        let scope = replayed(&history, &rules_dir);
        let found = ids(scope["violations"].as_array().unwrap());
        if found == ids(&before) {
            break;
        }
        assert!(
            found.is_subset(&ids(&before)),
            "replay found crossings the agent never flagged: {scope:#}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "history never held the three crossings: {scope:#}\nlog:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    first.kill();
    // Long enough for the report to count the time without an agent as downtime.
    std::thread::sleep(Duration::from_secs(6));

    // Run 2 on the same store: two more crossings and another same-tenant connection.
    let mut second = Agent::start_with(&rules, &args);
    connect(&a, "same-a", &local(web_a.port));
    for _ in 0..2 {
        connect(&a, "client-a", &local(db_b.port));
    }
    second.wait_violations(2);
    web_a.workload.finish();
    let stats = second.stop();
    let port = db_b.port;
    drop(db_b);
    let after: Vec<Value> = network(&second.feed()).into_iter().cloned().collect();
    assert_eq!(after.len(), 2, "{after:#?}");
    assert_eq!(stats["history"]["store"]["records_dropped"], 0, "{stats:#}");
    for v in before.iter().chain(&after) {
        assert_eq!(v["caller"]["tenant"], "a", "{v:#}");
        assert_eq!(v["target"]["tenant"], "b", "{v:#}");
        assert_eq!(v["target"]["port"], port, "{v:#}");
    }

    let live: BTreeSet<_> = ids(before.iter().chain(&after));
    assert_eq!(live.len(), 5, "five distinct crossings");
    let scope = replayed(&history, &rules_dir);
    let list = scope["violations"].as_array().unwrap();
    assert_eq!(
        scope["violations_total"], 5,
        "each sealed crossing once, none lost, none twice: {scope:#}"
    );
    assert_eq!(
        ids(list),
        live,
        "replay finds exactly what both runs flagged"
    );
    let damaged: Vec<&Value> = scope["read_issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] != "not_closed")
        .collect();
    assert!(
        damaged.is_empty(),
        "the kill may leave segments unclosed, nothing else: {damaged:?}"
    );
    // Each tenant's history holds each crossing once.
    for tenant in ["a", "b"] {
        let one = history.replay(&rules_dir, &["--tenant", tenant]);
        assert_eq!(one["violations_total"], 5, "{tenant}: {one:#}");
        assert_eq!(ids(one["violations"].as_array().unwrap()), live, "{tenant}");
    }

    // The CI gate counts them once too.
    let out = history.read_cmd("validate", &rules_dir, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(", 5 violations"), "{stdout}");

    // The report: two runs, the first without a stop mark, and the downtime between them.
    let out = history.read_cmd("report", &rules_dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["violations"]["violations_total"], 5, "{report:#}");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(
        runs[0]["stopped"].is_null(),
        "killed: no stop mark {runs:#?}"
    );
    assert!(runs[1]["stopped"].is_string(), "{runs:#?}");
    let downtime = report["gaps"]["downtime"].as_array().unwrap();
    assert!(
        downtime.iter().any(|d| d["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without a stop mark"))),
        "the kill is a gap in the evidence: {downtime:#?}"
    );
}
