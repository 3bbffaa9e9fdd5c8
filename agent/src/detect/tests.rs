//! Detection on fixture spans: each shipped rule, allow entries, and the violation record.
use std::path::Path;

use super::{Detector, Target, allow::allowed};
use crate::{
    model::{
        fixtures::{connection, file, process, shared, tcp, tenant},
        spans::{SpanBody, TenantRef},
        vocab::{FileOp, Transport},
    },
    policy::{RuleSet, lang::Family},
};

const TENANTS: &str = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]
paths = ["/srv/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]
endpoints = ["192.0.2.0/24"]
paths = ["/srv/b"]

[[tenant]]
name = "logs"
cgroups = []
paths = ["/var/log/audit"]
shared = true
"#;

fn a() -> Option<TenantRef> {
    Some(tenant("a"))
}

fn b() -> Option<TenantRef> {
    Some(tenant("b"))
}

fn shipped() -> RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/shipped");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files.push(("tenants.toml".into(), TENANTS.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    RuleSet::from_sources(&refs).unwrap_or_else(|e| panic!("{e}"))
}

/// Ids of the shipped rules `span` violates.
fn fired(span: &crate::model::spans::Span) -> Vec<String> {
    let set = shipped();
    Detector::new("n".into())
        .evaluate(span, &set)
        .into_iter()
        .map(|v| v.rule_id)
        .collect()
}

#[test]
fn shipped_network_rules() {
    assert_eq!(fired(&tcp(a(), b(), 5432)), ["cross-tenant-network"]);
    assert!(fired(&tcp(a(), a(), 5432)).is_empty());
    let udp = connection(
        Transport::Udp,
        Some(process(a(), "c")),
        Some(process(b(), "s")),
        "127.0.0.1:1",
        "127.0.0.1:53",
        None,
    );
    assert_eq!(fired(&udp), ["cross-tenant-network"]);
    // Off-node endpoint of b.
    let client = || Some(process(a(), "c"));
    let off = connection(
        Transport::Tcp,
        client(),
        None,
        "10.9.9.9:1",
        "192.0.2.9:443",
        b(),
    );
    assert_eq!(fired(&off), ["cross-tenant-network"]);
    // A local process outside every tenant reaching b's listener (server-only span).
    let outsider = connection(
        Transport::Tcp,
        None,
        Some(process(b(), "db")),
        "127.0.0.1:5",
        "127.0.0.1:80",
        None,
    );
    assert_eq!(fired(&outsider), ["outside-tenant-network"]);
    // The same from another host is not flagged.
    let inbound = connection(
        Transport::Tcp,
        None,
        Some(process(b(), "db")),
        "198.51.100.1:5",
        "10.9.9.9:80",
        None,
    );
    assert!(fired(&inbound).is_empty());
    let metadata = connection(
        Transport::Tcp,
        client(),
        None,
        "10.9.9.9:1",
        "169.254.169.254:80",
        None,
    );
    assert_eq!(fired(&metadata), ["cloud-metadata-access"]);
    let host = connection(
        Transport::Tcp,
        client(),
        None,
        "127.0.0.1:1",
        "127.0.0.1:10250",
        None,
    );
    assert_eq!(fired(&host), ["node-host-access"]);
    let internet = connection(
        Transport::Tcp,
        client(),
        None,
        "10.9.9.9:1",
        "198.51.100.1:443",
        None,
    );
    assert!(fired(&internet).is_empty());
}

#[test]
fn shipped_file_rules() {
    assert_eq!(
        fired(&file(a(), "/srv/b/db/x", FileOp::Read, b())),
        ["cross-tenant-file"]
    );
    assert!(fired(&file(a(), "/srv/a/x", FileOp::Write, a())).is_empty());
    assert!(fired(&file(a(), "/srv/bb", FileOp::Write, None)).is_empty());
    assert_eq!(
        fired(&file(None, "/srv/a/x", FileOp::Read, a())),
        ["outside-tenant-file"]
    );
    let logs = Some(shared("logs"));
    assert_eq!(
        fired(&file(
            a(),
            "/var/log/audit/a.log",
            FileOp::Delete,
            logs.clone()
        )),
        ["shared-file-tamper"]
    );
    assert!(fired(&file(a(), "/var/log/audit/a.log", FileOp::Read, logs)).is_empty());
}

#[test]
fn violation_names_tenants_caller_target_and_ids() {
    let set = shipped();
    let span = tcp(a(), b(), 5432);
    let v = Detector::new("node-1".into())
        .evaluate(&span, &set)
        .pop()
        .expect("a violation");
    assert_eq!((v.trace_id, v.span_id), (span.trace_id, span.span_id));
    assert_eq!(v.kind, Family::Network);
    assert_eq!(v.intended_tenant.as_ref().map(|t| t.as_str()), Some("a"));
    assert_eq!(v.actual_tenant.as_ref().map(|t| t.as_str()), Some("b"));
    assert_eq!(v.caller.as_ref().map(|c| &*c.comm), Some("client"));
    assert!(matches!(v.target, Target::Network { port: 5432, .. }));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["kind"], "network");
    assert_eq!(json["target"]["process"]["comm"], "server");
    assert_eq!(json["trace_id"], span.trace_id.to_hex());
    assert!(json.get("aggregate").is_none());
    assert!(
        v.message
            .contains("a process client (pid 42) opened a tcp connection to b's"),
        "{}",
        v.message
    );
}

const POLICY: &str = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]

[[tenant]]
name = "c"
cgroups = ["t/c"]

[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "d"
expr = "trace.has(net.*)"

[[rule]]
id = "other"
severity = "low"
description = "d"
expr = "trace.has(net.*)"

[[allow]]
rule = "cross-tenant-network"
from = "a"
to = "b"
ports = [5432, "8000-8100"]
protocols = ["tcp"]
reason = "first"

[[allow]]
from = "*"
to = "c"
protocols = ["udp"]
reason = "dns"

[[allow]]
rule = "other"
from = "c"
to = "*"
reason = "c may"
"#;

#[test]
fn allows_match_rule_tenants_ports_and_protocols() {
    let set = RuleSet::from_sources(&[("p.toml", POLICY)]).unwrap_or_else(|e| panic!("{e}"));
    let r = |rule, from: &str, to: &str, port, transport| {
        let mut span = tcp(Some(tenant(from)), Some(tenant(to)), port);
        if let SpanBody::Connection(c) = &mut span.body {
            c.transport = transport;
        }
        allowed(&set.allows, rule, &span).map(|x| x.reason.clone())
    };
    let net = "cross-tenant-network";
    let first = Some("first".to_owned());
    assert_eq!(r(net, "a", "b", 5432, Transport::Tcp), first);
    assert_eq!(r(net, "a", "b", 8100, Transport::Tcp), first);
    assert_eq!(r(net, "a", "b", 8101, Transport::Tcp), None);
    assert_eq!(r(net, "a", "b", 5432, Transport::Udp), None);
    assert_eq!(r(net, "b", "a", 5432, Transport::Tcp), None);
    assert_eq!(r("other", "a", "b", 5432, Transport::Tcp), None);
    // No `rule`, any source, any port.
    let dns = Some("dns".to_owned());
    assert_eq!(r(net, "a", "c", 53, Transport::Udp), dns);
    assert_eq!(r("other", "b", "c", 1, Transport::Udp), dns);
    assert_eq!(r(net, "b", "c", 53, Transport::Tcp), None);
    // Wildcard destination, rule-specific.
    assert_eq!(
        r("other", "c", "a", 22, Transport::Tcp),
        Some("c may".to_owned())
    );
    assert_eq!(r(net, "c", "a", 22, Transport::Tcp), None);
    // First match wins.
    assert_eq!(r("other", "c", "c", 53, Transport::Udp), dns);
}

#[test]
fn rules_choose_intended_and_actual_tenants() {
    let rules = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]

[[rule]]
id = "reversed"
severity = "low"
description = "d"
expr = "trace.has(net.*)"
intended = "peer.tenant"
actual = "tenant"
"#;
    let set = RuleSet::from_sources(&[("r.toml", rules)]).unwrap_or_else(|e| panic!("{e}"));
    let v = Detector::new("n".into())
        .evaluate(&tcp(a(), b(), 1), &set)
        .pop()
        .expect("a violation");
    assert_eq!(
        v.intended_tenant.map(|t| t.to_string()).as_deref(),
        Some("b")
    );
    assert_eq!(v.actual_tenant.map(|t| t.to_string()).as_deref(), Some("a"));
}

#[test]
fn count_rules_fire_once_per_excess_per_group() {
    let rules = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]

[[rule]]
id = "rate"
severity = "low"
description = "d"
window = "10s"
expr = "trace.count(net.connect) > 2"
"#;
    let set = RuleSet::from_sources(&[("r.toml", rules)]).unwrap_or_else(|e| panic!("{e}"));
    let mut detector = Detector::new("n".into());
    let at = |from: &str, secs: i64| {
        let mut span = tcp(Some(tenant(from)), b(), 1);
        span.start = crate::model::spans::UnixNanos(secs * 1_000_000_000);
        span
    };
    let mut fired = |from: &str, secs: i64| detector.evaluate(&at(from, secs), &set).len();
    assert_eq!(fired("a", 0), 0);
    assert_eq!(fired("a", 1), 0);
    assert_eq!(fired("b", 1), 0, "b is counted apart");
    assert_eq!(fired("a", 2), 1, "the third of a within 10 s");
    assert_eq!(fired("a", 3), 0, "once per excess");
    // 10 s later the window holds one span: the count fell back, the rule re-arms.
    assert_eq!(fired("a", 20), 0);
    assert_eq!(fired("a", 21), 0);
    assert_eq!(fired("a", 22), 1);
}

#[test]
fn window_and_group_by_belong_to_count_rules() {
    let bad = |extra: &str, expr: &str| {
        let text = format!(
            "[[tenant]]\nname = \"a\"\ncgroups = [\"a\"]\n[[rule]]\nid = \"r\"\nseverity = \"low\"\ndescription = \"d\"\nexpr = \"{expr}\"\n{extra}"
        );
        RuleSet::from_sources(&[("r.toml", text.as_str())])
            .err()
            .map(|e| e.to_string())
    };
    let missing = bad("", "trace.count(net.*) > 1").expect("needs a window");
    assert!(missing.contains("needs a `window`"), "{missing}");
    let stray = bad("window = \"5s\"", "trace.has(net.*)").expect("window without count");
    assert!(stray.contains("without a `trace.count"), "{stray}");
    let unit = bad("window = \"5d\"", "trace.count(net.*) > 1").expect("bad unit");
    assert!(unit.contains("invalid window"), "{unit}");
    let group = bad(
        "window = \"5s\"\ngroup_by = \"file.path\"",
        "trace.count(net.*) > 1",
    )
    .expect("group_by not on net spans");
    assert!(group.contains("group_by"), "{group}");
    assert!(bad("window = \"1m\"", "trace.count(net.*) > 1").is_none());
}
