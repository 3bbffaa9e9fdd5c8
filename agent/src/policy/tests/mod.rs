//! Unit tests for the rules configuration.

mod errors;
mod load;
mod matching;
mod tiers;

use super::{ConfigError, RuleSet};

/// Two tenants with cgroups and endpoints.
const TENANTS: &str = r#"
[[tenant]]
name = "tenant-a"
cgroups = ["seam-demo/tenant-a"]
endpoints = ["10.20.0.0/16"]

[[tenant]]
name = "tenant-b"
cgroups = ["seam-demo/tenant-b"]
endpoints = ["10.30.0.0/16", "192.0.2.10:5432"]
"#;

/// One network rule.
const RULES: &str = r#"
[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant's process connected to another tenant's endpoint"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)"
"#;

fn load(files: &[(&str, &str)]) -> RuleSet {
    match RuleSet::from_sources(files) {
        Ok(set) => set,
        Err(e) => panic!("expected valid rules, got:\n{e}"),
    }
}

fn errors(files: &[(&str, &str)]) -> Vec<ConfigError> {
    match RuleSet::from_sources(files) {
        Ok(set) => panic!("expected errors, got {set:?}"),
        Err(e) => e.0,
    }
}

/// The single error of `files`.
fn error(files: &[(&str, &str)]) -> ConfigError {
    let mut errs = errors(files);
    assert_eq!(errs.len(), 1, "expected one error, got: {errs:#?}");
    errs.remove(0)
}

/// `(line, column)` of an error.
fn line_col(err: &ConfigError) -> (usize, usize) {
    match err.location() {
        Some(loc) => (loc.line, loc.column),
        None => panic!("no location in {err}"),
    }
}

fn ip(s: &str) -> std::net::IpAddr {
    match s.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{s}: {e}"),
    }
}
