//! Tenant (and rule id) errors: names, cgroup patterns, endpoints, namespaces and pod labels,
//! and what two tenants claim.

use super::super::{RULES, TENANTS, error, errors, line_col};

#[test]
fn duplicate_tenant_across_files_points_at_both() {
    let again = "[[tenant]]\nname = \"tenant-b\"\ncgroups = [\"other\"]\n";
    let err = error(&[
        ("tenants.toml", TENANTS),
        ("rules.toml", RULES),
        ("more.toml", again),
    ]);
    assert_eq!(err.path().to_str(), Some("more.toml"));
    assert_eq!(line_col(&err), (2, 8));
    assert_eq!(err.message(), "duplicate tenant \"tenant-b\"");
    assert!(
        err.hint().contains("already defined at tenants.toml:8:8"),
        "{err}"
    );
}

#[test]
fn duplicate_rule_and_invalid_identifiers() {
    let text = format!(
        "{RULES}\n[[rule]]\nid = \"cross-tenant-network\"\nexpr = \"trace.has(*)\"\n\
         severity = \"low\"\ndescription = \"again\"\n\n\
         [[rule]]\nid = \"Bad Rule\"\nexpr = \"trace.has(*)\"\nseverity = \"low\"\ndescription = \"\"\n"
    );
    let tenants = TENANTS.replace("name = \"tenant-b\"", "name = \"-tenant-b\"");
    let errs = errors(&[("tenants.toml", &tenants), ("rules.toml", &text)]);
    let msgs: Vec<String> = errs.iter().map(|e| e.message()).collect();
    assert_eq!(
        msgs,
        vec![
            "invalid tenant name \"-tenant-b\"",
            "duplicate rule \"cross-tenant-network\"",
            "invalid rule id \"Bad Rule\"",
        ]
    );
    assert_eq!(line_col(&errs[0]), (8, 8));
    assert!(errs[0].hint().contains("lowercase letters"), "{}", errs[0]);
    assert_eq!(line_col(&errs[1]), (9, 6));
    assert_eq!(line_col(&errs[2]), (15, 6));
}

#[test]
fn bad_cgroup_patterns() {
    let text = r#"
[[tenant]]
name = "a"
cgroups = ["/seam-demo/a", "seam-demo/[a", "", "shared/x", "seam/"]

[[tenant]]
name = "b"
cgroups = ["shared/x"]
"#;
    let errs = errors(&[("t.toml", text), ("r.toml", RULES)]);
    let found: Vec<((usize, usize), String)> =
        errs.iter().map(|e| (line_col(e), e.message())).collect();
    assert_eq!(found.len(), 5, "{found:#?}");
    assert_eq!(
        found[0],
        (
            (4, 12),
            "cgroup pattern \"/seam-demo/a\" starts with '/'".into()
        )
    );
    assert!(
        errs[0].hint().contains("write \"seam-demo/a\""),
        "{}",
        errs[0]
    );
    assert_eq!(found[1].0, (4, 28));
    assert!(
        found[1]
            .1
            .starts_with("invalid cgroup pattern \"seam-demo/[a\""),
        "{}",
        found[1].1
    );
    assert_eq!(found[2], ((4, 44), "empty cgroup pattern".into()));
    assert_eq!(
        found[3],
        ((4, 60), "cgroup pattern \"seam/\" ends with '/'".into())
    );
    assert_eq!(
        found[4],
        (
            (8, 12),
            "cgroup pattern \"shared/x\" is claimed by two tenants".into()
        )
    );
    assert!(
        errs[4].hint().contains("tenant \"a\" at t.toml:4:48"),
        "{}",
        errs[4]
    );
}

#[test]
fn bad_endpoints_point_at_the_string() {
    let text = r#"[[tenant]]
name = "a"
cgroups = ["a"]
endpoints = ["10.0.0.0/8", "10.0.0.300", "[2001:db8::1]443", "10.1.0.0/16:90-80"]
"#;
    let errs = errors(&[("t.toml", text), ("r.toml", RULES)]);
    let cols: Vec<(usize, usize)> = errs.iter().map(line_col).collect();
    assert_eq!(cols, vec![(4, 28), (4, 42), (4, 62)]);
    assert_eq!(
        errs[0].message(),
        "invalid endpoint \"10.0.0.300\": \"10.0.0.300\" is not an IP address or CIDR network"
    );
    assert!(errs[0].hint().contains("CIDR:lo-hi"), "{}", errs[0]);
    assert!(errs[1].message().contains("bracketed IPv6"), "{}", errs[1]);
    assert!(
        errs[2].message().contains("starts above its end"),
        "{}",
        errs[2]
    );
    assert_eq!(errs[0].location().map(|l| l.width), Some(12));
}

#[test]
fn endpoint_owned_by_two_tenants() {
    let text = r#"[[tenant]]
name = "a"
endpoints = ["10.0.0.0/8:80"]
cgroups = []

[[tenant]]
name = "b"
endpoints = ["10.1.2.3/8:80"]
cgroups = []
"#;
    let err = error(&[("t.toml", text), ("r.toml", RULES)]);
    assert_eq!(line_col(&err), (8, 14));
    assert_eq!(
        err.message(),
        "endpoint 10.0.0.0/8:80 is claimed by two tenants"
    );
}

#[test]
fn tenant_owning_nothing() {
    let text = "[[tenant]]\nname = \"ghost\"\ncgroups = []\n";
    let err = error(&[("t.toml", text), ("r.toml", RULES)]);
    assert_eq!(line_col(&err), (2, 8));
    assert_eq!(
        err.message(),
        "tenant \"ghost\" owns no cgroup, pod, endpoint or path"
    );
}

#[test]
fn kubernetes_tenants_need_valid_namespaces_and_label_keys() {
    let text = "[[tenant]]\nname = \"acme\"\nnamespaces = [\"acme-*\", \"Acme/x\"]\n";
    let err = error(&[("t.toml", text), ("r.toml", RULES)]);
    assert_eq!(line_col(&err), (3, 25));
    assert!(
        err.message()
            .starts_with("invalid namespace pattern \"Acme/x\""),
        "{}",
        err.message()
    );
    let text = "[[tenant]]\nname = \"acme\"\npod_labels = { \"\" = \"x\" }\n";
    let err = error(&[("t.toml", text), ("r.toml", RULES)]);
    assert_eq!(err.message(), "invalid pod label key \"\"");
}
