//! The report on a history written in-process: its sections in JSON, Markdown and HTML.
use super::{Gather, Period, Report, html, markdown};
use crate::{
    evidence::{
        history::{
            replay,
            replay::ReplaySpec,
            tests::{master, rules, write},
        },
        keys::{Actor, ActorKind, Keyring, keyring, keyring_dir},
    },
    model::clock::UnixNanos,
};

#[test]
fn the_report_shows_operations_violations_runs_keys_and_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules("");
    write(tmp.path(), &rules);
    let store = tmp.path().join("store");
    let keyring = Keyring::open(
        &keyring_dir(&store),
        master(tmp.path()),
        Actor::current(ActorKind::Cli),
    )
    .unwrap();
    let spec = ReplaySpec {
        store: &store,
        keyring: &keyring,
        rules: &rules,
        tenants: None,
        from_ns: 0,
        until_ns: u64::MAX,
        threads: 2,
    };
    let period = Period {
        from: UnixNanos(1_700_000_000_000_000_000),
        until: UnixNanos::now(),
    };
    let (gather, replayed) = replay::replay(&spec, |runs| Gather::new(runs, period)).unwrap();
    let keys = keyring::list(keyring.dir()).unwrap();
    let report = Report::new(gather, replayed, period, &keys, "s".into(), None, 0.1);
    assert_eq!(report.operations, 6);
    assert_eq!(report.violations.violations_total, 4);
    let b = report
        .operations_by_history
        .iter()
        .find(|o| o.history == "b")
        .unwrap();
    assert_eq!(b.total, 4);
    assert_eq!(b.by_tier["regulated"], 1);
    assert_eq!(report.runs.len(), 1);
    assert!(report.runs[0].stopped.is_some());
    assert_eq!(report.hooks_live, ["cgroup/connect4"]);
    assert_eq!(report.key_epochs.len(), 3);
    assert!(report.key_epochs.iter().all(|e| e.state == "active"));
    assert_eq!(report.gaps.losses.len(), 1);
    // The spans are dated 2023 while the run is now: that stretch had no agent.
    assert!(!report.gaps.downtime.is_empty());
    let series = &report.timeline.pairs["a -> b"];
    assert_eq!(series.operations.iter().sum::<u64>(), 4);
    assert_eq!(series.violations.iter().sum::<u64>(), 4);

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["violations"]["violations_total"], 4);
    let md = markdown::render(&report);
    assert!(
        md.contains("**6 operations validated, 4 violations**"),
        "{md}"
    );
    assert!(md.contains("| a | b | 4 |"), "{md}");
    let page = html::render(&report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 2);
    assert!(page.contains("a -&gt; b (4)"), "legend with totals");
    assert!(
        !page.contains("http://") || page.matches("http://").count() == 2,
        "only the SVG namespaces"
    );
}
