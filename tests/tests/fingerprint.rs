//! `seam fingerprint` on the real kernel names what loads and what does not, and
//! `seam fleet-check` compares such reports (exit 0 uniform, 1 short, 2 unreadable).
use std::{collections::BTreeSet, fs, path::Path, process::Command};

use seam_integration_tests::{repo_rules_dir, require_root, seam_bin};
use serde_json::Value;

fn fingerprint(extra: &[&str]) -> Value {
    require_root();
    let out = Command::new(seam_bin())
        .arg("fingerprint")
        .args(extra)
        .env("SEAM_LOG", "error")
        .output()
        .expect("run seam fingerprint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("fingerprint is JSON")
}

fn rows<'a>(fp: &'a Value, program_type: &str) -> Vec<&'a Value> {
    fp["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["program_type"] == program_type)
        .collect()
}

#[test]
fn fingerprint_names_what_loads_on_this_kernel_and_what_does_not() {
    let fp = fingerprint(&[]);
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(fp["kernel"]["release"], release.trim());
    assert_eq!(fp["btf"]["present"], true, "Seam needs BTF");
    assert_eq!(fp["btf"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(fp["probe_object_sha256"].as_str().map(str::len), Some(64));
    assert!(fp["rules_sha256"].is_null());
    // The program types every supported kernel loads: live on their capability's best tier.
    for program_type in ["tracepoint", "tp_btf", "cgroup_skb", "cgroup_sock_addr"] {
        let rows = rows(&fp, program_type);
        assert!(!rows.is_empty(), "{program_type}");
        assert!(
            rows.iter()
                .any(|r| r["loaded"] == true && r["attached"] == true),
            "{program_type}: {rows:?}"
        );
    }
    assert_eq!(fp["capabilities"]["tcp_ends"]["program_type"], "tp_btf");
    assert_eq!(
        fp["capabilities"]["connect_intent"]["program_type"],
        "cgroup_sock_addr"
    );
    // Every failed row says why; no row is left untried.
    for row in fp["rows"].as_array().unwrap() {
        match row["state"].as_str().unwrap() {
            "failed" => assert!(
                row["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{row}"
            ),
            "live" | "standby" => assert_eq!(row["attached"], true, "{row}"),
            other => panic!("fingerprint tries every row, found {other}: {row}"),
        }
    }
    // This machine's kernel loads neither LSM, fentry, fexit nor kprobe programs: those rows are
    // reported failed with the kernel's answer, and file access falls back to the syscall exit
    // (one tp_btf program), reported with its cost; the per-syscall tracepoints stand by.
    for program_type in ["lsm", "fentry", "fexit", "kprobe"] {
        let rows = rows(&fp, program_type);
        assert!(!rows.is_empty(), "{program_type} rows are in the table");
        for row in rows {
            assert_eq!(
                row["state"], "failed",
                "{program_type} on this kernel: {row}"
            );
        }
    }
    if !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        for row in rows(&fp, "kprobe") {
            assert!(
                row["error"].as_str().unwrap().contains("kprobe"),
                "the kprobe error names the missing PMU: {row}"
            );
        }
    }
    let file = &fp["capabilities"]["file_access"];
    assert_eq!(file["program_type"], "tp_btf", "{file}");
    assert_eq!(file["reductions"], serde_json::json!(["syscall_tax"]));
    let hooks: BTreeSet<&str> = file["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(hooks, BTreeSet::from(["tp_btf/sys_exit"]));
    for row in rows(&fp, "tracepoint") {
        if row["capability"] == "file_access" {
            assert_eq!(row["state"], "standby", "{row}");
        }
    }
}

#[test]
fn fingerprint_hashes_the_rules_and_refuses_bad_ones() {
    let a = fingerprint(&["--rules", &repo_rules_dir().join("demo").to_string_lossy()]);
    let b = fingerprint(&["--rules", &repo_rules_dir().join("demo").to_string_lossy()]);
    let hash = a["rules_sha256"].as_str().expect("rules hash");
    assert_eq!(hash.len(), 64);
    assert_eq!(a["rules_sha256"], b["rules_sha256"], "the hash is stable");
    let shipped = fingerprint(&[
        "--rules",
        &repo_rules_dir().join("shipped").to_string_lossy(),
        "--rules",
        &repo_rules_dir().join("examples").to_string_lossy(),
    ]);
    assert_ne!(shipped["rules_sha256"], a["rules_sha256"]);

    let out = Command::new(seam_bin())
        .args(["fingerprint", "--rules", "/nonexistent/seam-rules"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot hash the rules"));
}

#[test]
fn fleet_check_exits_0_uniform_1_short_2_unreadable() {
    let fp = fingerprint(&[]);
    let dir = std::env::temp_dir().join(format!("seam-fleet-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, fp: &Value| {
        let mut fp = fp.clone();
        fp["node"] = Value::from(name);
        fs::write(dir.join(format!("{name}.json")), fp.to_string()).unwrap();
    };
    write("node-1", &fp);
    write("node-2", &fp);
    let check = |args: &[&str]| {
        Command::new(seam_bin())
            .arg("fleet-check")
            .args(args)
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("uniform: 2 node(s)"), "{text}");

    // A node whose file access runs on LSM: this node now falls short of it.
    let mut better = fp.clone();
    better["capabilities"]["file_access"]["program_type"] = Value::from("lsm");
    better["capabilities"]["file_access"]["rank"] = Value::from(0);
    write("node-lsm", &better);
    let out = check(&["--json", "--min-kernel", "99.0"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let node1 = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "node-1")
        .unwrap();
    let kinds: Vec<&str> = node1["shortfalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["worse_tier", "kernel_too_old"], "{node1}");

    fs::write(dir.join("garbage.json"), "not json").unwrap();
    let out = check(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.json"));
    let _ = fs::remove_dir_all(&dir);
}
