//! Fleet comparisons on fingerprints with known divergences.
use std::path::PathBuf;

use super::*;
use crate::kernel::{
    fingerprint::{
        BtfInfo, CgroupInfo, Fingerprint, KernelInfo, LsmInfo, Row, live_tiers, node::CgroupMode,
    },
    probes::{PROBES, ProbeState},
};

/// A fingerprint whose file access runs on `file_rank` (0 LSM .. 3 tp_btf `sys_exit`, 4 syscall
/// tracepoints) and every other
/// capability on its best tier.
fn node(name: &str, release: &str, file_rank: u8) -> (PathBuf, Fingerprint) {
    let rows: Vec<Row> = PROBES
        .iter()
        .map(|p| {
            let best = if p.capability == Capability::FileAccess {
                file_rank
            } else {
                0
            };
            let live = p.rank == best;
            Row {
                program: p.program.to_owned(),
                program_type: p.hook.program_type(),
                attach_point: p.attach_point(),
                capability: p.capability,
                rank: p.rank,
                state: if live {
                    ProbeState::Live
                } else if p.rank < best {
                    ProbeState::Failed
                } else {
                    ProbeState::Standby
                },
                loaded: live,
                attached: live,
                load_us: 10,
                error: (p.rank < best).then(|| "Operation not permitted".to_owned()),
            }
        })
        .collect();
    let fingerprint = Fingerprint {
        schema: SCHEMA,
        node: name.to_owned(),
        agent_version: "0.1.0".into(),
        kernel: KernelInfo {
            release: release.to_owned(),
            build: "#1 SMP".into(),
            arch: "x86_64".into(),
        },
        btf: BtfInfo {
            present: true,
            path: "/sys/kernel/btf/vmlinux".into(),
            bytes: Some(1),
            sha256: Some("ab".into()),
        },
        cgroup: CgroupInfo {
            mode: CgroupMode::Unified,
            v2_mount: Some("/sys/fs/cgroup".into()),
        },
        lsm: LsmInfo {
            active: Some(vec!["lockdown".into(), "bpf".into()]),
            bpf: true,
            error: None,
        },
        probe_object_sha256: "0bj".into(),
        rules_sha256: Some("ru1e5".into()),
        load_ms: 100,
        capabilities: live_tiers(&rows),
        rows,
    };
    (PathBuf::from(format!("{name}.json")), fingerprint)
}

fn shortfalls(report: &FleetReport, node: &str) -> Vec<Shortfall> {
    report
        .nodes
        .iter()
        .find(|n| n.node == node)
        .map(|n| n.shortfalls.clone())
        .unwrap_or_default()
}

#[test]
fn identical_nodes_are_uniform() {
    let fleet = [node("a", "6.12.1", 0), node("b", "6.12.7", 0)];
    let report = check(&fleet, &Policy::default());
    assert!(report.uniform, "{report:?}");
    assert!(render_text(&report).contains("uniform: 2 node(s)"));
}

#[test]
fn a_node_on_the_syscall_exit_falls_short_of_lsm_nodes() {
    let fleet = [
        node("lsm-1", "6.12.1", 0),
        node("tp", "6.18.4", 3),
        node("lsm-2", "6.1.170", 0),
    ];
    let report = check(&fleet, &Policy::default());
    assert!(!report.uniform);
    assert_eq!(
        shortfalls(&report, "tp"),
        [Shortfall::WorseTier {
            capability: Capability::FileAccess,
            tier: Some(Tier {
                program_type: ProgramType::TpBtf,
                rank: 3
            }),
            best: Tier {
                program_type: ProgramType::Lsm,
                rank: 0
            },
            reductions: vec![Reduction::SyscallTax],
        }]
    );
    assert!(shortfalls(&report, "lsm-1").is_empty());
    let text = render_text(&report);
    assert!(
        text.contains("FileAccess runs on tp_btf:3 where other nodes have lsm"),
        "{text}"
    );
    assert!(text.contains("not uniform: 1 of 3"), "{text}");
}

#[test]
fn a_capability_missing_on_one_node_is_a_shortfall() {
    let (path, mut fp) = node("no-file", "6.12.1", 0);
    for row in fp.rows.iter_mut() {
        if row.capability == Capability::FileAccess {
            row.state = ProbeState::Failed;
        }
    }
    fp.capabilities = live_tiers(&fp.rows);
    let report = check(&[node("a", "6.12.1", 0), (path, fp)], &Policy::default());
    let short = shortfalls(&report, "no-file");
    assert!(matches!(
        short.as_slice(),
        [Shortfall::WorseTier { tier: None, reductions, .. }] if reductions == &[Reduction::Unavailable]
    ));
}

#[test]
fn a_node_without_an_optional_row_of_the_same_tier_is_named() {
    // An architecture without the legacy open(2): same tier, one hook pair fewer.
    let (path, mut fp) = node("arm", "6.12.1", 4);
    for row in fp.rows.iter_mut() {
        if row.attach_point.ends_with("sys_enter_open")
            || row.attach_point.ends_with("sys_exit_open")
        {
            row.state = ProbeState::Failed;
        }
    }
    fp.capabilities = live_tiers(&fp.rows);
    let report = check(&[node("x86", "6.12.1", 4), (path, fp)], &Policy::default());
    assert!(shortfalls(&report, "x86").is_empty());
    assert_eq!(
        shortfalls(&report, "arm"),
        [Shortfall::MissingHooks {
            capability: Capability::FileAccess,
            missing: vec![
                "tracepoint/syscalls/sys_enter_open".to_owned(),
                "tracepoint/syscalls/sys_exit_open".to_owned()
            ],
        }]
    );
    assert!(render_text(&report).contains("FileAccess lacks hooks other nodes on its tier have"));
}

#[test]
fn missing_btf_and_kernel_policy() {
    let (path, mut fp) = node("old", "5.15.0-91-generic", 0);
    fp.btf.present = false;
    let fleet = [node("new", "6.12.111+deb12-cloud-amd64", 0), (path, fp)];
    let policy = Policy {
        min_kernel: Some(parse_version("6.1").unwrap()),
        allowed_kernels: vec!["6.12.*".into()],
    };
    let report = check(&fleet, &policy);
    assert!(shortfalls(&report, "new").is_empty());
    let old = shortfalls(&report, "old");
    assert!(old.contains(&Shortfall::MissingBtf), "{old:?}");
    assert!(old.contains(&Shortfall::KernelTooOld {
        release: "5.15.0-91-generic".into(),
        minimum: "6.1".into()
    }));
    assert!(old.contains(&Shortfall::KernelNotAllowed {
        release: "5.15.0-91-generic".into()
    }));
}

#[test]
fn rules_and_probe_object_drift_against_the_majority() {
    let (p1, mut drifted) = node("drifted", "6.12.1", 0);
    drifted.rules_sha256 = Some("other".into());
    drifted.probe_object_sha256 = "older-build".into();
    let (p2, mut unruled) = node("unruled", "6.12.1", 0);
    unruled.rules_sha256 = None;
    let fleet = [
        node("a", "6.12.1", 0),
        node("b", "6.12.1", 0),
        (p1, drifted),
        (p2, unruled),
    ];
    let report = check(&fleet, &Policy::default());
    assert_eq!(
        shortfalls(&report, "drifted"),
        [
            Shortfall::RulesDrift {
                hash: Some("other".into()),
                expected: Some("ru1e5".into())
            },
            Shortfall::ProbeObjectDrift {
                hash: "older-build".into(),
                expected: "0bj".into()
            }
        ]
    );
    assert!(matches!(
        shortfalls(&report, "unruled").as_slice(),
        [Shortfall::RulesDrift { hash: None, .. }]
    ));
    assert!(shortfalls(&report, "a").is_empty());
}

#[test]
fn versions_parse_and_bad_ones_are_errors() {
    assert_eq!(parse_version("6.1").unwrap(), (6, 1));
    assert_eq!(parse_version("6.12.111").unwrap(), (6, 12));
    assert!(matches!(parse_version("six"), Err(FleetError::Version(_))));
    assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
}

#[test]
fn unreadable_inputs_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    assert!(matches!(
        read_inputs(std::slice::from_ref(&missing)),
        Err(FleetError::Read { .. })
    ));
    assert!(matches!(
        read_inputs(&[dir.path().to_owned()]),
        Err(FleetError::Empty(_))
    ));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    assert!(matches!(
        read_inputs(std::slice::from_ref(&bad)),
        Err(FleetError::Parse { .. })
    ));
    std::fs::write(&bad, r#"{"schema": 99}"#).unwrap();
    assert!(matches!(
        read_inputs(std::slice::from_ref(&bad)),
        Err(FleetError::Schema { found: 99, .. })
    ));
    std::fs::write(&bad, r#"{"schema": 1, "node": 3}"#).unwrap();
    assert!(matches!(
        read_inputs(std::slice::from_ref(&bad)),
        Err(FleetError::Parse { .. })
    ));
    // A directory of good fingerprints round-trips through JSON.
    std::fs::remove_file(&bad).unwrap();
    for (path, fp) in [node("a", "6.12.1", 0), node("b", "6.1.2", 3)] {
        std::fs::write(dir.path().join(path), serde_json::to_string(&fp).unwrap()).unwrap();
    }
    let read = read_inputs(&[dir.path().to_owned()]).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[1].1, node("b", "6.1.2", 3).1);
    assert!(!check(&read, &Policy::default()).uniform);
}
