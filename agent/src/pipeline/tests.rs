//! The pipeline's loss reporting, without a kernel: floods the reader passes on become loss
//! records naming the tenant, in the feed and the metrics.
use std::{path::PathBuf, sync::Arc};

use serde_json::Value;

use super::{Pipeline, PipelineOptions};
use crate::{
    attribution::{Attributor, CgroupRegistry, LocalAddrs, ProcessTable},
    kernel::filter::NoFilter,
    metrics::{Metrics, PipelineMetrics},
    output::{SinkOptions, Sinks},
    pipeline::input::Input,
    policy::RuleSet,
};

const TENANTS: &str = r#"
[[tenant]]
name = "a"
cgroups = ["t/a"]

[[tenant]]
name = "b"
cgroups = ["t/b"]

[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "x"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant)"
"#;

fn pipeline(feed: PathBuf, metrics: &Arc<Metrics>) -> Pipeline {
    let rules = RuleSet::from_sources(&[("t.toml", TENANTS)]).unwrap();
    let options = SinkOptions {
        stdout: false,
        feed_file: Some(feed),
        ..SinkOptions::default()
    };
    let sink = Sinks::open(&options, metrics).unwrap();
    let attributor = Attributor {
        cgroups: CgroupRegistry::new(PathBuf::from("/nonexistent")),
        processes: ProcessTable::new([0; 16], PathBuf::from("/proc")),
        local: LocalAddrs::default(),
    };
    Pipeline::new(
        rules,
        attributor,
        sink,
        Box::new(NoFilter),
        PipelineOptions {
            node: "node-1".to_owned(),
            max_open_spans: 16,
            own_ports: Vec::new(),
            live_hooks: Vec::new(),
        },
        PipelineMetrics::new(metrics.clone()),
    )
}

#[test]
fn a_tenant_flood_is_a_loss_record_naming_the_tenant_with_its_growth() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    let metrics = Arc::new(Metrics::new());
    let mut pipeline = pipeline(feed.clone(), &metrics);
    pipeline.handle(Input::TenantFloods(vec![("a".into(), 100)]));
    // Running totals: only growth is reported, per tenant.
    pipeline.handle(Input::TenantFloods(vec![
        ("a".into(), 250),
        ("b".into(), 3),
    ]));
    pipeline.handle(Input::TenantFloods(vec![
        ("a".into(), 250),
        ("b".into(), 3),
    ]));
    pipeline.finish(std::time::Instant::now());
    let records: Vec<Value> = std::fs::read_to_string(&feed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{records:#?}");
    let flood = |i: usize| &records[i];
    for record in &records {
        assert_eq!(record["kind"], "loss", "{record}");
        assert_eq!(record["source"], "tenant_flood", "{record}");
        assert_eq!(record["node"], "node-1", "{record}");
    }
    assert_eq!(flood(0)["probe"], "a");
    assert_eq!(
        (flood(0)["lost"].as_u64(), flood(0)["lost_total"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(flood(1)["probe"], "a");
    assert_eq!(
        (flood(1)["lost"].as_u64(), flood(1)["lost_total"].as_u64()),
        (Some(150), Some(250))
    );
    assert_eq!(flood(2)["probe"], "b");
    let message = flood(1)["message"].as_str().unwrap();
    assert!(
        message.starts_with("tenant a flooded: 150 of its events dropped"),
        "{message}"
    );
    // Not a ring-buffer loss: other tenants' evidence is whole.
    assert!(pipeline.stats.lost.is_empty(), "{:?}", pipeline.stats.lost);
    let text = metrics.encode();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("seam_lost_total{")
                && l.contains("tenant_flood")
                && l.contains("probe=\"a\"")
        })
        .unwrap_or_else(|| panic!("no flood metric for a:\n{text}"));
    assert!(line.ends_with(" 250"), "{line}");
}
