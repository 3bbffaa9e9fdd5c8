//! Errors of the TOML layer: syntax, unknown keys and tables, values of the wrong type or
//! variant, each located at its value.

use super::super::{ConfigError, RULES, TENANTS, error, errors, line_col};

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
