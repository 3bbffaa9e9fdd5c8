//! Fault: cgroups created and destroyed at a high rate (hundreds, some matching tenant
//! patterns, some running a short workload that crosses to another tenant) while a steady
//! tenant keeps crossing. The agent stays healthy, reports every steady crossing and every
//! crossing from a churned cgroup it had registered, attributes each to the tenant its cgroup
//! belongs to, and forgets the removed cgroups: the tenant-cgroup gauge and the kernel's
//! filter map both go back to where they started.
use std::fs;

use seam_integration_tests::{
    Agent, Cgroups, Workload, bpf, cgroup2_root,
    http::{get, listen_addr, metric},
    listen,
};

use crate::common::{assert_attributed, connect, local, network, registrations, rules, weight};

const CHURN: usize = 360;
const STEADY: u32 = 60;

fn filter_entries(agent: &Agent, map: u32) -> usize {
    bpf::map_len_u64_keys(map)
        .unwrap_or_else(|| panic!("TENANT_CGROUPS map gone; log:\n{}", agent.log()))
}

#[test]
fn cgroup_churn_keeps_the_agent_healthy_and_attribution_right() {
    let mut cgroups = Cgroups::new();
    let b = cgroups.create("b");
    let s = cgroups.create("s");
    cgroups.create("a");
    for parent in ["a-jobs", "c-jobs", "x-jobs"] {
        cgroups.create(parent);
    }
    let rel = |d: &str| cgroups.rel(d);
    let rules = rules(&[
        ("a", vec![rel("a"), rel("a-jobs")]),
        ("b", vec![rel("b")]),
        ("c", vec![rel("c-jobs")]),
        ("s", vec![rel("s")]),
    ]);
    let mut agent = Agent::start_with(&rules, &["--listen", "127.0.0.1:0"]);
    let addr = listen_addr(&agent);
    agent.wait_until("healthy", |_| get(&addr, "/healthz").0 == 200);
    let baseline = metric(&agent, "seam_tenant_cgroups");
    let map = bpf::held_map(agent.pid(), "TENANT_CGROUPS").expect("the agent's filter map");
    let baseline_map = filter_entries(&agent, map);
    assert_eq!(baseline, 5.0, "a, a-jobs, b, c-jobs, s");
    assert_eq!(
        baseline_map, 5,
        "the kernel filter holds the five tenant cgroups"
    );
    let rss_before = agent.rss_kib();

    let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 100_000);
    let target = local(db_b.port);
    let steady = Workload::start(
        Some(&s),
        "steady",
        &[
            "tcp-connect",
            "--addr",
            &target,
            "--count",
            &STEADY.to_string(),
            "--interval-ms",
            "50",
        ],
    );
    let root = cgroup2_root();
    let mut crossings = [0u64; 2];
    let mut peak = 0.0f64;
    for i in 0..CHURN {
        let parent = ["a-jobs", "c-jobs", "x-jobs"][i % 3];
        let cgroup = cgroups.create(&format!("{parent}/j{i}"));
        if i % 8 == 0 {
            let comm = format!("churn-{}", &parent[..1]);
            if parent != "x-jobs" {
                // Crossings from a churned tenant cgroup the agent has registered must be
                // reported, and to the right tenant.
                agent.wait_until("the churned cgroup to be registered", |a| {
                    registrations(a, &cgroup, true) == 1
                });
                crossings[i % 3] += 1;
            }
            connect(&cgroup, &comm, &target);
        }
        let dir = root.join(&cgroup);
        agent.wait_until("the churned cgroup to be removable", |_| {
            fs::remove_dir(&dir).is_ok() || !dir.exists()
        });
        if i % 60 == 0 {
            assert_eq!(get(&addr, "/healthz").0, 200, "healthy while churning");
            peak = peak.max(metric(&agent, "seam_tenant_cgroups"));
        }
    }
    steady.finish();
    agent.wait_until("the tenant cgroups to be forgotten", |a| {
        metric(a, "seam_tenant_cgroups") == baseline && filter_entries(a, map) == baseline_map
    });
    assert_eq!(get(&addr, "/healthz").0, 200);
    let rss_after = agent.rss_kib();
    let stats = agent.stop();
    eprintln!(
        "churn: {CHURN} cgroups, peak seam_tenant_cgroups {peak}, rss {rss_before} -> \
         {rss_after} KiB, stats {stats}"
    );
    let feed = agent.feed();
    let violations = network(&feed);
    let owners = [("a-jobs", "a"), ("c-jobs", "c"), ("s", "s")];
    for v in &violations {
        assert_attributed(v, &cgroups, &owners);
        assert_eq!(v["actual_tenant"], "b", "{v:#}");
        assert_eq!(v["target"]["port"], db_b.port, "{v:#}");
    }
    let count = |comm: &str| -> u64 {
        violations
            .iter()
            .filter(|v| v["caller"]["comm"] == comm)
            .map(|v| weight(v))
            .sum()
    };
    assert_eq!(count("steady"), u64::from(STEADY), "every steady crossing");
    assert_eq!(
        count("churn-a"),
        crossings[0],
        "every registered a-job's crossing"
    );
    assert_eq!(
        count("churn-c"),
        crossings[1],
        "every registered c-job's crossing"
    );
    assert_eq!(count("churn-x"), 0, "x-jobs belong to no tenant");
    assert_eq!(stats["lost_total"], 0, "{stats}");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
}
