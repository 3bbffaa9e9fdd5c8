//! Cross-tenant network detection on the real kernel: real processes in real tenant cgroups,
//! TCP over 127.0.0.1 and ::1, UDP, unregistered cgroups, cgroups created after start-up,
//! off-node endpoints, allow rules and shared services.
use seam_integration_tests::{Agent, Cgroups, Workload, listen, two_tenants};
use serde_json::Value;

fn connect(cgroup: Option<&str>, comm: &str, addr: &str) -> u32 {
    let client = Workload::start(cgroup, comm, &["tcp-connect", "--addr", addr]);
    let pid = client.pid();
    client.finish();
    pid
}

fn assert_violation(v: &Value, from: &str, to: &str, pid: u32, comm: &str, port: u16, proto: &str) {
    assert_eq!(v["kind"], "network", "{v}");
    assert_eq!(v["rule_id"], "cross-tenant-network", "{v}");
    assert_eq!(v["severity"], "high", "{v}");
    assert_eq!(v["intended_tenant"], from, "{v}");
    assert_eq!(v["actual_tenant"], to, "{v}");
    assert_eq!(v["caller"]["tenant"], from, "{v}");
    assert_eq!(v["caller"]["pid"], pid, "{v}");
    assert_eq!(v["caller"]["comm"], comm, "{v}");
    assert!(v["caller"]["cgroup_id"].as_u64().unwrap() > 1, "{v}");
    assert!(
        v["caller"]["cgroup_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{from}")),
        "{v}"
    );
    assert_eq!(v["target"]["tenant"], to, "{v}");
    assert_eq!(v["target"]["port"], port, "{v}");
    assert_eq!(v["target"]["protocol"], proto, "{v}");
    assert_eq!(v["trace_id"].as_str().unwrap().len(), 32, "{v}");
    assert_eq!(v["span_id"].as_str().unwrap().len(), 16, "{v}");
    assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    assert!(!v["signal_id"].as_str().unwrap().is_empty(), "{v}");
    assert!(!v["node"].as_str().unwrap().is_empty(), "{v}");
    assert!(v["message"].as_str().unwrap().contains(comm), "{v}");
}

/// A -> A and A -> B over TCP on `ip`: exactly one violation, for A -> B, naming the caller.
fn tcp_same_and_cross(ip: &str, bind: &str) {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start(&two_tenants(&cgroups, ""));
    let web_a = listen("tcp-listen", Some(&a), "web-a", bind, 1);
    let db_b = listen("tcp-listen", Some(&b), "db-b", bind, 1);

    connect(Some(&a), "client-a", &format!("{ip}:{}", web_a.port));
    let pid = connect(Some(&a), "client-a", &format!("{ip}:{}", db_b.port));
    let violations = agent.wait_violations(1);
    web_a.workload.finish();
    db_b.workload.finish();
    let stats = agent.stop();

    let violations_after = agent.violations();
    assert_eq!(
        violations_after.len(),
        1,
        "only A -> B is flagged: {violations:#?}"
    );
    let v = &violations_after[0];
    assert_violation(v, "a", "b", pid, "client-a", db_b.port, "tcp");
    assert_eq!(v["target"]["process"]["comm"], "db-b", "{v}");
    assert_eq!(v["target"]["process"]["tenant"], "b", "{v}");
    // The same-tenant connection was seen (two paired spans), not missed.
    assert!(stats["spans"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["lost_total"], 0, "{stats}");
}

#[test]
fn tcp_ipv4_cross_tenant_is_flagged_once_same_tenant_is_not() {
    tcp_same_and_cross("127.0.0.1", "127.0.0.1:0");
}

#[test]
fn tcp_ipv6_cross_tenant_is_flagged_once_same_tenant_is_not() {
    tcp_same_and_cross("[::1]", "[::1]:0");
}

#[test]
fn tcp_b_to_a_reverses_the_roles() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start(&two_tenants(&cgroups, ""));
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    let pid = connect(Some(&b), "client-b", &format!("127.0.0.1:{}", web_a.port));
    agent.wait_violations(1);
    web_a.workload.finish();
    agent.stop();
    let violations = agent.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_violation(&violations[0], "b", "a", pid, "client-b", web_a.port, "tcp");
}

#[test]
fn udp_cross_tenant_is_flagged_same_tenant_is_not() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start(&two_tenants(&cgroups, ""));
    let dns_a = listen("udp-recv", Some(&a), "dns-a", "127.0.0.1:0", 1);
    let dns_b = listen("udp-recv", Some(&b), "dns-b", "127.0.0.1:0", 1);
    let same = Workload::start(
        Some(&a),
        "udp-a",
        &["udp-send", "--addr", &format!("127.0.0.1:{}", dns_a.port)],
    );
    same.finish();
    let cross = Workload::start(
        Some(&a),
        "udp-a",
        &["udp-send", "--addr", &format!("127.0.0.1:{}", dns_b.port)],
    );
    let pid = cross.pid();
    cross.finish();
    agent.wait_violations(1);
    dns_a.workload.finish();
    dns_b.workload.finish();
    let stats = agent.stop();
    let violations = agent.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_violation(&violations[0], "a", "b", pid, "udp-a", dns_b.port, "udp");
    assert!(stats["spans"].as_u64().unwrap() >= 2, "{stats}");
}

#[test]
fn process_in_unregistered_cgroup_is_not_attributed() {
    let mut cgroups = Cgroups::new();
    let b = cgroups.create("b");
    cgroups.create("a");
    let outsider = cgroups.create("outsider");
    let mut agent = Agent::start(&two_tenants(&cgroups, ""));
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    connect(
        Some(&outsider),
        "outsider",
        &format!("127.0.0.1:{}", db_b.port),
    );
    db_b.workload.finish();
    let stats = agent.stop();
    assert!(agent.violations().is_empty(), "{:#?}", agent.violations());
    // B's side was seen (a one-sided span), the outsider's was filtered in the kernel.
    assert!(stats["spans"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        !agent.log().contains("outsider\""),
        "the unregistered cgroup must not be registered"
    );
}

#[test]
fn cgroup_created_after_start_is_followed() {
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    let b = cgroups.create("b");
    // Tenant a also owns every cgroup under <base>/a-late (created later).
    let late_pattern = cgroups.rel("a-late");
    let rules = two_tenants(&cgroups, "").replacen(
        &format!("cgroups = [\"{}\"]", cgroups.rel("a")),
        &format!("cgroups = [\"{}\", \"{late_pattern}\"]", cgroups.rel("a")),
        1,
    );
    let mut agent = Agent::start(&rules);
    let late = cgroups.create("a-late");
    let late_child = cgroups.create("a-late/job");
    agent.wait_until("the late cgroup to be registered", |a| {
        a.log().contains(&format!("cgroup=\"{late_child}\""))
    });
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    let pid = connect(
        Some(&late_child),
        "late-job",
        &format!("127.0.0.1:{}", db_b.port),
    );
    agent.wait_violations(1);
    db_b.workload.finish();
    agent.stop();
    let violations = agent.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let v = &violations[0];
    assert_eq!(v["caller"]["pid"], pid, "{v}");
    assert_eq!(v["caller"]["tenant"], "a", "{v}");
    assert_eq!(v["caller"]["cgroup_path"], late_child, "{v}");
    assert!(late_child.starts_with(&late));
}

#[test]
fn endpoint_owned_off_node_is_attributed_by_address() {
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    cgroups.create("b");
    // The "remote" service: a listener outside every tenant cgroup on 127.0.0.2, which tenant b
    // declares as its own endpoint (as it would a database on another host).
    let remote = listen("tcp-listen", None, "remote-db", "127.0.0.2:0", 1);
    let rules = two_tenants(&cgroups, "").replacen(
        "name = \"b\"\n",
        &format!(
            "name = \"b\"\nendpoints = [\"127.0.0.2:{}\"]\n",
            remote.port
        ),
        1,
    );
    let mut agent = Agent::start(&rules);
    let pid = connect(Some(&a), "client-a", &format!("127.0.0.2:{}", remote.port));
    agent.wait_violations(1);
    remote.workload.finish();
    agent.stop();
    let violations = agent.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let v = &violations[0];
    assert_violation(v, "a", "b", pid, "client-a", remote.port, "tcp");
    assert_eq!(v["target"]["addr"], "127.0.0.2", "{v}");
    assert!(
        v["target"].get("process").is_none(),
        "no local process: {v}"
    );
}

#[test]
fn allowed_pair_and_shared_service_are_not_flagged() {
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    let b = cgroups.create("b");
    let shared = cgroups.create("shared");
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    let other_b = listen("tcp-listen", Some(&b), "other-b", "127.0.0.1:0", 1);
    let dns = listen("tcp-listen", Some(&shared), "dns", "127.0.0.1:0", 1);
    let extra = format!(
        r#"
[[tenant]]
name = "platform"
cgroups = ["{shared}"]
shared = true

[[allow]]
rule = "cross-tenant-network"
from = "a"
to = "b"
ports = [{port}]
protocols = ["tcp"]
reason = "a reads b's reporting replica"
"#,
        port = db_b.port
    );
    let mut agent = Agent::start(&two_tenants(&cgroups, &extra));
    connect(Some(&a), "client-a", &format!("127.0.0.1:{}", db_b.port));
    connect(Some(&a), "client-a", &format!("127.0.0.1:{}", dns.port));
    // A port the allow does not cover is still flagged: the allow is not a blanket pass.
    let pid = connect(Some(&a), "client-a", &format!("127.0.0.1:{}", other_b.port));
    agent.wait_violations(1);
    for l in [db_b, other_b, dns] {
        l.workload.finish();
    }
    let stats = agent.stop();
    let violations = agent.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_violation(
        &violations[0],
        "a",
        "b",
        pid,
        "client-a",
        other_b_port(&violations[0]),
        "tcp",
    );
    assert!(stats["spans"].as_u64().unwrap() >= 3, "{stats}");
}

fn other_b_port(v: &Value) -> u16 {
    v["target"]["port"].as_u64().unwrap() as u16
}
