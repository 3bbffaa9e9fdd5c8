//! Every error kind, with its location and message.

use super::{
    super::{ConfigError, ConfigErrors, error::Location},
    RULES, TENANTS, error, errors, line_col,
};

fn with_policy(policy: &str) -> ConfigError {
    error(&[("tenants.toml", TENANTS), ("policy.toml", policy)])
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let err = error(&[("t.toml", "[[tenant]]\nname = \"a\ncgroups = []\n")]);
    assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    assert_eq!(line_col(&err).0, 2);
    assert!(err.to_string().starts_with("t.toml:2:"), "{err}");
    assert_eq!(
        err.location().map(|l| l.source_line.as_str()),
        Some("name = \"a")
    );
    assert!(err.hint().contains("TOML syntax"), "{}", err.hint());
}

#[test]
fn unknown_key_is_an_error() {
    let text = "[[tenant]]\nname = \"a\"\ncgroups = [\"x\"]\ncolour = \"red\"\n";
    let err = error(&[("t.toml", text)]);
    assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    assert_eq!(line_col(&err), (4, 1));
    assert!(err.message().contains("unknown field `colour`"), "{err}");
    assert!(err.hint().contains("remove the key"), "{err}");
}

#[test]
fn unknown_top_level_table_is_an_error() {
    let err = error(&[("t.toml", "[[tenants]]\nname = \"a\"\n")]);
    assert!(err.message().contains("unknown field `tenants`"), "{err}");
    assert_eq!(line_col(&err), (1, 3));
}

#[test]
fn bad_severity_points_at_the_value() {
    let text = RULES.replace("severity = \"high\"", "severity = \"urgent\"");
    let err = error(&[("tenants.toml", TENANTS), ("rules.toml", &text)]);
    assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    assert_eq!(line_col(&err), (4, 12));
    assert!(err.message().contains("unknown variant `urgent`"), "{err}");
    assert!(err.message().contains("`critical`"), "{err}");
}

#[test]
fn wrong_type_and_missing_key() {
    let text = "[[tenant]]\nname = \"a\"\ncgroups = \"x\"\n";
    let err = error(&[("t.toml", text)]);
    assert!(err.message().contains("invalid type"), "{err}");
    assert_eq!(line_col(&err), (3, 11));

    let text = "[[rule]]\nid = \"r\"\nexpr = \"trace.has(net.*)\"\ndescription = \"d\"\n";
    let err = error(&[("r.toml", text)]);
    assert!(err.message().contains("missing field `severity`"), "{err}");
    assert!(err.hint().contains("add the required key"), "{err}");
}

#[test]
fn unknown_tenant_in_allow_renders_like_rustc() {
    let policy =
        format!("{RULES}\n[[allow]]\nfrom = \"tenant-a\"\nto = \"tenant-c\"\nreason = \"r\"\n");
    let err = with_policy(&policy);
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    assert_eq!(line_col(&err), (10, 6));
    assert_eq!(
        err.to_string(),
        "policy.toml:10:6: unknown tenant \"tenant-c\" in allow.to \
         (expected a [[tenant]] name or \"*\"; defined: \"tenant-a\", \"tenant-b\")\n\
         10 | to = \"tenant-c\"\n   |      ^^^^^^^^^^"
    );
}

#[test]
fn unknown_tenant_in_allow_from() {
    let policy = format!("{RULES}\n[[allow]]\nfrom = \"nobody\"\nto = \"*\"\nreason = \"r\"\n");
    let err = with_policy(&policy);
    assert_eq!(line_col(&err), (9, 8));
    assert!(
        err.message()
            .contains("unknown tenant \"nobody\" in allow.from"),
        "{err}"
    );
}

#[test]
fn unknown_rule_in_allow() {
    let policy = format!(
        "{RULES}\n[[allow]]\nrule = \"file-access\"\nfrom = \"*\"\nto = \"*\"\nreason = \"r\"\n"
    );
    let err = with_policy(&policy);
    assert_eq!(line_col(&err), (9, 8));
    assert_eq!(err.message(), "unknown rule \"file-access\" in allow.rule");
    assert!(err.hint().contains("\"cross-tenant-network\""), "{err}");
}

#[test]
fn bad_allow_ports_and_empty_reason() {
    let policy = format!(
        "{RULES}\n[[allow]]\nfrom = \"*\"\nto = \"*\"\nports = [80, 70000, \"90-80\", 0, \"x\"]\nreason = \" \"\n"
    );
    let errs = errors(&[("tenants.toml", TENANTS), ("policy.toml", &policy)]);
    let found: Vec<(usize, usize, String)> = errs
        .iter()
        .map(|e| (line_col(e).0, line_col(e).1, e.message()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                11,
                14,
                "invalid port in allow.ports: \"70000\" is not a port number (1-65535)".into()
            ),
            (
                11,
                21,
                "invalid port in allow.ports: port range \"90-80\" starts above its end".into()
            ),
            (
                11,
                30,
                "invalid port in allow.ports: \"0\" is not a port number (1-65535)".into()
            ),
            (
                11,
                33,
                "invalid port in allow.ports: \"x\" is not a port number (1-65535)".into()
            ),
            (12, 10, "allow.reason is empty".into()),
        ]
    );
}

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
fn missing_tenants_and_rules() {
    let errs = errors(&[("only-rules.toml", RULES)]);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "<embedded rules>: no [[tenant]] defined (define at least one tenant)"
    );

    let errs = errors(&[("only-tenants.toml", TENANTS)]);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].message(), "no [[rule]] defined");
    assert!(errs[0].location().is_none());

    assert_eq!(errors(&[]).len(), 2);
}

#[test]
fn errors_are_collected_across_files() {
    let broken = "[[tenant]\n";
    let bad_name = "[[tenant]]\nname = \"UPPER\"\ncgroups = [\"u\"]\n";
    let bad_endpoint = "[[tenant]]\nname = \"e\"\ncgroups = [\"e\"]\nendpoints = [\"nope\"]\n";
    let all = ConfigErrors(errors(&[
        ("1.toml", broken),
        ("2.toml", bad_name),
        ("3.toml", bad_endpoint),
        ("4.toml", RULES),
    ]));
    let paths: Vec<&str> = all.0.iter().filter_map(|e| e.path().to_str()).collect();
    assert_eq!(paths, vec!["1.toml", "2.toml", "3.toml"]);
    assert!(matches!(all.0[0], ConfigError::Toml { .. }));
    let text = all.to_string();
    assert!(text.ends_with("^\n\n3 errors"), "{text}");
    assert!(
        text.contains("2.toml:2:8: invalid tenant name \"UPPER\""),
        "{text}"
    );
    assert!(
        text.contains("3.toml:4:14: invalid endpoint \"nope\""),
        "{text}"
    );
}

#[test]
fn parse_errors_suppress_follow_up_reference_errors() {
    // The tenants file is broken, so "tenant-a" is unknown: only the syntax error is reported.
    let broken = TENANTS.replace("name = \"tenant-b\"", "name = tenant-b");
    let policy = format!("{RULES}\n[[allow]]\nfrom = \"tenant-a\"\nto = \"*\"\nreason = \"r\"\n");
    let errs = errors(&[("tenants.toml", &broken), ("policy.toml", &policy)]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path().to_str(), Some("tenants.toml"));
    assert_eq!(line_col(&errs[0]).0, 8);
}

#[test]
fn single_error_summary() {
    let all = ConfigErrors(errors(&[("t.toml", TENANTS)]));
    assert!(all.to_string().ends_with(")\n\n1 error"), "{all}");
}

#[test]
fn location_counts_characters_and_keeps_tabs() {
    let text = "a = 1\r\n\tname = \"é-x\" # ü\nlast";
    let start = text.find("\"é").unwrap_or(0);
    let loc = Location::from_span(text, start..start + "\"é-x\"".len());
    assert_eq!((loc.line, loc.column, loc.width), (2, 9, 5));
    assert_eq!(loc.source_line, "\tname = \"é-x\" # ü");

    let loc = Location::from_span(text, 0..100);
    assert_eq!((loc.line, loc.column, loc.width), (1, 1, 5));
    assert_eq!(loc.source_line, "a = 1");

    let loc = Location::from_span(text, 500..600);
    assert_eq!(
        (loc.line, loc.column, loc.source_line.as_str()),
        (3, 5, "last")
    );

    let err = ConfigError::Invalid {
        path: "x.toml".into(),
        location: Some(Location::from_span(text, start..start + 3)),
        message: "m".into(),
        hint: "h".into(),
    };
    assert_eq!(
        err.to_string(),
        "x.toml:2:9: m (h)\n2 | \tname = \"é-x\" # ü\n  | \t       ^^"
    );
}

#[test]
fn every_bad_table_of_a_file_is_reported() {
    let text = r#"[[tenant]]
name = "a"
cgroups = ["a"]
colour = "red"

[[tenant]]
name = "b"
cgroups = "b"

[[rule]]
id = "r"
severity = "file"
description = "d"
expr = "trace.has(net.*)"

[[tenant]]
name = "c"
cgroups = ["/c"]
"#;
    let errs = errors(&[("t.toml", text), ("r.toml", RULES)]);
    let found: Vec<(usize, usize)> = errs.iter().map(line_col).collect();
    assert_eq!(
        found,
        vec![(4, 1), (8, 11), (12, 12), (18, 12)],
        "{errs:#?}"
    );
    assert!(
        errs[2].message().contains("unknown variant `file`"),
        "{}",
        errs[2]
    );
    assert!(
        matches!(errs[3], ConfigError::Invalid { .. }),
        "{:?}",
        errs[3]
    );
}

#[test]
fn several_syntax_errors_in_one_file() {
    let text = "[[tenant]]\nname = \"a\ncgroups = [\"x\"]\n\n[[rule]]\nid = = \"r\"\n";
    let errs = errors(&[("t.toml", text)]);
    assert!(errs.len() >= 2, "{errs:#?}");
    assert!(errs.iter().all(|e| matches!(e, ConfigError::Toml { .. })));
    assert_eq!(line_col(&errs[0]).0, 2);
    assert_eq!(line_col(&errs[1]), (6, 6));
    assert!(errs[1].message().contains("extra `=`"), "{}", errs[1]);
}

#[test]
fn top_level_value_of_the_wrong_type() {
    let err = error(&[("t.toml", "tenant = \"a\"\n")]);
    assert!(matches!(err, ConfigError::Toml { .. }), "{err:?}");
    assert_eq!(line_col(&err), (1, 10));
    assert!(err.message().contains("invalid type: string"), "{err}");
}

#[test]
fn expression_errors_point_into_the_toml_file() {
    // A basic string with escapes, then a multi-line literal string.
    let policy = "[[rule]]\nid = \"r\"\nseverity = \"low\"\ndescription = \"d\"\n\
                  expr = \"trace.has(net.connect).where(process.comm == \\\"x\\\" and peer.tenat)\"\n\n\
                  [[rule]]\nid = \"s\"\nseverity = \"low\"\ndescription = \"d\"\n\
                  expr = '''\ntrace.has(net.connect).where(\n  peer.port = 1\n)'''\n";
    let errs = errors(&[("tenants.toml", TENANTS), ("p.toml", policy)]);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let loc = errs[0].location().unwrap();
    assert_eq!(
        (loc.line, loc.column, loc.width),
        (5, 64, 10),
        "{}",
        errs[0]
    );
    assert!(
        errs[0]
            .message()
            .contains("rule \"r\": unknown attribute `peer.tenat`")
    );
    let loc = errs[1].location().unwrap();
    assert_eq!((loc.line, loc.column), (13, 13), "{}", errs[1]);
    assert!(errs[1].message().contains("syntax error"), "{}", errs[1]);
    assert!(
        errs[1]
            .to_string()
            .contains("13 |   peer.port = 1\n   |             ^"),
        "{}",
        errs[1]
    );
}

#[test]
fn allow_tables_by_process_path_and_per_rule() {
    let policy = format!(
        "{RULES}\n  [[rule.allow]]\n  rule = \"x\"\n  processes = [\"a-very-long-process-name\"]\n  reason = \"r\"\n\n\
         [[allow]]\npaths = [\"relative\"]\nreason = \"r\"\n\n[[allow]]\nreason = \"everything\"\n"
    );
    let errs = errors(&[("tenants.toml", TENANTS), ("p.toml", &policy)]);
    let msgs: Vec<String> = errs.iter().map(|e| e.message()).collect();
    assert_eq!(
        msgs,
        vec![
            "`rule` in a [[rule.allow]] table",
            "invalid process name \"a-very-long-process-name\" in allow.processes",
            "invalid path \"relative\" in allow.paths",
            "this allow covers every access",
        ],
        "{errs:#?}"
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
