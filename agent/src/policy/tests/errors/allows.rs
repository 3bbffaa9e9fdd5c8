//! Allow errors: unknown tenants and rules, bad ports, process names and paths, an empty
//! reason, an allow covering everything.

use super::super::{ConfigError, RULES, TENANTS, error, errors, line_col};

fn with_policy(policy: &str) -> ConfigError {
    error(&[("tenants.toml", TENANTS), ("policy.toml", policy)])
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
