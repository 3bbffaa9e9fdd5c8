//! Evaluation of compiled expressions.
use super::fixtures::{Fake, Owned, matches, tcp};
use crate::policy::lang::{Attr, SpanName};

#[test]
fn comparisons_and_null() {
    let ab = tcp(Some("a"), Some("b"), false, 5432);
    let cross = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)";
    assert!(matches(cross, &ab));
    assert!(!matches(cross, &tcp(Some("a"), Some("a"), false, 1)));
    assert!(!matches(cross, &tcp(Some("a"), Some("dns"), true, 53)));
    assert!(!matches(cross, &tcp(None, Some("b"), false, 1)));
    // null == null; `!=` is the negation of `==`.
    let inbound = tcp(None, Some("b"), false, 1);
    assert!(matches(
        "trace.has(net.connect).where(peer.tenant != tenant)",
        &inbound
    ));
    assert!(matches(
        "trace.has(net.connect).where(tenant == null)",
        &inbound
    ));
    assert!(!matches("trace.has(net.flow)", &ab));
    assert!(matches(
        "trace.has(net.connect).where(peer.port > 5000 and peer.port <= 5432)",
        &ab
    ));
    let no_pid = Fake::new(SpanName::NetConnect);
    assert!(!matches(
        "trace.has(net.connect).where(process.pid < 0)",
        &no_pid
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

#[test]
fn application_spans() {
    let app = Fake::new(SpanName::AppClient)
        .str(Attr::DeclaredTenant, "a")
        .str(Attr::Tenant, "a")
        .str(Attr::PeerTenant, "b")
        .with(Attr::PeerShared, Owned::Bool(false));
    let mismatch = "trace.has(app.client).where(declared.tenant != null and peer.tenant != null and declared.tenant != peer.tenant and not peer.shared)";
    assert!(matches(mismatch, &app));
    assert!(!matches(mismatch, &app.clone().str(Attr::PeerTenant, "a")));
    assert!(matches("trace.has(app.*)", &app));
    assert!(!matches("trace.has(net.*)", &app));
    // Application attributes.
    let cache = app
        .clone()
        .app_attr("db.system", "redis")
        .app_attr("db.query.text", "GET b:user:1");
    let unscoped = "trace.has(app.client).where(attr(\"db.system\") in [\"redis\"] and not (attr(\"db.query.text\") contains declared.tenant))";
    assert!(matches(unscoped, &cache), "key of b under a's declaration");
    let scoped = app
        .clone()
        .app_attr("db.system", "redis")
        .app_attr("db.query.text", "GET a:user:1");
    assert!(!matches(unscoped, &scoped));
    assert!(
        !matches(unscoped, &app),
        "no db.system: attr(...) is null, not in the list"
    );
}
