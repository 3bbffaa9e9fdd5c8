//! Complete spans on the real kernel: a TCP connection ends with what each socket counted, in
//! the trace of the process that opened it, and the violation names that span.
use seam_integration_tests::{Agent, Cgroups, Workload, listen, two_tenants};
use serde_json::Value;

/// What `seam workload tcp-connect` writes on each connection.
const LINE: &str = "hello from seam workload\n";

fn spans(feed: &[Value]) -> Vec<&Value> {
    feed.iter()
        .filter(|r| r["kind"] == "span")
        .map(|r| &r["span"])
        .collect()
}

#[test]
fn a_tcp_span_ends_with_each_sockets_bytes_in_the_callers_trace() {
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    let b = cgroups.create("b");
    let mut agent = Agent::start_with(&two_tenants(&cgroups, ""), &["--feed-spans"]);
    let db = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    let port = db.port.to_string();
    let client = Workload::start(
        Some(&a),
        "client-a",
        &["tcp-connect", "--addr", &format!("127.0.0.1:{port}")],
    );
    let client_pid = client.pid();
    client.finish();
    db.workload.finish();
    let violations = agent.wait_violations(1);
    let stats = agent.stop();
    let feed = agent.feed();
    let spans = spans(&feed);
    let conn = spans
        .iter()
        .copied()
        .find(|s| {
            s["body"]["connection"]["server"]["addr"]
                .as_str()
                .is_some_and(|a| a.ends_with(&format!(":{port}")))
        })
        .unwrap_or_else(|| panic!("no span for the connection in {feed:#?}"));
    let c = &conn["body"]["connection"];
    assert_eq!(c["transport"], "tcp");
    assert_eq!(conn["end_reason"], "closed", "{conn:#}");
    assert!(conn["end"].as_str() >= conn["start"].as_str(), "{conn:#}");
    assert_eq!(c["client"]["tenant"]["name"], "a");
    assert_eq!(c["server"]["tenant"]["name"], "b");
    assert_eq!(c["client"]["process"]["pid"], client_pid);
    assert_eq!(c["server"]["process"]["comm"], "db-b");
    let bytes = LINE.len() as u64;
    assert_eq!(c["client"]["traffic"]["bytes_sent"], bytes, "{c:#}");
    assert_eq!(c["server"]["traffic"]["bytes_received"], bytes, "{c:#}");
    assert_eq!(c["server"]["traffic"]["bytes_sent"], 0, "{c:#}");
    assert!(
        c["client"]["traffic"]["segments_sent"].as_u64() >= Some(3),
        "{c:#}"
    );

    // The connection is a child of the client's process span, which ended when it exited.
    let process = spans
        .iter()
        .copied()
        .find(|s| s["body"]["process"]["process"]["pid"] == client_pid)
        .unwrap_or_else(|| panic!("no process span for pid {client_pid} in {feed:#?}"));
    assert_eq!(conn["trace_id"], process["trace_id"]);
    assert_eq!(conn["parent_span_id"], process["span_id"]);
    assert_eq!(process["parent_span_id"], Value::Null, "the trace's root");
    assert_eq!(process["end_reason"], "exited", "{process:#}");
    assert_eq!(process["body"]["process"]["exit"]["code"], 0, "{process:#}");

    // The violation opens that span and that trace.
    let v = &violations[0];
    assert_eq!(
        (&v["trace_id"], &v["span_id"]),
        (&conn["trace_id"], &conn["span_id"])
    );
    assert_eq!(v["caller"]["pid"], client_pid);
    assert!(stats["spans_ended"].as_u64() >= Some(2), "{stats}");
}

#[test]
fn a_refused_connect_is_a_failed_span() {
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    let b = cgroups.create("b");
    let mut agent = Agent::start_with(&two_tenants(&cgroups, ""), &["--feed-spans"]);
    // b listens, takes one connection and closes: the port is then refused.
    let db = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    let port = db.port;
    let opener = Workload::start(
        Some(&a),
        "opener",
        &["tcp-connect", "--addr", &format!("127.0.0.1:{port}")],
    );
    opener.finish();
    db.workload.finish();
    // Nobody listens on `port` any more.
    let refused = Workload::start(
        Some(&a),
        "prober",
        &[
            "tcp-connect",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--expect-refused",
        ],
    );
    refused.finish();
    agent.wait_until("the refused attempt", |a| {
        a.feed().iter().any(|r| {
            r["kind"] == "span"
                && r["span"]["end_reason"] == "failed"
                && r["span"]["body"]["connection"]["client"]["process"]["comm"] == "prober"
        })
    });
    agent.stop();
    let feed = agent.feed();
    let attempt = spans(&feed)
        .into_iter()
        .find(|s| s["end_reason"] == "failed")
        .expect("a failed connection span");
    let c = &attempt["body"]["connection"];
    assert_eq!(c["client"]["tenant"]["name"], "a");
    assert_eq!(c["server"]["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(
        c["server"]["tenant"],
        Value::Null,
        "nobody owns a closed port"
    );
    assert_eq!(c["client"]["traffic"]["bytes_sent"], 0);
    assert!(
        !feed
            .iter()
            .any(|r| r["rule_id"].is_string() && r["caller"]["comm"] == "prober"),
        "an attempt at nobody's port is no violation: {feed:#?}"
    );
}
