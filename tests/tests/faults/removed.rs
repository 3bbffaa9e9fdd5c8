//! Fault: a tenant cgroup removed while a connection from it is open. Either its process is
//! moved to another cgroup first (a populated cgroup cannot be removed) and the connection
//! stays open through the removal, or the process exits and the cgroup is removed while the
//! other tenant's end of the connection is still open. The violation was reported for the
//! right tenant, the connection's span ends with sane times, and a cgroup re-created under
//! the same name is attributed afresh.
use std::{fs, time::Duration};

use seam_integration_tests::{Agent, Cgroups, Workload, cgroup2_root, listen, listen_with};
use serde_json::Value;

use crate::common::{
    HoldFile, connect, connection_to, duration_ns, local, network, registrations, rules,
};

fn remove_cgroup(agent: &mut Agent, rel: &str) {
    let dir = cgroup2_root().join(rel);
    agent.wait_until("the cgroup to be removed", |_| fs::remove_dir(&dir).is_ok());
    agent.wait_until("the removed cgroup to be unregistered", |a| {
        registrations(a, rel, false) == 1
    });
}

fn assert_crossing(v: &Value, pid: u32, port: u16) {
    assert_eq!(v["caller"]["pid"], pid, "{v:#}");
    assert_eq!(v["caller"]["tenant"], "a", "{v:#}");
    assert_eq!(v["intended_tenant"], "a", "{v:#}");
    assert_eq!(v["actual_tenant"], "b", "{v:#}");
    assert_eq!(v["target"]["port"], port, "{v:#}");
}

/// The one connection span to `port`: ended, with end >= start and a duration shorter than
/// the test.
fn assert_span_ended(feed: &[Value], port: u16, within: Duration) -> Value {
    let spans = connection_to(feed, port);
    assert_eq!(spans.len(), 1, "one span for the connection: {spans:#?}");
    let span = spans[0].clone();
    let d = duration_ns(&span);
    assert!(
        d >= 0 && d <= within.as_nanos() as i128,
        "span lasted {d} ns: {span:#}"
    );
    let c = &span["body"]["connection"];
    assert_eq!(c["client"]["tenant"]["name"], "a", "{span:#}");
    assert_eq!(c["server"]["tenant"]["name"], "b", "{span:#}");
    span
}

#[test]
fn cgroup_removed_under_an_open_connection_whose_process_moved_out() {
    let started = std::time::Instant::now();
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let parking = cgroups.create("parking");
    let rules = rules(&[("a", vec![a.clone()]), ("b", vec![b.clone()])]);
    let mut agent = Agent::start_with(&rules, &["--feed-spans"]);
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    connect(&a, "same-a", &local(web_a.port));
    web_a.workload.finish();
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 2);
    let hold = HoldFile::new("moved");
    let client = Workload::start(
        Some(&a),
        "client-a",
        &[
            "tcp-connect",
            "--addr",
            &local(db_b.port),
            "--hold-file",
            hold.arg(),
        ],
    );
    let pid = client.pid();
    agent.wait_violations(1);
    // Out of a (its socket keeps a's cgroup), then a goes.
    fs::write(
        cgroup2_root().join(&parking).join("cgroup.procs"),
        pid.to_string(),
    )
    .expect("move the client out of a");
    remove_cgroup(&mut agent, &a);
    // a, re-created under the same name, is a new cgroup of the same tenant.
    let a_again = cgroups.create("a");
    agent.wait_until("the re-created cgroup to be registered", |ag| {
        registrations(ag, &a_again, true) == 2
    });
    let pid2 = connect(&a_again, "client-a2", &local(db_b.port));
    agent.wait_violations(2);
    hold.release();
    client.finish();
    db_b.workload.finish();
    agent.stop();
    let feed = agent.feed();
    let flagged = network(&feed);
    assert_eq!(flagged.len(), 2, "{flagged:#?}");
    assert_crossing(flagged[0], pid, db_b.port);
    assert_crossing(flagged[1], pid2, db_b.port);
    assert_ne!(
        flagged[0]["caller"]["cgroup_id"], flagged[1]["caller"]["cgroup_id"],
        "the re-created a is another cgroup"
    );
    let spans = connection_to(&feed, db_b.port);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for span in spans {
        let d = duration_ns(span);
        assert!(
            d >= 0 && d <= started.elapsed().as_nanos() as i128,
            "span lasted {d} ns: {span:#}"
        );
        let c = &span["body"]["connection"];
        assert_eq!(c["client"]["tenant"]["name"], "a", "{span:#}");
        assert_eq!(c["server"]["tenant"]["name"], "b", "{span:#}");
    }
}

#[test]
fn cgroup_removed_after_its_process_exited_while_the_peer_holds_the_connection() {
    let started = std::time::Instant::now();
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let rules = rules(&[("a", vec![a.clone()]), ("b", vec![b.clone()])]);
    let mut agent = Agent::start_with(&rules, &["--feed-spans"]);
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    connect(&a, "same-a", &local(web_a.port));
    web_a.workload.finish();
    let hold = HoldFile::new("peer");
    // b keeps its end open after a's client closed and exited.
    let db_b = listen_with(
        "tcp-listen",
        Some(&b),
        "db-b",
        "127.0.0.1:0",
        1,
        &["--hold-file", hold.arg()],
    );
    let pid = connect(&a, "client-a", &local(db_b.port));
    agent.wait_violations(1);
    remove_cgroup(&mut agent, &a);
    // b's end is still open: the span is too. Then b closes.
    hold.release();
    db_b.workload.finish();
    agent.wait_until("the connection's span to end", |ag| {
        !connection_to(&ag.feed(), db_b.port).is_empty()
    });
    agent.stop();
    let feed = agent.feed();
    let flagged = network(&feed);
    assert_eq!(flagged.len(), 1, "{flagged:#?}");
    assert_crossing(flagged[0], pid, db_b.port);
    let span = assert_span_ended(&feed, db_b.port, started.elapsed());
    assert_eq!(span["end_reason"], "closed", "{span:#}");
    assert_eq!(
        span["span_id"], flagged[0]["span_id"],
        "the violation names the span"
    );
}
