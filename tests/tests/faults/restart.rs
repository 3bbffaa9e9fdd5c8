//! Fault: the agent is killed with SIGKILL (no clean-up of its own) and started again, a few
//! times, once in the middle of traffic. The kernel must have dropped every program of the
//! killed agent (nothing pinned, nothing left attached to the cgroup root), the new agent must
//! attach each cgroup hook exactly once, and crossings after the restart must be reported.
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use seam_integration_tests::{
    Agent, Cgroups, WAIT, Workload, bpf, cgroup2_root, listen, two_tenants,
};

use crate::common::{connect, local, network};

/// Programs named `seam_*` attached to the cgroup root.
fn seam_at_root() -> Vec<u32> {
    bpf::cgroup_prog_ids(&cgroup2_root())
        .into_iter()
        .filter(|&id| bpf::prog_name(id).is_some_and(|n| n.starts_with("seam_")))
        .collect()
}

/// Waits until none of `ids` is attached to the cgroup root or loaded at all (the kernel lets
/// go of a killed process's programs once its descriptors are closed).
fn wait_gone(ids: &BTreeSet<u32>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let at_root = bpf::cgroup_prog_ids(&cgroup2_root());
        let left: Vec<&u32> = ids
            .iter()
            .filter(|id| at_root.contains(id) || bpf::prog_name(**id).is_some())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "programs of killed agents still attached or loaded: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_agent_restarts_without_leftovers_and_reports_crossings() {
    const CYCLES: usize = 3;
    let mut cgroups = Cgroups::new();
    let (a, b) = (cgroups.create("a"), cgroups.create("b"));
    let rules = two_tenants(&cgroups, "");
    // Programs of agents killed so far: none may stay attached or loaded.
    let mut killed: BTreeSet<u32> = BTreeSet::new();
    let mut attached_per_cycle = Vec::new();
    for cycle in 0..CYCLES {
        // Started right after the kill, with whatever the killed agent left behind.
        let mut agent = Agent::start(&rules);
        let (progs, _) = bpf::held_by(agent.pid());
        wait_gone(&killed);
        assert!(!progs.is_empty(), "the agent holds its programs");
        let at_root = seam_at_root();
        let mine: Vec<u32> = at_root
            .iter()
            .copied()
            .filter(|id| progs.contains(id))
            .collect();
        let ready = agent.ready();
        let cgroup_hooks = ready["live_hooks"]
            .as_array()
            .expect("live hooks")
            .iter()
            .filter(|h| h.as_str().is_some_and(|h| h.starts_with("cgroup")))
            .count();
        assert!(cgroup_hooks >= 4, "{ready}");
        assert_eq!(
            mine.len(),
            cgroup_hooks,
            "cycle {cycle}: each cgroup hook attached exactly once ({mine:?}, {ready})"
        );
        let stale: Vec<&u32> = at_root.iter().filter(|id| killed.contains(id)).collect();
        assert!(
            stale.is_empty(),
            "cycle {cycle}: killed agents' programs still attached: {stale:?}"
        );
        // Whatever Seam program is attached at the root belongs to a live process (this agent,
        // or another test's): none is orphaned.
        let held = bpf::progs_held_by_any_process();
        let orphans: Vec<u32> = seam_at_root()
            .into_iter()
            .filter(|id| !held.contains(id))
            .collect();
        assert!(
            orphans.is_empty(),
            "cycle {cycle}: orphaned attachments {orphans:?}"
        );
        attached_per_cycle.push(mine.len());

        // Same tenant first, then the crossing: exactly one violation, a -> b.
        let web_a = listen("tcp-listen", Some(&a), "web-a", "127.0.0.1:0", 1);
        let db_b = listen("tcp-listen", Some(&b), "db-b", "127.0.0.1:0", 501);
        connect(&a, "same-a", &local(web_a.port));
        let pid = connect(&a, "client-a", &local(db_b.port));
        let violations = agent.wait_violations(1);
        web_a.workload.finish();
        let feed = agent.feed();
        let flagged = network(&feed);
        assert_eq!(flagged.len(), 1, "cycle {cycle}: {violations:#?}");
        let v = flagged[0];
        assert_eq!(v["caller"]["pid"], pid, "{v:#}");
        assert_eq!(v["caller"]["tenant"], "a", "{v:#}");
        assert_eq!(v["target"]["tenant"], "b", "{v:#}");
        assert_eq!(v["target"]["port"], db_b.port, "{v:#}");

        // Cycle 1 is killed in the middle of a burst of connections.
        let burst = (cycle == 1).then(|| {
            let burst = Workload::start(
                Some(&a),
                "burst-a",
                &["tcp-connect", "--addr", &local(db_b.port), "--count", "500"],
            );
            agent.wait_until("the burst to be seen", |a| {
                network(&a.feed())
                    .iter()
                    .any(|v| v["caller"]["comm"] == "burst-a")
            });
            burst
        });
        agent.kill();
        killed.extend(progs);
        if let Some(burst) = burst {
            burst.finish();
        }
        drop(db_b);
    }
    wait_gone(&killed);
    assert!(bpf::pinned("seam").is_empty(), "{:?}", bpf::pinned("seam"));
    assert!(
        attached_per_cycle.windows(2).all(|w| w[0] == w[1]),
        "attachments per agent do not grow: {attached_per_cycle:?}"
    );
}
