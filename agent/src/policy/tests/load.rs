//! Valid files, the repository's rules and `load_dir`.

use std::{fs, path::Path};

use super::{
    super::{ConfigError, DEMO_SOURCES, RuleSet, TenantMatch, model::PortRange},
    RULES, TENANTS, ip, load,
};
use crate::model::vocab::{Severity, Transport};

fn load_dir_ok(dir: &Path) -> RuleSet {
    match RuleSet::load_dir(dir) {
        Ok(set) => set,
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

fn load_dir_err(dir: &Path) -> Vec<ConfigError> {
    match RuleSet::load_dir(dir) {
        Ok(set) => panic!("expected errors, got {set:?}"),
        Err(e) => e.0,
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    if let Err(e) = fs::write(dir.join(name), text) {
        panic!("write {name}: {e}");
    }
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

#[test]
fn valid_files_load_every_field() {
    let policy = r#"
[[rule]]
id = "cross-tenant-network"
severity = "critical"
description = "d"
expr = "trace.has(net.*)"

[[allow]]
rule = "cross-tenant-network"
from = "tenant-a"
to = "tenant-b"
ports = [5432, "8000-8100"]
protocols = ["tcp"]
reason = "  A reads B's reporting replica (ticket SEC-12)  "

[[allow]]
from = "*"
to = "tenant-a"
reason = "everyone may"
"#;
    let set = load(&[("tenants.toml", TENANTS), ("policy.toml", policy)]);
    assert_eq!(set.tenants.len(), 2);
    let (Some(a), Some(b)) = (
        set.tenant_by_name("tenant-a"),
        set.tenant_by_name("tenant-b"),
    ) else {
        panic!("tenants missing")
    };
    assert_eq!(b.name.as_str(), "tenant-b");
    assert_eq!(b.cgroups, vec!["seam-demo/tenant-b".to_owned()]);
    assert_eq!(b.endpoints.len(), 2);
    assert!(!b.shared);
    assert_eq!(
        set.rules
            .iter()
            .find(|r| r.id == "cross-tenant-network")
            .map(|r| r.severity),
        Some(Severity::Critical)
    );
    assert_eq!(set.allows.len(), 2);
    let first = &set.allows[0];
    assert_eq!(first.rule.as_deref(), Some("cross-tenant-network"));
    assert_eq!(
        (&first.from, &first.to),
        (
            &TenantMatch::Tenant(a.name.clone()),
            &TenantMatch::Tenant(b.name.clone())
        )
    );
    assert_eq!(
        first.ports,
        vec![PortRange::single(5432), PortRange { lo: 8000, hi: 8100 }]
    );
    assert_eq!(first.protocols, vec![Transport::Tcp]);
    assert_eq!(
        first.reason,
        "A reads B's reporting replica (ticket SEC-12)"
    );
    let second = &set.allows[1];
    assert_eq!(
        (second.rule.as_deref(), &second.from),
        (None, &TenantMatch::Any)
    );
    assert!(second.ports.is_empty() && second.protocols.is_empty());
    let names: Vec<_> = set.sources.iter().filter_map(|p| p.to_str()).collect();
    assert_eq!(names, vec!["tenants.toml", "policy.toml"]);
}

#[test]
fn embedded_demo_rules_are_valid() {
    let set = match RuleSet::demo() {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<&str> = set.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["tenant-a", "tenant-b"]);
    let rules: Vec<_> = set
        .rules
        .iter()
        .map(|r| (r.id.as_str(), r.severity))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("cross-tenant-network", Severity::High),
            ("cross-tenant-file", Severity::High)
        ]
    );
    assert!(set.allows.is_empty());
    let b = set.tenant_for_path("/tmp/seam-demo/tenant-b/customers.csv");
    assert_eq!(b.as_ref().map(|t| t.name.as_str()), Some("tenant-b"));
    assert_eq!(DEMO_SOURCES.len(), set.sources.len());
    let a = set.tenant_for_cgroup("seam-demo/tenant-a/workload");
    assert_eq!(a.as_ref().map(|t| t.name.as_str()), Some("tenant-a"));
}

#[test]
fn repository_rules_directories_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let demo = load_dir_ok(&root.join("demo"));
    assert_eq!(demo.tenants.len(), 2);
    assert_eq!(demo.rules.len(), 2);
    // The embedded copy is the same files.
    let embedded: Vec<_> = DEMO_SOURCES.iter().map(|(name, _)| *name).collect();
    let on_disk: Vec<_> = demo
        .sources
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .map(|n| format!("rules/demo/{n}"))
        .collect();
    assert_eq!(embedded, on_disk);

    // The example is loaded with the shipped rules it refers to.
    let k8s = match RuleSet::load_dirs(&[root.join("shipped"), root.join("examples")]) {
        Ok(set) => set,
        Err(e) => panic!("shipped + examples: {e}"),
    };
    assert!(
        k8s.tenants.iter().any(|t| t.shared),
        "the example has a shared service"
    );
    assert!(!k8s.allows.is_empty());
    let prod = k8s.tenant_for_cgroup("tenants.slice/tenant-globex-prod.slice/pod-1.scope");
    assert_eq!(prod.as_ref().map(|t| t.name.as_str()), Some("globex"));
    let db = k8s.tenant_for_endpoint(ip("10.40.0.7"), 5432);
    assert_eq!(db.as_ref().map(|t| t.name.as_str()), Some("acme"));
}

#[test]
fn load_dir_reads_toml_files_in_sorted_order() {
    let dir = tempdir();
    write(dir.path(), "b-policy.toml", RULES);
    write(dir.path(), "a-tenants.toml", TENANTS);
    write(dir.path(), "notes.txt", "not toml at all [[[");
    write(dir.path(), ".editor-backup.toml", "not toml at all [[[");
    if let Err(e) = fs::create_dir(dir.path().join("sub.toml")) {
        panic!("{e}");
    }
    write(
        &dir.path().join("sub.toml"),
        "x.toml",
        "not toml at all [[[",
    );
    let set = load_dir_ok(dir.path());
    let names: Vec<_> = set
        .sources
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    assert_eq!(names, vec!["a-tenants.toml", "b-policy.toml"]);
    assert_eq!(set.sources[0], dir.path().join("a-tenants.toml"));
}

#[test]
fn load_dir_missing_directory() {
    let dir = tempdir();
    let missing = dir.path().join("nope");
    let errs = load_dir_err(&missing);
    assert_eq!(errs.len(), 1);
    assert!(
        matches!(&errs[0], ConfigError::DirUnreadable { .. }),
        "{errs:?}"
    );
    let text = errs[0].to_string();
    let expected = format!("{}: cannot read rules directory: ", missing.display());
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
    assert!(
        text.ends_with("(expected a readable directory of *.toml rules files)"),
        "{text}"
    );
    assert!(std::error::Error::source(&errs[0]).is_some());
}

#[test]
fn load_dir_on_a_file_and_on_an_empty_directory() {
    let dir = tempdir();
    write(dir.path(), "file.toml", TENANTS);
    let errs = load_dir_err(&dir.path().join("file.toml"));
    assert!(
        matches!(&errs[0], ConfigError::DirUnreadable { .. }),
        "{errs:?}"
    );

    let empty = dir.path().join("empty");
    if let Err(e) = fs::create_dir(&empty) {
        panic!("{e}");
    }
    let errs = load_dir_err(&empty);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].message(),
        "no rules files (*.toml) in the directory"
    );
    assert_eq!(errs[0].path(), empty.as_path());
}

#[test]
fn load_dir_collects_unreadable_files_with_other_errors() {
    let dir = tempdir();
    write(dir.path(), "a.toml", TENANTS);
    write(dir.path(), "b.toml", RULES);
    if let Err(e) = fs::write(dir.path().join("c.toml"), [b'#', 0xff, 0xfe, b'\n']) {
        panic!("{e}");
    }
    if let Err(e) = std::os::unix::fs::symlink("missing-target", dir.path().join("d.toml")) {
        panic!("{e}");
    }
    write(dir.path(), "e.toml", "[[rule]]\nid = 3\n");
    let errs = load_dir_err(dir.path());
    let kinds: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| {
            let kind = match e {
                ConfigError::FileUnreadable { .. } => "unreadable",
                ConfigError::Toml { .. } => "toml",
                ConfigError::DirUnreadable { .. } => "dir",
                ConfigError::Invalid { .. } => "invalid",
            };
            let name = e.path().file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name, kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("c.toml", "unreadable"),
            ("d.toml", "unreadable"),
            ("e.toml", "toml")
        ]
    );
    assert!(
        errs[0].to_string().contains("cannot read rules file"),
        "{}",
        errs[0]
    );
    assert!(errs[0].to_string().contains("UTF-8"), "{}", errs[0]);
    assert_eq!(errs[2].location().map(|l| (l.line, l.column)), Some((2, 6)));
}

#[test]
fn an_oversized_rules_file_is_refused_by_name() {
    let dir = tempdir();
    write(dir.path(), "a.toml", TENANTS);
    write(dir.path(), "b.toml", RULES);
    let huge = format!("{RULES}\n{}", "# padding\n".repeat(110_000));
    write(dir.path(), "huge.toml", &huge);
    let errs = load_dir_err(dir.path());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].path().ends_with("huge.toml"));
    assert!(
        errs[0]
            .message()
            .contains("more than the 1048576 a rules file may be"),
        "{}",
        errs[0].message()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    /// Arbitrary text in a rules file: a rule set or errors, never a panic.
    #[test]
    fn arbitrary_rules_files_never_panic(text in "(\\[\\[(tenant|rule)\\]\\]\n|[a-z_]{1,8} = (\"[^\"\n]{0,12}\"|\\[[^\n]{0,20}\\]|[0-9]{1,3}|true)\n|[^\n]{0,30}\n){0,12}") {
        let _ = crate::policy::RuleSet::from_sources(&[("fuzz.toml", &text)]);
    }
}
