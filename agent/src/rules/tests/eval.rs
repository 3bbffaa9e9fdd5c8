//! Evaluation of compiled expressions on connection spans.
use crate::{
    config::TenantId,
    events::Transport,
    rules::{
        Attr, CompileEnv, LocalAddrs, SpanView, Value, compile,
        tests::fixtures::{caller, connection, ctx, rule_set, tcp},
    },
};

const TENANTS: &str = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]
endpoints = ["192.0.2.0/24"]

[[tenant]]
name = "dns"
cgroups = ["t/dns"]
shared = true

[[rule]]
id = "r"
severity = "low"
description = "d"
expr = "trace.has(*)"
"#;

const A: Option<TenantId> = Some(TenantId(0));
const B: Option<TenantId> = Some(TenantId(1));
const DNS: Option<TenantId> = Some(TenantId(2));

fn matches(expr: &str, span: &crate::correlation::ConnectionSpan) -> bool {
    let set = rule_set(&[("t.toml", TENANTS)]);
    let names = ["a", "b", "dns"];
    let m = compile(
        expr,
        &CompileEnv {
            tenants: Some(&names),
        },
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let local = LocalAddrs::new(vec!["10.9.9.9".parse().unwrap()]);
    m.matches(span, &ctx(&set, &local))
}

#[test]
fn connection_attributes() {
    let set = rule_set(&[("t.toml", TENANTS)]);
    let local = LocalAddrs::new(vec!["10.9.9.9".parse().unwrap()]);
    let c = ctx(&set, &local);
    let span = tcp(A, B, 5432);
    assert_eq!(span.get(Attr::Tenant, &c), Value::Str("a"));
    assert_eq!(span.get(Attr::PeerTenant, &c), Value::Str("b"));
    assert_eq!(span.get(Attr::PeerShared, &c), Value::Bool(false));
    assert_eq!(span.get(Attr::PeerPort, &c), Value::Int(5432));
    assert_eq!(span.get(Attr::PeerLocal, &c), Value::Bool(true));
    assert_eq!(span.get(Attr::PeerProcessComm, &c), Value::Str("server"));
    assert_eq!(span.get(Attr::NetProtocol, &c), Value::Str("tcp"));
    assert_eq!(span.get(Attr::ProcessComm, &c), Value::Str("client"));
    assert_eq!(span.get(Attr::ProcessPid, &c), Value::Int(42));
    assert_eq!(span.get(Attr::FilePath, &c), Value::Null);

    // Off-node destination: the tenant comes from `endpoints`.
    let off = connection(
        Transport::Tcp,
        Some(caller(A, "c")),
        None,
        "10.9.9.9:1",
        "192.0.2.7:443",
    );
    assert_eq!(off.get(Attr::PeerTenant, &c), Value::Str("b"));
    assert_eq!(off.get(Attr::PeerLocal, &c), Value::Bool(false));
    assert_eq!(off.get(Attr::PeerProcessComm, &c), Value::Null);
    // To this node's own address: local.
    let host = connection(
        Transport::Tcp,
        Some(caller(A, "c")),
        None,
        "10.9.9.9:1",
        "10.9.9.9:22",
    );
    assert_eq!(host.get(Attr::PeerLocal, &c), Value::Bool(true));
    assert_eq!(host.get(Attr::PeerTenant, &c), Value::Null);

    // Server-only (the client is in no tenant): no caller attributes.
    let inbound = connection(
        Transport::Tcp,
        None,
        Some(caller(B, "db")),
        "127.0.0.1:5",
        "127.0.0.1:80",
    );
    assert_eq!(inbound.get(Attr::Tenant, &c), Value::Null);
    assert_eq!(inbound.get(Attr::ProcessPid, &c), Value::Null);
    assert_eq!(inbound.get(Attr::CallerLocal, &c), Value::Bool(true));
    assert_eq!(inbound.get(Attr::PeerTenant, &c), Value::Str("b"));
    let remote = connection(
        Transport::Tcp,
        None,
        Some(caller(B, "db")),
        "198.51.100.1:5",
        "10.9.9.9:80",
    );
    assert_eq!(remote.get(Attr::CallerLocal, &c), Value::Bool(false));

    // A tenant id from an older rule set is null, never a panic.
    let stale = tcp(Some(TenantId(99)), B, 1);
    assert_eq!(stale.get(Attr::Tenant, &c), Value::Null);
}

#[test]
fn comparisons_and_null() {
    let ab = tcp(A, B, 5432);
    let cross = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)";
    assert!(matches(cross, &ab));
    assert!(!matches(cross, &tcp(A, A, 1)));
    assert!(!matches(cross, &tcp(A, DNS, 53)));
    assert!(!matches(cross, &tcp(None, B, 1)));
    // null == null; `!=` is the negation of `==`.
    assert!(matches(
        "trace.has(net.connect).where(peer.tenant != tenant)",
        &tcp(None, B, 1)
    ));
    assert!(matches(
        "trace.has(net.connect).where(tenant == null)",
        &tcp(None, B, 1)
    ));
    assert!(!matches("trace.has(net.flow)", &ab));
    assert!(matches(
        "trace.has(net.connect).where(peer.port > 5000 and peer.port <= 5432)",
        &ab
    ));
    assert!(!matches(
        "trace.has(net.connect).where(process.pid < 0)",
        &tcp(None, B, 1)
    ));
    assert!(matches(
        "trace.has(net.connect).where(peer.port in [1, 5432])",
        &ab
    ));
    assert!(matches(
        "trace.has(net.connect).where(peer.addr in [\"127.0.0.0/8\"])",
        &ab
    ));
    assert!(matches(
        "trace.has(net.connect).where(peer.addr == \"::ffff:127.0.0.1\")",
        &ab
    ));
    assert!(matches(
        "trace.has(net.connect).where(cgroup.path starts_with \"t/\")",
        &ab
    ));
    assert!(matches(
        "trace.has(net.connect).where(process.comm contains \"lien\")",
        &ab
    ));
    assert!(!matches(
        "trace.has(net.connect).where(process.comm contains \"zz\")",
        &ab
    ));
    assert!(matches(
        "trace.has(file.open) or trace.has(net.connect).where(peer.local)",
        &ab
    ));
    assert!(matches("not trace.has(file.open)", &ab));
    assert!(matches(
        "trace.has(net.connect).where(tenant in [\"b\", \"a\"])",
        &ab
    ));
}
