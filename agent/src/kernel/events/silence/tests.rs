use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use seam_common::{AccessClass, FileSyscall, SilentKey};

use super::{Silences, parent, unsafe_reason};
use crate::{
    kernel::events::file::{DirTag, FileEvent, FilePath},
    model::vocab::PathConfidence,
    policy::RuleSet,
};

/// The kernel map as a shared table, so tests see what the agent set.
#[derive(Clone, Default)]
struct FakeMap(Arc<Mutex<HashMap<SilentKey, (u64, u64)>>>);

impl super::SilenceMap for FakeMap {
    fn insert(&mut self, key: SilentKey, generation: u64) -> Result<(), super::SilenceError> {
        let mut map = self.0.lock().unwrap();
        let count = map.get(&key).map_or(0, |(_, c)| *c);
        map.insert(key, (generation, count));
        Ok(())
    }
    fn counts(&mut self) -> Vec<(SilentKey, u64)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(k, (_, c))| (*k, *c))
            .collect()
    }
    fn clear(&mut self) {
        self.0.lock().unwrap().clear();
    }
}

const TENANTS: &str = r#"
[[tenant]]
name = "a"
cgroups = ["a"]
paths = ["/srv/a"]
[[tenant]]
name = "b"
cgroups = ["b"]
paths = ["/srv/b", "/data/shared/b.conf"]
"#;

const SAFE_RULE: &str = r#"
[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "d"
expr = "trace.has(file.*).where(tenant != null and file.tenant != null and file.tenant != tenant and not file.shared)"
"#;

fn rules(extra: &str) -> RuleSet {
    let text = format!("{TENANTS}{extra}");
    RuleSet::from_sources(&[("r.toml", text.as_str())]).unwrap_or_else(|e| panic!("{e}"))
}

fn open(path: &str, confidence: PathConfidence) -> FileEvent {
    FileEvent {
        op: FileSyscall::Open,
        ret: 3,
        flags: 0,
        f_mode: 1,
        paths: vec![FilePath {
            path: path.into(),
            confidence,
            truncated: false,
        }],
        dir: Some(DirTag {
            ino: 42,
            dev: 7,
            generation: 5,
            class: AccessClass::Read as u8,
        }),
    }
}

fn silences(rules: &RuleSet) -> (Silences, FakeMap) {
    let map = FakeMap::default();
    (Silences::new(Box::new(map.clone()), rules), map)
}

#[test]
fn a_judged_open_without_violation_is_silenced_for_its_generation() {
    let rules = rules(SAFE_RULE);
    let (mut s, map) = silences(&rules);
    s.judged(
        9,
        &open("/srv/a/data/x", PathConfidence::Full),
        false,
        Some("a"),
        &rules,
    );
    let table = map.0.lock().unwrap().clone();
    let (key, (generation, _)) = table.iter().next().expect("one silence");
    assert_eq!(
        (key.cgroup_id, key.dir_ino, key.dir_dev, key.class),
        (9, 42, 7, AccessClass::Read as u8)
    );
    assert_eq!(
        *generation, 5,
        "the generation the probe saw, not a later one"
    );
}

#[test]
fn what_could_hide_a_crossing_is_never_silenced() {
    let rules = rules(SAFE_RULE);
    let (mut s, map) = silences(&rules);
    // A violation: every repeat must be reported too.
    s.judged(
        9,
        &open("/srv/b/secret", PathConfidence::Full),
        true,
        Some("a"),
        &rules,
    );
    // /srv holds b's root: a file directly in /srv says nothing about /srv/b.
    s.judged(
        9,
        &open("/srv/readme", PathConfidence::Full),
        false,
        Some("a"),
        &rules,
    );
    // /data/shared holds a tenant path that is a file.
    s.judged(
        9,
        &open("/data/shared/other", PathConfidence::Full),
        false,
        Some("a"),
        &rules,
    );
    // The root holds everything.
    s.judged(
        9,
        &open("/x", PathConfidence::Full),
        false,
        Some("a"),
        &rules,
    );
    // A path the kernel could not resolve whole.
    s.judged(
        9,
        &open("/srv/a/x", PathConfidence::Partial),
        false,
        Some("a"),
        &rules,
    );
    let mut failed = open("/srv/a/x", PathConfidence::Full);
    failed.ret = -2;
    s.judged(9, &failed, false, Some("a"), &rules);
    let mut no_tag = open("/srv/a/x", PathConfidence::Full);
    no_tag.dir = None;
    s.judged(9, &no_tag, false, Some("a"), &rules);
    assert!(map.0.lock().unwrap().is_empty());
    // A tenant's root itself holds its own files only: silenced.
    s.judged(
        9,
        &open("/srv/b/x", PathConfidence::Full),
        false,
        Some("b"),
        &rules,
    );
    assert_eq!(map.0.lock().unwrap().len(), 1);
}

#[test]
fn rules_that_tell_repeats_apart_turn_silencing_off() {
    for (extra, why) in [
        (
            r#"
[[rule]]
id = "shadow"
severity = "high"
description = "d"
expr = "trace.has(file.open).where(file.path == \"/etc/shadow\")"
"#,
            "file.path",
        ),
        (
            r#"
[[rule]]
id = "who"
severity = "high"
description = "d"
expr = "trace.has(file.*).where(process.comm == \"evil\")"
"#,
            "process.comm",
        ),
        (
            r#"
[[rule]]
id = "many"
severity = "low"
description = "d"
window = "10s"
group_by = "tenant"
expr = "trace.count(file.*).where(tenant != null) > 100"
"#,
            "counts",
        ),
        (
            &format!(
                "{SAFE_RULE}\n[[allow]]\nrule = \"cross-tenant-file\"\nfrom = \"a\"\nto = \"b\"\nprocesses = [\"backup\"]\nreason = \"r\"\n"
            ),
            "processes",
        ),
    ] {
        let rules = rules(extra);
        let reason = unsafe_reason(&rules).unwrap_or_else(|| panic!("{why}: not detected"));
        assert!(reason.contains(why), "{reason}");
        let (mut s, map) = silences(&rules);
        s.judged(
            9,
            &open("/srv/a/x", PathConfidence::Full),
            false,
            Some("a"),
            &rules,
        );
        assert!(map.0.lock().unwrap().is_empty(), "{why}");
    }
    assert_eq!(unsafe_reason(&rules(SAFE_RULE)), None);
}

#[test]
fn allow_paths_bound_silences_like_tenant_paths() {
    let extra = format!(
        "{SAFE_RULE}\n[[allow]]\nrule = \"cross-tenant-file\"\nfrom = \"a\"\nto = \"b\"\npaths = [\"/srv/b/pub/readme\"]\nreason = \"r\"\n"
    );
    let rules = rules(&extra);
    let (mut s, map) = silences(&rules);
    // a's allowed read of b's readme is no violation, but a later read of another file in
    // /srv/b/pub would be one: that directory is never silenced.
    s.judged(
        9,
        &open("/srv/b/pub/readme", PathConfidence::Full),
        false,
        Some("a"),
        &rules,
    );
    assert!(map.0.lock().unwrap().is_empty());
}

#[test]
fn counts_are_read_back_per_label_and_forgotten_on_reload() {
    let rules = rules(SAFE_RULE);
    let (mut s, map) = silences(&rules);
    s.judged(
        9,
        &open("/srv/a/x", PathConfidence::Full),
        false,
        Some("a"),
        &rules,
    );
    let key = *map.0.lock().unwrap().keys().next().unwrap();
    map.0.lock().unwrap().get_mut(&key).unwrap().1 = 40;
    let counts = s.collect();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].0.tenant.as_str(),
            counts[0].0.owner.as_str(),
            counts[0].0.class,
            counts[0].1
        ),
        ("a", "a", crate::model::vocab::AccessClass::Read, 40)
    );
    map.0.lock().unwrap().get_mut(&key).unwrap().1 = 45;
    assert_eq!(s.collect()[0].1, 5, "only what is new");
    s.reload(&rules);
    assert!(map.0.lock().unwrap().is_empty());
}

#[test]
fn count_labels_are_written_and_ordered_as_their_text() {
    use std::collections::BTreeMap;

    use super::CountLabel;
    use crate::model::vocab::AccessClass as Class;
    let label = |tenant: &str, owner: &str, class| CountLabel {
        tenant: tenant.into(),
        owner: owner.into(),
        class,
    };
    // Tenants one of which is a prefix of another, followed by a byte below and above `-`.
    let labels = [
        label("a", "b", Class::Read),
        label("a!b", "", Class::Write),
        label("a-b", "a", Class::Create),
        label("a", "", Class::Create),
        label("a", "b", Class::Create),
        label("b", "a", Class::Read),
    ];
    let typed: BTreeMap<CountLabel, u64> = labels.iter().cloned().zip(1..).collect();
    let text: BTreeMap<String, u64> = labels
        .iter()
        .map(|l| format!("{}->{}:{}", l.tenant, l.owner, l.class))
        .zip(1..)
        .collect();
    assert_eq!(
        serde_json::to_string(&typed).unwrap(),
        serde_json::to_string(&text).unwrap()
    );
}

#[test]
fn parents() {
    assert_eq!(parent("/srv/a/x"), Some("/srv/a"));
    assert_eq!(parent("/x"), Some("/"));
    assert_eq!(parent("x"), None);
}
