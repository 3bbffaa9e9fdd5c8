//! Rule-driven detection on the real kernel: the shipped rules from their files, the "outside
//! any tenant" rule, the cloud-metadata rule (against a listener in a network namespace the
//! test creates: no traffic leaves the machine), and rules reload on SIGHUP.
use std::{
    fs,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use seam_integration_tests::{
    Agent, Cgroups, WAIT, Workload, listen, seam_bin, shipped_rules, tenants_ab, two_tenants,
};

fn connect(cgroup: Option<&str>, comm: &str, addr: &str) -> u32 {
    let client = Workload::start(cgroup, comm, &["tcp-connect", "--addr", addr]);
    let pid = client.pid();
    client.finish();
    pid
}

fn rule_ids(agent: &Agent) -> Vec<String> {
    agent
        .violations()
        .iter()
        .map(|v| v["rule_id"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn shipped_cross_tenant_rule_flags_a_to_b_only() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let rules = format!("{}\n{}", tenants_ab(&cgroups), shipped_rules());
    let mut agent = Agent::start(&rules);
    let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    connect(Some(&a), "client-a", &format!("127.0.0.1:{}", web_a.port));
    let pid = connect(Some(&a), "client-a", &format!("127.0.0.1:{}", db_b.port));
    agent.wait_violations(1);
    web_a.workload.finish();
    db_b.workload.finish();
    agent.stop();
    assert_eq!(
        rule_ids(&agent),
        ["cross-tenant-network"],
        "{:#?}",
        agent.violations()
    );
    let v = &agent.violations()[0];
    assert_eq!(v["caller"]["pid"], pid, "{v}");
    assert_eq!(v["intended_tenant"], "a", "{v}");
    assert_eq!(v["actual_tenant"], "b", "{v}");
    assert_eq!(v["severity"], "high", "{v}");
}

#[test]
fn caller_outside_any_tenant_reaching_a_tenant_is_flagged() {
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    let b = cgroups.create("b");
    let outsider = cgroups.create("outsider");
    let rules = format!("{}\n{}", tenants_ab(&cgroups), shipped_rules());
    let mut agent = Agent::start(&rules);
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 1);
    connect(
        Some(&outsider),
        "outsider",
        &format!("127.0.0.1:{}", db_b.port),
    );
    // The kernel drops the outsider's end: the span is server-only, flagged after the
    // pairing window.
    agent.wait_violations(1);
    db_b.workload.finish();
    agent.stop();
    assert_eq!(
        rule_ids(&agent),
        ["outside-tenant-network"],
        "{:#?}",
        agent.violations()
    );
    let v = &agent.violations()[0];
    assert!(v["intended_tenant"].is_null(), "{v}");
    assert!(v["caller"]["tenant"].is_null(), "{v}");
    assert_eq!(v["actual_tenant"], "b", "{v}");
    assert_eq!(v["target"]["port"], db_b.port, "{v}");
    assert_eq!(v["target"]["process"]["comm"], "db-b", "{v}");
}

/// A network namespace holding 169.254.169.254 behind a veth pair; removed on drop.
struct MetadataNet {
    ns: String,
    host_if: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl MetadataNet {
    fn create() -> Self {
        let id = std::process::id() % 100_000;
        let net = Self {
            ns: format!("seam-it-md-{id}"),
            host_if: format!("smdh{id}"),
        };
        let peer_if = format!("smdp{id}");
        let (ns, host, peer) = (net.ns.as_str(), net.host_if.as_str(), peer_if.as_str());
        let steps: [&[&str]; 9] = [
            &["netns", "add", ns],
            &["link", "add", host, "type", "veth", "peer", "name", peer],
            &["link", "set", peer, "netns", ns],
            &["addr", "add", "169.254.0.1/16", "dev", host],
            &["link", "set", host, "up"],
            &["-n", ns, "addr", "add", "169.254.169.254/32", "dev", peer],
            &["-n", ns, "link", "set", peer, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
            &["-n", ns, "route", "add", "169.254.0.0/16", "dev", peer],
        ];
        for step in steps {
            assert!(ip(step), "ip {step:?} failed");
        }
        net
    }

    /// Whether the host routes 169.254.169.254 into our veth (and so not to a real metadata
    /// service of the cloud this machine runs in).
    fn routes_here(&self) -> bool {
        let out = Command::new("ip")
            .args(["route", "get", "169.254.169.254"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.contains(&format!("dev {} ", self.host_if))
    }

    /// `seam workload` inside the namespace.
    fn listen(&self, port_file: &str) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(seam_bin())
            .args(["workload", "--comm", "metadata", "tcp-listen"])
            .args([
                "--addr",
                "169.254.169.254:80",
                "--port-file",
                port_file,
                "--count",
                "1",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the metadata listener")
    }
}

impl Drop for MetadataNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth peer inside it, and so the pair.
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn tenant_reaching_the_cloud_metadata_endpoint_is_critical() {
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    cgroups.create("b");
    let net = MetadataNet::create();
    if !net.routes_here() {
        // Never send traffic anywhere but into the namespace this test created.
        eprintln!("skipped: 169.254.169.254 is not routed into the test namespace here");
        return;
    }
    let port_file = std::env::temp_dir().join(format!("seam-md-{}.port", std::process::id()));
    let _ = fs::remove_file(&port_file);
    let mut listener = net.listen(&port_file.to_string_lossy());
    let deadline = Instant::now() + WAIT;
    while !port_file.exists() {
        assert!(Instant::now() < deadline, "metadata listener did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = fs::remove_file(&port_file);
    let rules = format!("{}\n{}", tenants_ab(&cgroups), shipped_rules());
    let mut agent = Agent::start(&rules);
    let pid = connect(Some(&a), "client-a", "169.254.169.254:80");
    agent.wait_violations(1);
    let _ = listener.wait();
    agent.stop();
    assert_eq!(
        rule_ids(&agent),
        ["cloud-metadata-access"],
        "{:#?}",
        agent.violations()
    );
    let v = &agent.violations()[0];
    assert_eq!(v["severity"], "critical", "{v}");
    assert_eq!(v["caller"]["pid"], pid, "{v}");
    assert_eq!(v["target"]["addr"], "169.254.169.254", "{v}");
    assert_eq!(v["target"]["port"], 80, "{v}");
    assert!(v["actual_tenant"].is_null(), "{v}");
}

#[test]
fn reload_keeps_the_last_good_rules_and_applies_valid_changes() {
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let mut agent = Agent::start(&two_tenants(&cgroups, ""));
    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 3);

    // Invalid rules + SIGHUP: rejected, the old rule still flags.
    fs::write(
        agent.rules_file(),
        format!("{}\n[[rule]]\nid = \"broken\"\nseverity = \"high\"\ndescription = \"d\"\nexpr = \"trace.has(net.connect).where(peer.tenat != tenant)\"\n", tenants_ab(&cgroups)),
    )
    .unwrap();
    // SAFETY: signalling the agent we started.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
    agent.wait_until("the reload to be rejected", |a| {
        a.log().contains("rules reload rejected: 1 errors")
    });
    assert!(agent.log().contains("peer.tenat"), "{}", agent.log());
    connect(Some(&a), "client-a", &format!("127.0.0.1:{}", db_b.port));
    agent.wait_violations(1);
    assert_eq!(rule_ids(&agent), ["cross-tenant-network"]);

    // A valid change (a renamed rule) takes effect, picked up without a signal.
    let renamed = two_tenants(&cgroups, "").replace("cross-tenant-network", "renamed-rule");
    fs::write(agent.rules_file(), renamed).unwrap();
    agent.wait_until("the rules to be reloaded", |a| {
        a.log().contains("rules reloaded")
    });
    connect(Some(&a), "client-a", &format!("127.0.0.1:{}", db_b.port));
    agent.wait_violations(2);
    // And SIGHUP with valid rules reloads too (the agent keeps running).
    unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
    agent.wait_until("a second reload", |a| {
        a.log().matches("rules reloaded").count() >= 2
    });
    connect(Some(&a), "client-a", &format!("127.0.0.1:{}", db_b.port));
    agent.wait_violations(3);
    db_b.workload.finish();
    agent.stop();
    assert_eq!(
        rule_ids(&agent),
        ["cross-tenant-network", "renamed-rule", "renamed-rule"],
        "{:#?}",
        agent.violations()
    );
}
