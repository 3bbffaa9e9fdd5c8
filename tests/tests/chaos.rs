//! `seam chaos` against a real running agent: every crossing it attempts from tenant a's cgroup
//! must be reported, and an agent blind to a class of crossing must make it fail. `seam chaos`
//! is the shipped build's (its processes are its own `seam chaos-actor`); the agent and the
//! target's extra service come from the testkit build, which runs the same agent.
use std::{fs, path::PathBuf, process::Command};

use seam_integration_tests::{
    Agent, Cgroups, cgroup2_root, listen, release_bin, repo_rules_dir, require_root, shipped_rules,
};
use serde_json::Value;

struct Setup {
    cgroups: Cgroups,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let mut cgroups = Cgroups::new();
        cgroups.create("a");
        cgroups.create("b");
        let dir = std::env::temp_dir().join(format!("{}-chaos", cgroups.base));
        for sub in ["a", "b"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Self { cgroups, dir }
    }

    fn tenants(&self) -> String {
        format!(
            "[[tenant]]\nname = \"a\"\ncgroups = [\"{a}\"]\npaths = [\"{dir}/a\"]\n\n\
             [[tenant]]\nname = \"b\"\ncgroups = [\"{b}\"]\npaths = [\"{dir}/b\"]\n",
            a = self.cgroups.rel("a"),
            b = self.cgroups.rel("b"),
            dir = self.dir.display(),
        )
    }

    /// Runs `seam chaos --from a --to b --json` against `agent`; returns its exit code and report.
    fn chaos(&self, agent: &Agent, timeout: &str, extra: &[&str]) -> (i32, Value) {
        let out = Command::new(release_bin())
            .args([
                "chaos",
                "--from",
                "a",
                "--to",
                "b",
                "--json",
                "--timeout",
                timeout,
            ])
            .args(extra)
            .arg("--rules")
            .arg(agent.dir.join("rules"))
            .arg("--feed")
            .arg(agent.dir.join("feed.jsonl"))
            .output()
            .expect("run seam chaos");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "bad chaos report ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn ids(report: &Value, seen: bool) -> Vec<String> {
    report["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["seen_by"].is_null() != seen)
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_attempted_crossing_is_reported_and_the_markers_are_removed() {
    let s = Setup::new();
    let rules = format!("{}\n{}", s.tenants(), shipped_rules());
    let mut agent = Agent::start_with(&rules, &["--aggregate-window", "0"]);
    // A service of b's that chaos is told about, besides the listeners it starts itself.
    let service = listen(
        "tcp-listen",
        Some(&s.cgroups.rel("b")),
        "b-service",
        "127.0.0.1:0",
        1,
    );
    let target = format!("127.0.0.1:{}", service.port);
    let (code, report) = s.chaos(&agent, "20", &["--target", &target]);
    assert_eq!(code, 0, "{report:#}\nagent log:\n{}", agent.log());
    assert_eq!(report["passed"], true, "{report:#}");
    let seen = ids(&report, true);
    for id in [
        "tcp-target-0",
        "tcp4",
        "udp4-unconnected",
        "udp4-connected",
        "read-absolute",
        "read-dotdot",
        "read-relative",
        "read-symlink",
        "read-bind-mount",
        "create",
        "truncate",
        "rename",
        "unlink",
        "exec",
    ] {
        assert!(seen.contains(&id.to_owned()), "{id} not seen: {report:#}");
    }
    // The setup was made from inside each tenant: no finding about a chaos-setup process, and
    // nothing is left behind in either tenant's tree.
    agent.stop();
    let setup_findings: Vec<_> = agent
        .feed()
        .into_iter()
        .filter(|v| {
            v["caller"]["comm"].as_str().is_some_and(|c| {
                c.starts_with("chaos-setup")
                    || c.starts_with("chaos-cleanup")
                    || c.starts_with("chaos-tcp")
                    || c.starts_with("chaos-udp")
            })
        })
        .collect();
    assert!(setup_findings.is_empty(), "{setup_findings:#?}");
    for sub in ["a", "b"] {
        let left: Vec<_> = fs::read_dir(s.dir.join(sub)).unwrap().collect();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
}

#[test]
fn an_agent_blind_to_file_crossings_fails_the_run() {
    let s = Setup::new();
    // Only the network rule: every file attempt goes unreported, every network one is seen.
    let rules = format!(
        "{}\n[[rule]]\nid = \"cross-tenant-network\"\nseverity = \"high\"\n\
         description = \"network only\"\n\
         expr = \"trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant)\"\n",
        s.tenants()
    );
    let agent = Agent::start_with(&rules, &["--aggregate-window", "0"]);
    let (code, report) = s.chaos(&agent, "3", &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["passed"], false);
    let unseen = ids(&report, false);
    assert!(unseen.contains(&"read-absolute".to_owned()), "{report:#}");
    assert!(unseen.contains(&"exec".to_owned()), "{report:#}");
    assert!(
        ids(&report, true).contains(&"tcp4".to_owned()),
        "{report:#}"
    );
}

#[test]
fn an_unknown_tenant_is_a_clear_error() {
    let s = Setup::new();
    let rules = s.dir.join("rules");
    fs::create_dir_all(&rules).unwrap();
    fs::write(
        rules.join("tenants.toml"),
        format!("{}\n{}", s.tenants(), shipped_rules()),
    )
    .unwrap();
    let out = Command::new(release_bin())
        .args(["chaos", "--from", "a", "--to", "nobody", "--rules"])
        .arg(&rules)
        .arg("--feed")
        .arg(s.dir.join("feed.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no tenant \"nobody\""), "{stderr}");
}

/// The README's demo tenants, with the demo's own rules: chaos from tenant-a to tenant-b is
/// seen in full by an agent run with `rules/demo`.
#[test]
fn chaos_against_the_demo_tenants_is_seen_in_full() {
    struct Demo;
    impl Drop for Demo {
        fn drop(&mut self) {
            for t in ["tenant-a", "tenant-b"] {
                let _ = fs::remove_dir(cgroup2_root().join("seam-demo").join(t));
            }
            let _ = fs::remove_dir(cgroup2_root().join("seam-demo"));
            let _ = fs::remove_dir_all("/tmp/seam-demo");
        }
    }
    require_root();
    let _demo = Demo;
    for t in ["tenant-a", "tenant-b"] {
        fs::create_dir_all(cgroup2_root().join("seam-demo").join(t)).unwrap();
        fs::create_dir_all(PathBuf::from("/tmp/seam-demo").join(t)).unwrap();
    }
    let rules = repo_rules_dir().join("demo");
    let text: Vec<String> = fs::read_dir(&rules)
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let agent = Agent::start_with(&text.join("\n"), &["--aggregate-window", "0"]);
    let out = Command::new(release_bin())
        .args([
            "chaos", "--from", "tenant-a", "--to", "tenant-b", "--json", "--rules",
        ])
        .arg(&rules)
        .arg("--feed")
        .arg(agent.dir.join("feed.jsonl"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report:#}\n{}", agent.log());
    // Every kind: 2 TCP, 4 UDP (IPv4 only without IPv6), 5 reads, create, truncate, rename,
    // unlink, exec.
    assert!(report["attempts"].as_u64().unwrap() >= 13, "{report:#}");
    assert_eq!(report["seen"], report["attempts"], "{report:#}");
}
