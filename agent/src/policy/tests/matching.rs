//! Cgroup, endpoint and allow matching; value parsing.

use super::{
    super::{
        RuleSet,
        model::{Endpoint, PortRange, ValueError},
    },
    RULES, ip, load,
};
use crate::model::vocab::{Severity, Transport};

fn tenants(spec: &[(&str, &str)]) -> String {
    spec.iter()
        .map(|(name, cgroups)| format!("[[tenant]]\nname = \"{name}\"\ncgroups = {cgroups}\n\n"))
        .collect()
}

fn owner(set: &RuleSet, path: &str) -> Option<String> {
    set.tenant_for_cgroup(path).map(|t| t.name.to_string())
}

fn endpoint(s: &str) -> Endpoint {
    match s.parse() {
        Ok(e) => e,
        Err(e) => panic!("{s}: {e}"),
    }
}

#[test]
fn cgroup_nearest_matching_ancestor_wins() {
    let text = tenants(&[
        ("a", r#"["seam-demo/tenant-a"]"#),
        (
            "b",
            r#"["seam-demo/tenant-b", "seam-demo/tenant-a/borrowed"]"#,
        ),
    ]);
    let set = load(&[("t.toml", &text), ("r.toml", RULES)]);
    assert_eq!(owner(&set, "seam-demo/tenant-a").as_deref(), Some("a"));
    assert_eq!(
        owner(&set, "seam-demo/tenant-a/web/worker").as_deref(),
        Some("a")
    );
    assert_eq!(
        owner(&set, "/seam-demo/tenant-a/web/").as_deref(),
        Some("a")
    );
    assert_eq!(
        owner(&set, "seam-demo/tenant-a/borrowed").as_deref(),
        Some("b")
    );
    assert_eq!(
        owner(&set, "seam-demo/tenant-a/borrowed/x").as_deref(),
        Some("b")
    );
    assert_eq!(owner(&set, "seam-demo/tenant-b/x").as_deref(), Some("b"));
    assert_eq!(owner(&set, "seam-demo"), None);
    assert_eq!(owner(&set, "seam-demo/tenant-ab"), None);
    assert_eq!(owner(&set, "other/seam-demo/tenant-a"), None);
    assert_eq!(owner(&set, ""), None);
    assert_eq!(owner(&set, "/"), None);
}

#[test]
fn cgroup_deeper_match_beats_load_order() {
    // The deeper pattern is defined last, and still wins below it.
    let text = tenants(&[
        ("outer", r#"["t.slice"]"#),
        ("inner", r#"["t.slice/inner.slice"]"#),
    ]);
    let set = load(&[("t.toml", &text), ("r.toml", RULES)]);
    assert_eq!(
        owner(&set, "t.slice/inner.slice/x.scope").as_deref(),
        Some("inner")
    );
    assert_eq!(
        owner(&set, "t.slice/other.slice/x.scope").as_deref(),
        Some("outer")
    );
}

#[test]
fn cgroup_globs() {
    let text = tenants(&[
        ("globex", r#"["tenants.slice/tenant-globex*.slice"]"#),
        ("pods", r#"["kube/*/pod-?"]"#),
        ("deep", r#"["deep/**/leaf"]"#),
        ("alt", r#"["{x,y}.slice/[0-9]"]"#),
    ]);
    let set = load(&[("t.toml", &text), ("r.toml", RULES)]);
    let o = |p| owner(&set, p);
    assert_eq!(
        o("tenants.slice/tenant-globex-prod.slice/pod.scope").as_deref(),
        Some("globex")
    );
    assert_eq!(
        o("tenants.slice/tenant-globex.slice").as_deref(),
        Some("globex")
    );
    assert_eq!(o("tenants.slice/tenant-acme.slice"), None);
    // `*` stays within one component.
    assert_eq!(o("tenants.slice/tenant-globex/x.slice"), None);
    assert_eq!(o("kube/ns1/pod-1/c").as_deref(), Some("pods"));
    assert_eq!(o("kube/ns1/extra/pod-1"), None);
    assert_eq!(o("kube/ns1/pod-12"), None);
    // `**` crosses components.
    assert_eq!(o("deep/a/b/c/leaf/x").as_deref(), Some("deep"));
    assert_eq!(o("deep/leaf").as_deref(), Some("deep"));
    assert_eq!(o("y.slice/7/z").as_deref(), Some("alt"));
    assert_eq!(o("z.slice/7"), None);
}

#[test]
fn cgroup_overlap_at_equal_depth_goes_to_first_tenant() {
    let text = tenants(&[("first", r#"["pool/*"]"#), ("second", r#"["pool/blue"]"#)]);
    let set = load(&[("t.toml", &text), ("r.toml", RULES)]);
    assert_eq!(owner(&set, "pool/blue/x").as_deref(), Some("first"));
    assert_eq!(owner(&set, "pool/green").as_deref(), Some("first"));
}

#[test]
fn endpoint_forms() {
    // (text, network, port range)
    type Case<'a> = (&'a str, &'a str, Option<(u16, u16)>);
    let cases: &[Case] = &[
        ("10.20.0.0/16", "10.20.0.0/16", None),
        ("10.20.9.9/16", "10.20.0.0/16", None),
        ("192.0.2.10", "192.0.2.10/32", None),
        ("192.0.2.10:5432", "192.0.2.10/32", Some((5432, 5432))),
        ("10.9.0.0/16:8000-8100", "10.9.0.0/16", Some((8000, 8100))),
        ("[2001:db8::/32]:443", "2001:db8::/32", Some((443, 443))),
        ("[2001:db8::1]:53", "2001:db8::1/128", Some((53, 53))),
        ("[2001:db8::1]", "2001:db8::1/128", None),
        ("[2001:db8::/32]:1-1024", "2001:db8::/32", Some((1, 1024))),
        ("2001:db8::1", "2001:db8::1/128", None),
        ("2001:db8::/32", "2001:db8::/32", None),
        ("::ffff:10.1.0.0/112", "10.1.0.0/16", None),
        ("[::ffff:192.0.2.1]:80", "192.0.2.1/32", Some((80, 80))),
        (" 10.0.0.1:22 ", "10.0.0.1/32", Some((22, 22))),
    ];
    for &(text, net, ports) in cases {
        let e = endpoint(text);
        assert_eq!(e.net.to_string(), net, "{text}");
        assert_eq!(e.ports.map(|p| (p.lo, p.hi)), ports, "{text}");
        // Display round-trips.
        assert_eq!(endpoint(&e.to_string()), e, "{text} -> {e}");
    }
    assert_eq!(
        endpoint("[2001:db8::/32]:443").to_string(),
        "[2001:db8::/32]:443"
    );
    assert_eq!(endpoint("192.0.2.10:5432").to_string(), "192.0.2.10:5432");
}

#[test]
fn endpoint_errors() {
    let cases: &[(&str, ValueError)] = &[
        ("10.0.0.256", ValueError::Address("10.0.0.256".into())),
        ("10.0.0.0/33", ValueError::Address("10.0.0.0/33".into())),
        ("db.example:5432", ValueError::Address("db.example".into())),
        ("", ValueError::Address(String::new())),
        ("10.0.0.1:0", ValueError::Port("0".into())),
        ("10.0.0.1:70000", ValueError::Port("70000".into())),
        ("10.0.0.1:+80", ValueError::Port("+80".into())),
        ("10.0.0.1:", ValueError::Port(String::new())),
        (
            "10.0.0.0/8:90-80",
            ValueError::ReversedRange("90-80".into()),
        ),
        ("10.0.0.0/8:1-x", ValueError::Port("1-x".into())),
        ("[2001:db8::1", ValueError::Brackets("[2001:db8::1".into())),
        (
            "[2001:db8::1]443",
            ValueError::Brackets("[2001:db8::1]443".into()),
        ),
        (
            "[10.0.0.1]:80",
            ValueError::Brackets("[10.0.0.1]:80".into()),
        ),
        (
            "2001:db8::1:443:x",
            ValueError::Address("2001:db8::1:443:x".into()),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<Endpoint>().as_ref(), Err(expected), "{text:?}");
    }
}

#[test]
fn endpoint_contains_matches_mapped_ipv4() {
    let e = endpoint("10.9.0.0/16:8000-8100");
    assert!(e.contains(ip("10.9.3.4"), 8000));
    assert!(e.contains(ip("10.9.3.4"), 8100));
    assert!(!e.contains(ip("10.9.3.4"), 8101));
    assert!(!e.contains(ip("10.10.0.1"), 8050));
    assert!(e.contains(ip("::ffff:10.9.3.4"), 8050));
    assert!(!e.contains(ip("::10.9.3.4"), 8050));
    let v6 = endpoint("[2001:db8::/32]:443");
    assert!(v6.contains(ip("2001:db8:1::5"), 443));
    assert!(!v6.contains(ip("2001:db9::5"), 443));
}

#[test]
fn tenant_for_endpoint_prefers_longest_prefix_then_ports() {
    let text = r#"
[[tenant]]
name = "wide"
cgroups = []
endpoints = ["10.0.0.0/8", "2001:db8::/32"]

[[tenant]]
name = "ported"
cgroups = []
endpoints = ["10.1.0.0/16:443", "10.2.0.0/16:1-1024"]

[[tenant]]
name = "narrow"
cgroups = []
endpoints = ["10.1.0.0/16", "10.2.0.0/16:80", "[2001:db8:5::/48]:443"]
"#;
    let set = load(&[("t.toml", text), ("r.toml", RULES)]);
    let o = |addr: &str, port| {
        set.tenant_for_endpoint(ip(addr), port)
            .map(|t| t.name.to_string())
    };
    assert_eq!(o("10.200.0.1", 80).as_deref(), Some("wide"));
    assert_eq!(o("10.1.2.3", 443).as_deref(), Some("ported"));
    assert_eq!(o("10.1.2.3", 80).as_deref(), Some("narrow"));
    // Equal prefix, both port-specific: the narrower range wins.
    assert_eq!(o("10.2.0.1", 80).as_deref(), Some("narrow"));
    assert_eq!(o("10.2.0.1", 81).as_deref(), Some("ported"));
    assert_eq!(o("10.2.0.1", 2000).as_deref(), Some("wide"));
    assert_eq!(o("::ffff:10.1.2.3", 443).as_deref(), Some("ported"));
    assert_eq!(o("2001:db8:5::1", 443).as_deref(), Some("narrow"));
    assert_eq!(o("2001:db8:5::1", 444).as_deref(), Some("wide"));
    assert_eq!(o("192.0.2.1", 443), None);
    assert_eq!(o("::1", 443), None);
}

#[test]
fn rules_of_kind_and_value_types() {
    let set = load(&[
        ("t.toml", &tenants(&[("a", r#"["a"]"#)])),
        ("r.toml", RULES),
    ]);
    assert_eq!(set.rules.len(), 1);
    assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
    assert_eq!(Severity::Medium.to_string(), "medium");
    assert_eq!(Transport::Udp.to_string(), "udp");
    assert_eq!(
        toml::Value::try_from(Severity::Critical).ok(),
        Some(toml::Value::from("critical"))
    );
    assert_eq!(
        toml::Value::try_from(Transport::Tcp).ok(),
        Some(toml::Value::from("tcp"))
    );
    let range: Result<PortRange, _> = "8000-8100".parse();
    assert_eq!(range, Ok(PortRange { lo: 8000, hi: 8100 }));
    assert_eq!(
        range.map(|r| (r.contains(7999), r.contains(8050), r.len(), r.to_string())),
        Ok((false, true, 101, "8000-8100".to_owned()))
    );
    assert_eq!(PortRange::single(53).to_string(), "53");
}
