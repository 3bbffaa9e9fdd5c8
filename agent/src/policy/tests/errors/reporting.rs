//! How errors are reported: located by character, collected across files and tables, sorted,
//! summed up, mapped from inside an expression to the file, and no follow-up noise.

use super::super::{
    super::{ConfigError, ConfigErrors, error::Location},
    RULES, TENANTS, errors, line_col,
};

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
