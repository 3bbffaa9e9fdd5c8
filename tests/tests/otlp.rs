//! OTLP on the real kernel: Seam's export decoded by the OpenTelemetry project's own protobuf
//! classes (over HTTP and gRPC, through a receiver that first answers "retry"), and a real
//! OpenTelemetry SDK application whose declared tenant is checked against the kernel's.
use seam_integration_tests::{
    Agent, Cgroups, Workload, listen,
    python::{OtlpReceiver, python, script},
    two_tenants,
};
use serde_json::Value;

/// Attribute `key` of an OTLP JSON attribute list, as a string.
fn attr<'a>(attributes: &'a Value, key: &str) -> Option<&'a Value> {
    attributes
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            v.get("stringValue")
                .or_else(|| v.get("intValue"))
                .or_else(|| v.get("boolValue"))
                .unwrap_or(v)
        })
}

fn spans(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| r["signal"] == "traces")
        .flat_map(|r| {
            r["request"]["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
        .collect()
}

fn logs(requests: &[Value]) -> Vec<&Value> {
    requests
        .iter()
        .filter(|r| r["signal"] == "logs")
        .flat_map(|r| {
            r["request"]["resourceLogs"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .flat_map(|rl| rl["scopeLogs"].as_array().into_iter().flatten())
        .flat_map(|sl| sl["logRecords"].as_array().into_iter().flatten())
        .collect()
}

/// A crossing a -> b with export to a receiver speaking `protocol` that refuses once first.
fn export_to(protocol: &str) {
    let receiver = OtlpReceiver::start(protocol, 1);
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    let b = cgroups.create("b");
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let protocol_flag = if protocol == "http" {
        "http/protobuf"
    } else {
        "grpc"
    };
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-protocol",
            protocol_flag,
        ],
    );
    let db = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    let client = Workload::start(
        Some(&a),
        "client-a",
        &["tcp-connect", "--addr", &format!("127.0.0.1:{}", db.port)],
    );
    let client_pid = client.pid();
    client.finish();
    db.workload.finish();
    let violations = agent.wait_violations(1);
    agent.stop();
    let requests = receiver.requests();

    // The resource.
    let first = requests
        .iter()
        .find(|r| r["signal"] == "traces")
        .unwrap_or_else(|| panic!("no traces request in {requests:#?}"));
    let resource = &first["request"]["resourceSpans"][0]["resource"]["attributes"];
    assert_eq!(attr(resource, "service.name"), Some(&Value::from("seam")));
    assert_eq!(attr(resource, "os.type"), Some(&Value::from("linux")));
    assert!(attr(resource, "host.name").is_some() && attr(resource, "os.version").is_some());

    // The connection span, a child of the client's process span.
    let spans = spans(&requests);
    let conn = spans
        .iter()
        .find(|s| {
            s["name"] == "net.connect"
                && attr(&s["attributes"], "server.port") == Some(&Value::from(db.port.to_string()))
        })
        .unwrap_or_else(|| panic!("no net.connect span in {spans:#?}"));
    assert_eq!(conn["kind"], "SPAN_KIND_CLIENT");
    let a_attr = |k| attr(&conn["attributes"], k).cloned();
    assert_eq!(a_attr("network.transport"), Some(Value::from("tcp")));
    assert_eq!(a_attr("client.address"), Some(Value::from("127.0.0.1")));
    assert_eq!(
        a_attr("process.pid"),
        Some(Value::from(client_pid.to_string()))
    );
    assert_eq!(
        a_attr("process.executable.name"),
        Some(Value::from("client-a"))
    );
    assert_eq!(a_attr("seam.tenant"), Some(Value::from("a")));
    assert_eq!(a_attr("seam.peer.tenant"), Some(Value::from("b")));
    assert_eq!(a_attr("seam.client.bytes_sent"), Some(Value::from("25")));
    let parent = spans
        .iter()
        .find(|s| s["spanId"] == conn["parentSpanId"])
        .unwrap_or_else(|| panic!("the parent of {conn:#} was not exported"));
    assert_eq!(parent["name"], "process.exec");
    assert_eq!(parent["traceId"], conn["traceId"]);
    assert_eq!(
        attr(&parent["attributes"], "process.pid"),
        Some(&Value::from(client_pid.to_string()))
    );

    // The violation, as a log record in that trace and span.
    let logs = logs(&requests);
    let record = logs
        .iter()
        .find(|l| l["eventName"] == "seam.violation")
        .unwrap_or_else(|| panic!("no violation log record in {logs:#?}"));
    assert_eq!(record["severityText"], "high");
    assert_eq!(record["severityNumber"], "SEVERITY_NUMBER_ERROR");
    assert_eq!(record["traceId"], conn["traceId"]);
    assert_eq!(record["spanId"], conn["spanId"]);
    assert_eq!(
        attr(&record["attributes"], "seam.rule_id"),
        Some(&Value::from("cross-tenant-network"))
    );
    assert_eq!(record["body"]["stringValue"], violations[0]["message"]);
}

#[test]
fn export_over_http_survives_a_503_and_decodes() {
    export_to("http");
}

#[test]
fn export_over_grpc_survives_unavailable_and_decodes() {
    export_to("grpc");
}

const APP_RULES: &str = "rules/shipped/app.toml";

/// The shipped application rules with tenants a and b, and the rule that flags a tenant
/// reaching a service of the node (which Seam's own receiver is not).
fn app_rules(cgroups: &Cgroups) -> String {
    let dir = seam_integration_tests::repo_rules_dir().join("..");
    let app = std::fs::read_to_string(dir.join(APP_RULES)).expect("read app.toml");
    format!(
        "{}\n{app}\n{NODE_HOST_ACCESS}",
        seam_integration_tests::tenants_ab(cgroups)
    )
}

const NODE_HOST_ACCESS: &str = r#"
[[rule]]
id = "node-host-access"
severity = "high"
description = "A tenant's process reached a service of the node that no tenant owns"
expr = "trace.has(net.*).where(tenant != null and peer.local and peer.tenant == null)"
"#;

/// Runs tests/py/otel_app.py in `cgroup`: it declares `tenant` and connects to `port`.
fn app(cgroup: &str, protocol: &str, endpoint: &str, tenant: &str, port: u16) -> u32 {
    let python = python();
    let script = script("otel_app.py");
    let connect = format!("127.0.0.1:{port}");
    let run = Workload::start(
        Some(cgroup),
        "app",
        &[
            "exec",
            python.to_str().unwrap(),
            script.to_str().unwrap(),
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--service",
            "svc",
            "--tenant",
            tenant,
            "--connect",
            &connect,
        ],
    );
    let pid = run.pid();
    run.finish();
    pid
}

#[test]
fn declared_tenants_are_checked_against_the_kernel() {
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    let b = cgroups.create("b");
    // A shared service: in no tenant's cgroup.
    let svc = cgroups.create("svc");
    let mut agent = Agent::start_with(
        &app_rules(&cgroups),
        &[
            "--otlp-receive-http",
            "127.0.0.1:0",
            "--otlp-receive-grpc",
            "127.0.0.1:0",
        ],
    );
    let ready: Value = serde_json::from_str(
        &std::fs::read_to_string(agent.dir.join("ready.json")).expect("ready file"),
    )
    .expect("ready JSON");
    let http = format!("http://{}", ready["otlp_receive_http"].as_str().unwrap());
    let grpc = format!("http://{}", ready["otlp_receive_grpc"].as_str().unwrap());
    let db_a = listen("tcp-listen", Some(&a), "db-a", "127.0.0.1:0", 2);
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 2);

    // The shared service declares a but reaches b's database: flagged.
    let shared_cross = app(&svc, "http", &http, "a", db_b.port);
    // The shared service declares b and reaches b's database: fine.
    let shared_ok = app(&svc, "grpc", &grpc, "b", db_b.port);
    // A process in a's cgroup declares b (and reaches a's own database): flagged.
    let a_says_b = app(&a, "grpc", &grpc, "b", db_a.port);
    // A process in a's cgroup declares a and reaches a's database: fine.
    let a_ok = app(&a, "http", &http, "a", db_a.port);
    db_a.workload.finish();
    db_b.workload.finish();

    fn by(pid: u32, rule: &'static str) -> impl Fn(&&Value) -> bool {
        move |v: &&Value| v["rule_id"] == rule && v["caller"]["pid"] == pid
    }
    agent.wait_until("both mismatches", |agent| {
        let feed = agent.feed();
        let feed: Vec<&Value> = feed.iter().collect();
        feed.iter().any(by(shared_cross, "app-cross-tenant-access"))
            && feed
                .iter()
                .any(by(a_says_b, "app-declared-tenant-mismatch"))
    });
    let stats = agent.stop();
    let feed = agent.feed();
    let cross = feed
        .iter()
        .find(by(shared_cross, "app-cross-tenant-access"))
        .expect("shared service flagged");
    assert_eq!(cross["intended_tenant"], "a", "{cross:#}");
    assert_eq!(cross["actual_tenant"], "b", "{cross:#}");
    assert_eq!(cross["kind"], "app");
    assert_eq!(cross["target"]["port"], db_b.port);
    assert_eq!(cross["caller"]["cgroup_path"], svc);
    assert!(cross["trace_id"].as_str().is_some_and(|t| t.len() == 32));
    let mismatch = feed
        .iter()
        .find(by(a_says_b, "app-declared-tenant-mismatch"))
        .expect("a's process declaring b flagged");
    assert_eq!(mismatch["intended_tenant"], "b");
    assert_eq!(mismatch["actual_tenant"], "a");
    for ok in [shared_ok, a_ok] {
        let flagged: Vec<&Value> = feed
            .iter()
            .filter(|v| v["rule_id"].is_string() && v["caller"]["pid"] == ok)
            .collect();
        assert!(
            flagged.is_empty(),
            "pid {ok} declared its own tenant: {flagged:#?}"
        );
    }
    // a's applications sent their spans to Seam's receiver on this node: not a finding.
    let to_node: Vec<&Value> = feed
        .iter()
        .filter(|v| v["rule_id"] == "node-host-access")
        .collect();
    assert!(
        to_node.is_empty(),
        "sending spans to Seam is not a crossing: {to_node:#?}"
    );
    assert!(stats["app_spans"].as_u64() >= Some(8), "{stats}");
}
