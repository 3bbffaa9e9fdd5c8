//! Sealed history end to end on the real kernel: `seam run --store` writes it while tenant
//! workloads cross; `seam replay`, `seam report` and `seam validate` read it back.
use std::{collections::BTreeSet, fs, path::PathBuf, process::Command};

use seam_integration_tests::{
    Agent, Cgroups, Workload,
    history::{History, png_colours, screenshot},
    listen,
    store::{Tmpfs, fill, text},
};
use serde_json::Value;

/// Tenants a and b with cgroups and data directories (b's `pii` is regulated), and the
/// cross-tenant network and file rules.
struct Scene {
    cgroups: Cgroups,
    data: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let mut cgroups = Cgroups::new();
        cgroups.create("a");
        cgroups.create("b");
        let data = std::env::temp_dir().join(format!("{}-data", cgroups.base));
        for dir in ["a", "b/pii"] {
            fs::create_dir_all(data.join(dir)).unwrap();
        }
        fs::write(data.join("a/own"), "a").unwrap();
        fs::write(data.join("b/notes"), "b").unwrap();
        fs::write(data.join("b/pii/customers"), "b's customers").unwrap();
        Self { cgroups, data }
    }

    fn tenants(&self) -> String {
        format!(
            r#"
[[tenant]]
name = "a"
cgroups = ["{a}"]
paths = ["{d}/a"]

[[tenant]]
name = "b"
cgroups = ["{b}"]
paths = ["{d}/b", {{ path = "{d}/b/pii", tier = "regulated" }}]
"#,
            a = self.cgroups.rel("a"),
            b = self.cgroups.rel("b"),
            d = self.data.display()
        )
    }

    fn rules(&self) -> String {
        self.tenants()
            + r#"
[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant's process connected to another tenant's endpoint"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant)"

[[rule]]
id = "cross-tenant-file"
severity = "high"
description = "A tenant's process accessed another tenant's files"
expr = "trace.has(file.*).where(tenant != null and file.tenant != null and file.tenant != tenant)"
"#
    }

    fn path(&self, rel: &str) -> String {
        self.data.join(rel).display().to_string()
    }

    /// Connects from a's cgroup to `port` `count` times.
    fn connect(&self, port: u16, count: u32) {
        Workload::start(
            Some(&self.cgroups.rel("a")),
            "client-a",
            &[
                "tcp-connect",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--count",
                &count.to_string(),
            ],
        )
        .finish();
    }

    /// Reads `rel` from a's cgroup.
    fn read(&self, rel: &str) {
        Workload::start(
            Some(&self.cgroups.rel("a")),
            "reader-a",
            &["file-op", "--op", "read", "--path", &self.path(rel)],
        )
        .finish();
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.data);
    }
}

fn violations(agent: &Agent) -> Vec<Value> {
    agent
        .feed()
        .into_iter()
        .filter(|v| v.get("rule_id").is_some())
        .collect()
}

/// (rule, trace id, span id) of each violation.
fn ids(list: &[Value]) -> BTreeSet<(String, String, String)> {
    list.iter()
        .map(|v| {
            (
                v["rule_id"].as_str().unwrap().to_owned(),
                v["trace_id"].as_str().unwrap().to_owned(),
                v["span_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn replay_of_a_seeded_history_gives_exactly_its_breach_scope() {
    let scene = Scene::new();
    let history = History::new();
    let rules = history.rules_dir("rules", &scene.rules());
    let args = history.run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Agent::start_with(&scene.rules(), &args);

    let b = listen(
        "tcp-listen",
        Some(&scene.cgroups.rel("b")),
        "db-b",
        "127.0.0.1:0",
        3,
    );
    let a = listen(
        "tcp-listen",
        Some(&scene.cgroups.rel("a")),
        "web-a",
        "127.0.0.1:0",
        1,
    );
    scene.connect(b.port, 3);
    scene.connect(a.port, 1);
    scene.read("a/own");
    scene.read("b/notes");
    scene.read("b/pii/customers");
    agent.wait_until("5 violations", |a| violations(a).len() >= 5);
    b.workload.finish();
    a.workload.finish();
    let stats = agent.stop();
    let live = violations(&agent);
    assert_eq!(live.len(), 5, "{live:#?}");
    let kept = &stats["history"];
    assert!(kept["records"].as_u64() > Some(5), "{kept}");
    assert_eq!(kept["store"]["records_dropped"], 0, "{kept}");
    assert_eq!(kept["queue_full"], 0, "{kept}");

    let scope = history.replay(&rules, &[]);
    assert_eq!(scope["violations_total"], 5, "{scope:#}");
    assert_eq!(scope["violations_complete"], true);
    let replayed: Vec<Value> = scope["violations"].as_array().unwrap().clone();
    assert_eq!(
        ids(&replayed),
        ids(&live),
        "replay finds exactly what the agent flagged"
    );
    let traces: BTreeSet<&str> = live
        .iter()
        .map(|v| v["trace_id"].as_str().unwrap())
        .collect();
    let replay_traces: BTreeSet<&str> = scope["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(replay_traces, traces);
    let pairs = scope["tenant_pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    assert_eq!(
        (pairs[0]["from"].as_str(), pairs[0]["to"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_eq!(pairs[0]["by_rule"]["cross-tenant-network"], 3);
    assert_eq!(pairs[0]["by_rule"]["cross-tenant-file"], 2);
    assert_eq!(scope["by_tier"]["regulated"], 1, "{scope:#}");
    assert_eq!(scope["by_tier"]["unclassified"], 4);
    assert!(scope["first"].as_str() <= scope["last"].as_str());
    assert!(
        scope["read_issues"].as_array().unwrap().is_empty(),
        "{scope:#}"
    );
    let regulated = replayed.iter().find(|v| v["tier"] == "regulated").unwrap();
    assert!(
        regulated["target"]["path"]
            .as_str()
            .unwrap()
            .ends_with("b/pii/customers")
    );

    // Each tenant's history holds every crossing that involved it.
    for tenant in ["a", "b"] {
        let one = history.replay(&rules, &["--tenant", tenant]);
        assert_eq!(
            ids(one["violations"].as_array().unwrap()),
            ids(&live),
            "{tenant}"
        );
    }
    // A rule written after the fact finds its matches in old history.
    let audit = scene.tenants()
        + r#"
[[rule]]
id = "regulated-data-touched"
severity = "critical"
description = "Anything touched regulated data"
expr = "trace.has(file.*).where(file.tier == \"regulated\")"
"#;
    let later = history.rules_dir("later", &audit);
    let scope = history.replay(&later, &[]);
    assert_eq!(scope["violations_total"], 1, "{scope:#}");
    assert_eq!(scope["by_rule"]["regulated-data-touched"]["count"], 1);

    // The CI gate: violations listed, exit 1; none, exit 0; unreadable, exit 2.
    let out = history.read_cmd("validate", &rules, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(" violations\n") && stdout.contains(", 5 violations"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("cross-tenant-"))
            .count(),
        5,
        "{stdout}"
    );
    let allowed =
        scene.rules() + "\n[[allow]]\nfrom = \"a\"\nto = \"b\"\nreason = \"test: a may use b\"\n";
    let allow_dir = history.rules_dir("allowed", &allowed);
    let out = history.read_cmd("validate", &allow_dir, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let operations: u64 = stdout.split_whitespace().next().unwrap().parse().unwrap();
    assert!(operations >= 9, "{stdout}");
    assert_eq!(
        stdout.trim(),
        format!("{operations} operations validated, 0 violations")
    );
    let out = history
        .fixture
        .cmd()
        .args(["validate", "--store"])
        .arg(history.store())
        .arg("--rules")
        .arg(&rules)
        .env(
            "SEAM_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("is not this keyring's"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(seam_integration_tests::seam_bin())
        .args(["validate", "--store", "/nonexistent/store", "--rules"])
        .arg(&rules)
        .env(
            "SEAM_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no store at"),
        "{}",
        text(&out.stderr)
    );

    // The report, in its three forms.
    let dir = &history.fixture.dir;
    let out = history.read_cmd("report", &rules, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["violations"]["violations_total"], 5);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0]["stopped"].is_string());
    assert!(!runs[0]["live_hooks"].as_array().unwrap().is_empty());
    assert!(!report["hooks_live"].as_array().unwrap().is_empty());
    let b_ops = report["operations_by_history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["history"] == "b")
        .unwrap();
    assert_eq!(b_ops["by_tier"]["regulated"], 1, "{report:#}");
    let epochs = report["key_epochs"].as_array().unwrap();
    assert!(
        epochs
            .iter()
            .any(|e| e["history"] == "a" && e["state"] == "active"),
        "{epochs:?}"
    );
    assert!(report["gaps"]["store_gaps"].as_array().unwrap().is_empty());
    let out = history.read_cmd("report", &rules, &["--format", "markdown"]);
    let md = text(&out.stdout);
    assert!(md.contains(", 5 violations**"), "{md}");
    assert!(md.contains("| a | b | 5 |"), "{md}");
    let page = dir.join("report.html");
    let out = history.read_cmd(
        "report",
        &rules,
        &["--format", "html", "--output", page.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    let shot = screenshot(&page, dir);
    let (width, height, colours) = png_colours(&shot);
    assert!(width >= 800 && height >= 800, "{width}x{height}");
    assert!(colours > 8, "the screenshot is blank ({colours} colours)");
}

#[test]
fn a_full_store_is_a_counted_gap_while_crossings_keep_being_flagged() {
    let scene = Scene::new();
    let history = History::new();
    let f = &history.fixture;
    let mnt = Tmpfs::mount(&f.dir.join("mnt"), "2m");
    let store = mnt.0.join("store");
    let out = Command::new("cp")
        .arg("-a")
        .arg(f.store())
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    fs::remove_dir_all(f.store()).unwrap();
    std::os::unix::fs::symlink(&store, f.store()).unwrap();
    let rules = history.rules_dir("rules", &scene.rules());
    let args = history.run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Agent::start_with(&scene.rules(), &args);

    let b = listen(
        "tcp-listen",
        Some(&scene.cgroups.rel("b")),
        "db-b",
        "127.0.0.1:0",
        60,
    );
    scene.connect(b.port, 1);
    agent.wait_until("the first crossing", |a| !violations(a).is_empty());
    // Both tenants' keys and segments exist before the disk fills (a key that cannot be
    // created is a `no_key` gap instead).
    let segments = |t: &str| {
        fs::read_dir(store.join("segments").join(t))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    agent.wait_until("both tenants' segments", |_| {
        segments("t-a") > 0 && segments("t-b") > 0
    });
    let filler = mnt.0.join("filler");
    fill(&filler);
    // Crossings go on while the store cannot write: each is flagged, and the lost history is
    // a counted loss.
    let mut made = 1;
    let deadline = std::time::Instant::now() + seam_integration_tests::WAIT * 2;
    while !agent
        .feed()
        .iter()
        .any(|r| r["kind"] == "loss" && r["source"] == "store")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no store loss; log:\n{}",
            agent.log()
        );
        scene.connect(b.port, 1);
        made += 1;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    agent.wait_until("every crossing flagged", |a| violations(a).len() >= made);
    fs::remove_file(&filler).unwrap();
    scene.connect(b.port, 2);
    made += 2;
    agent.wait_until("the crossings after the gap", |a| {
        violations(a).len() >= made
    });
    let stats = agent.stop();
    drop(b);
    let dropped = stats["history"]["store"]["records_dropped"]
        .as_u64()
        .unwrap();
    assert!(dropped > 0, "{stats:#}");
    let loss = agent
        .feed()
        .into_iter()
        .find(|r| r["kind"] == "loss" && r["source"] == "store")
        .unwrap();
    assert_eq!(loss["probe"], "disk_full", "{loss}");

    let scope = history.replay(&rules, &[]);
    let gaps = scope["store_gaps"].as_array().unwrap();
    assert!(
        !gaps.is_empty(),
        "the gap is recorded once space returns: {scope:#}"
    );
    assert!(gaps.iter().all(|g| g["reason"] == "disk_full"), "{gaps:?}");
    // `seam report` shows the same gap in the evidence.
    let out = history.read_cmd("report", &rules, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reported = report["gaps"]["store_gaps"].as_array().unwrap();
    assert!(
        !reported.is_empty() && reported.iter().all(|g| g["reason"] == "disk_full"),
        "{:#}",
        report["gaps"]
    );
    let in_gaps: u64 = gaps.iter().map(|g| g["records"].as_u64().unwrap()).sum();
    assert!(
        in_gaps > 0 && in_gaps <= dropped,
        "{in_gaps} recorded, {dropped} dropped"
    );
    let found = scope["violations_total"].as_u64().unwrap();
    assert!(
        found >= 3,
        "crossings before and after the gap are in history: {scope:#}"
    );
    // A crossing is lost only when both tenants' copies were (a copy can still fit in the
    // slack of a segment's last page): never more than were made.
    assert!(found <= made as u64, "{found} of {made}");
    let damaged: Vec<&Value> = scope["read_issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "frame_damaged" || i["kind"] == "torn_tail")
        .collect();
    assert!(damaged.is_empty(), "{damaged:?}");
}
