//! Each shipped rule (rules/shipped/) against fixture spans: which rules fire.
use std::path::Path;

use crate::{
    config::{RuleSet, TenantId},
    correlation::{
        FileSpan, SpanId, TraceId,
        file::{FileAccess, FilePath, Outcome, PathConfidence},
    },
    detect::Evidence,
    events::Transport,
    rules::{
        LocalAddrs,
        tests::fixtures::{caller, connection, ctx, tcp},
    },
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

const A: Option<TenantId> = Some(TenantId(0));
const B: Option<TenantId> = Some(TenantId(1));

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
fn fired<S: Evidence + ?Sized>(span: &S) -> Vec<String> {
    let set = shipped();
    let local = LocalAddrs::new(vec!["10.9.9.9".parse().unwrap()]);
    let c = ctx(&set, &local);
    set.rules
        .iter()
        .filter(|r| r.matcher.matches(span, &c) && set.allowed(&r.id, span, &c).is_none())
        .map(|r| r.id.clone())
        .collect()
}

fn file(tenant: Option<TenantId>, path: &str, access: FileAccess) -> FileSpan {
    FileSpan {
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        start_ns: 1,
        caller: caller(tenant, "app"),
        access,
        outcome: Outcome::Ok,
        ret: 0,
        path: FilePath {
            path: path.to_owned(),
            confidence: PathConfidence::Full,
            truncated: false,
        },
        role: None,
    }
}

#[test]
fn shipped_network_rules() {
    assert_eq!(fired(&tcp(A, B, 5432)), ["cross-tenant-network"]);
    assert!(fired(&tcp(A, A, 5432)).is_empty());
    let udp = connection(
        Transport::Udp,
        Some(caller(A, "c")),
        Some(caller(B, "s")),
        "127.0.0.1:1",
        "127.0.0.1:53",
    );
    assert_eq!(fired(&udp), ["cross-tenant-network"]);
    // Off-node endpoint of b.
    let off = connection(
        Transport::Tcp,
        Some(caller(A, "c")),
        None,
        "10.9.9.9:1",
        "192.0.2.9:443",
    );
    assert_eq!(fired(&off), ["cross-tenant-network"]);
    // A local process outside every tenant reaching b's listener (server-only span).
    let outsider = connection(
        Transport::Tcp,
        None,
        Some(caller(B, "db")),
        "127.0.0.1:5",
        "127.0.0.1:80",
    );
    assert_eq!(fired(&outsider), ["outside-tenant-network"]);
    // The same from another host is not flagged.
    let inbound = connection(
        Transport::Tcp,
        None,
        Some(caller(B, "db")),
        "198.51.100.1:5",
        "10.9.9.9:80",
    );
    assert!(fired(&inbound).is_empty());
    let metadata = connection(
        Transport::Tcp,
        Some(caller(A, "c")),
        None,
        "10.9.9.9:1",
        "169.254.169.254:80",
    );
    assert_eq!(fired(&metadata), ["cloud-metadata-access"]);
    let host = connection(
        Transport::Tcp,
        Some(caller(A, "c")),
        None,
        "127.0.0.1:1",
        "127.0.0.1:10250",
    );
    assert_eq!(fired(&host), ["node-host-access"]);
    let internet = connection(
        Transport::Tcp,
        Some(caller(A, "c")),
        None,
        "10.9.9.9:1",
        "198.51.100.1:443",
    );
    assert!(fired(&internet).is_empty());
}

#[test]
fn shipped_file_rules() {
    assert_eq!(
        fired(&file(A, "/srv/b/db/x", FileAccess::Read)),
        ["cross-tenant-file"]
    );
    assert!(fired(&file(A, "/srv/a/x", FileAccess::Write)).is_empty());
    assert!(fired(&file(A, "/srv/bb", FileAccess::Write)).is_empty());
    assert_eq!(
        fired(&file(None, "/srv/a/x", FileAccess::Read)),
        ["outside-tenant-file"]
    );
    assert_eq!(
        fired(&file(A, "/var/log/audit/a.log", FileAccess::Delete)),
        ["shared-file-tamper"]
    );
    assert!(fired(&file(A, "/var/log/audit/a.log", FileAccess::Read)).is_empty());
}
