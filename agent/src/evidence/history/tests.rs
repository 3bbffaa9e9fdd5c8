//! The history end to end in-process: spans through [`History`] (routing, encoding, the writer
//! thread, the sealed store), read back by [`replay`] with the real detector.
use std::{collections::BTreeSet, path::Path, time::Duration};

use super::{
    History, HistoryConfig, RunInfo,
    breach::{Breach, Limits},
    record::RunTotals,
    replay::{self, ReplaySpec, Replayed},
};
use crate::{
    evidence::{
        keys::{Actor, ActorKind, Keyring, MasterKey, Scope, keyring_dir},
        store::{StoreOptions, SyncPolicy},
    },
    model::{
        clock::UnixNanos,
        fixtures,
        loss::{Loss, LossSubject},
        spans::Span,
        vocab::{FileOp, ProbeFamily, RunPhase, Tier},
    },
    policy::RuleSet,
};

const TENANTS: &str = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]
[[tenant]]
name = "b"
cgroups = ["t/b"]
paths = ["/srv/b", { path = "/srv/b/pii", tier = "regulated" }]
"#;

const RULES: &str = r#"
[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "x"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant)"
[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "x"
expr = "trace.has(file.*).where(tenant != null and file.tenant != null and file.tenant != tenant)"
"#;

pub(crate) fn rules(extra: &str) -> RuleSet {
    RuleSet::from_sources(&[("t.toml", TENANTS), ("r.toml", RULES), ("x.toml", extra)])
        .unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn master(dir: &Path) -> MasterKey {
    let text = std::fs::read_to_string(dir.join("master.key")).unwrap();
    MasterKey::from_base64(text.trim(), "test").unwrap()
}

fn at(mut span: Span, secs: i64) -> Span {
    span.start = UnixNanos(1_700_000_000_000_000_000 + secs * 1_000_000_000);
    span.end = Some(span.start);
    span
}

/// Writes: 3 crossings a->b (network), one a->a, one regulated file read a->b, one span of no
/// tenant, and a loss.
pub(crate) fn write(dir: &Path, rules: &RuleSet) {
    MasterKey::generate()
        .unwrap()
        .write_new_file(&dir.join("master.key"))
        .unwrap();
    let mut history = History::start(
        HistoryConfig {
            dir: dir.join("store"),
            master: master(dir),
            options: StoreOptions {
                frame_bytes: 300,
                sync: SyncPolicy::Never,
                window: Duration::from_secs(3600),
                ..StoreOptions::default()
            },
            queue: 1024,
        },
        RunInfo {
            node: "node-1".into(),
            live_hooks: vec!["cgroup/connect4".into()],
            rules_sha256: rules.sha256(),
        },
    )
    .unwrap();
    let (a, b) = (fixtures::tenant("a"), fixtures::tenant("b"));
    for i in 0..3 {
        history.span(
            &at(fixtures::tcp(Some(a.clone()), Some(b.clone()), 5432), i),
            rules,
        );
    }
    history.span(
        &at(fixtures::tcp(Some(a.clone()), Some(a.clone()), 80), 5),
        rules,
    );
    let mut read = fixtures::file(
        Some(a.clone()),
        "/srv/b/pii/x",
        FileOp::Read,
        Some(b.clone()),
    );
    crate::assemble::tier::classify(&mut read, rules);
    history.span(&at(read, 6), rules);
    history.span(&at(fixtures::tcp(None, None, 53), 7), rules);
    history.loss(&Loss {
        time: UnixNanos(1_700_000_000_000_000_000),
        node: "node-1".into(),
        subject: LossSubject::Probe(ProbeFamily::SockAddr),
        lost: 4,
        lost_total: 4,
        message: "4 lost".into(),
    });
    let stats = history.finish(RunTotals::default());
    assert_eq!(stats.records, 7);
    assert_eq!(stats.store.records_dropped, 0);
}

fn read(dir: &Path, rules: &RuleSet, tenants: Option<&[&str]>) -> (Breach, Replayed) {
    let keyring = Keyring::open(
        &keyring_dir(&dir.join("store")),
        master(dir),
        Actor::current(ActorKind::Cli),
    )
    .unwrap();
    let spec = ReplaySpec {
        store: &dir.join("store"),
        keyring: &keyring,
        rules,
        tenants: tenants.map(|t| t.iter().map(|n| Scope::tenant(n).unwrap()).collect()),
        from_ns: 0,
        until_ns: u64::MAX,
        threads: 2,
    };
    replay::replay(&spec, |_| Breach::new(Limits::default(), None)).unwrap()
}

#[test]
fn replay_finds_each_violation_once_with_its_tier_and_the_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules("");
    write(tmp.path(), &rules);
    let (breach, replayed) = read(tmp.path(), &rules, None);
    assert!(
        replayed.read.issues.is_empty(),
        "{:?}",
        replayed.read.issues
    );
    // Crossings are in a's and b's histories: read once each.
    assert_eq!(breach.operations, 6);
    assert_eq!(breach.violations.count, 4);
    assert_eq!(breach.by_rule["cross-tenant-network"].count, 3);
    assert_eq!(breach.by_rule["cross-tenant-file"].count, 1);
    assert_eq!(breach.by_tier["regulated"], 1);
    assert_eq!(breach.by_tier["unclassified"], 3);
    assert_eq!(breach.trace_ids.len(), 4);
    assert!(breach.sample.iter().all(|v| v.node == "node-1"));
    let file = breach.sample.iter().find(|v| v.tier.is_some()).unwrap();
    assert_eq!(file.tier, Some(Tier::Regulated));
    assert_eq!(breach.losses.len(), 1);
    let phases: Vec<_> = replayed.runs.iter().map(|r| r.phase).collect();
    assert_eq!(phases, [RunPhase::Start, RunPhase::Stop]);
    assert_eq!(replayed.runs[0].live_hooks, ["cgroup/connect4"]);
    let scopes: BTreeSet<_> = replayed
        .read
        .epochs
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(scopes.len(), 3, "{scopes:?}");

    // b's history alone holds every crossing into b, not a's own traffic.
    let (only_b, _) = read(tmp.path(), &rules, Some(&["b"]));
    assert_eq!(only_b.operations, 4);
    assert_eq!(only_b.violations.count, 4);

    // New rules apply to old history; counting rules count in time order.
    let extra = r#"
[[rule]]
id = "regulated-read"
severity = "critical"
description = "x"
expr = "trace.has(file.*).where(file.tier == \"regulated\")"
[[rule]]
id = "burst"
severity = "low"
description = "x"
expr = "trace.count(net.*).where(tenant == \"a\") > 2"
window = "60s"
"#;
    let rules = self::rules(extra);
    let (breach, _) = read(tmp.path(), &rules, None);
    assert_eq!(breach.by_rule["regulated-read"].count, 1);
    assert_eq!(breach.by_rule["burst"].count, 1);
}
