//! The sealed store and its keys, through real `seam` processes: the `seam keys` CLI, an
//! appending `seam workload store-append` killed mid-write or starved of disk, and
//! `seam workload store-read` to see what survived.
use std::{fs, path::PathBuf, process::Command};

use seam_integration_tests::{
    require_root, seam_bin,
    store::{Appender, Fixture, Tmpfs, fill, index, issues, last_json, mode, text, walk},
};

#[test]
fn keys_rotate_retire_list_and_a_private_store() {
    let f = Fixture::new();
    assert_eq!(mode(&f.master()), 0o600);
    f.append("a,b", 400);
    let rotated = f.keys_ok(&["rotate", "a"]);
    assert!(rotated.contains("tenant a: epoch 2"), "{rotated}");
    f.append("a", 100);
    let list = f.keys_ok(&["list"]);
    assert!(
        list.contains("readable") && list.contains("active"),
        "{list}"
    );
    let key = fs::read_to_string(f.master()).unwrap();
    assert!(!list.contains(key.trim()), "list shows the master key");

    let (records, report) = f.read();
    assert_eq!(records.len(), 500);
    assert!(report["issues"].as_array().unwrap().is_empty(), "{report}");

    // The active epoch cannot be retired; an old one can, and its history goes with it.
    let out = f.keys(&["retire", "a", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("rotate"),
        "{}",
        text(&out.stderr)
    );
    f.keys_ok(&["retire", "a", "1"]);
    let (records, report) = f.read();
    let a: Vec<_> = records.iter().filter(|r| r.0 == "a").collect();
    assert_eq!(a.len(), 100, "only epoch 2 of a is readable");
    assert_eq!(records.len() - a.len(), 200, "b is untouched");
    assert_eq!(issues(&report, "key_unavailable").len(), 1, "{report}");

    // The environment variable is the other source of the master key; a wrong key is refused.
    let out = f
        .cmd()
        .args(["keys", "--store"])
        .arg(f.store())
        .args(["rotate", "--node"])
        .env("SEAM_MASTER_KEY", key.trim())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = f
        .cmd()
        .args(["keys", "--store"])
        .arg(f.store())
        .args(["rotate", "a"])
        .env(
            "SEAM_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not this keyring's"),
        "{}",
        text(&out.stderr)
    );

    let mut paths = Vec::new();
    walk(&f.store(), &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    for path in paths {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
    }
}

#[test]
fn shred_makes_one_tenants_history_unreadable() {
    let f = Fixture::new();
    f.append("a,b", 1000);
    let out = f.keys(&["shred", "a"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "shred without --yes must refuse"
    );
    assert!(text(&out.stderr).contains("--yes"));
    let shred = f.keys_ok(&["shred", "a", "--yes"]);
    assert!(shred.contains("1 key(s) destroyed"), "{shred}");
    let (records, report) = f.read();
    assert!(records.iter().all(|r| r.0 == "b"), "a is still readable");
    assert_eq!(records.len(), 500);
    let unavailable = issues(&report, "key_unavailable");
    assert_eq!(unavailable.len(), 1, "{report}");
    assert!(
        unavailable[0]["reason"]
            .as_str()
            .unwrap()
            .contains("shredded")
    );
    let list = f.keys_ok(&["list", "--json"]);
    assert!(list.contains("\"shredded\""), "{list}");
}

#[test]
fn escrow_shares_rebuild_the_master_key_and_one_share_does_not() {
    let f = Fixture::new();
    let shares = f.dir.join("escrow");
    let out = f.keys_ok(&[
        "escrow",
        "split",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--out",
        shares.to_str().unwrap(),
    ]);
    assert!(out.contains("any 2 of 3"), "{out}");
    let files: Vec<PathBuf> = (1..=3)
        .map(|i| shares.join(format!("share-{i}-of-3.json")))
        .collect();
    for file in &files {
        assert_eq!(mode(file), 0o600);
    }
    let rebuilt = f.dir.join("rebuilt.key");
    let out = f.keys_ok(&[
        "escrow",
        "recover",
        files[0].to_str().unwrap(),
        files[2].to_str().unwrap(),
        "--out",
        rebuilt.to_str().unwrap(),
    ]);
    assert!(out.contains("rebuilt the master key"), "{out}");
    assert_eq!(
        fs::read_to_string(&rebuilt).unwrap(),
        fs::read_to_string(f.master()).unwrap()
    );
    assert_eq!(mode(&rebuilt), 0o600);

    let lost = f.dir.join("one.key");
    let out = f.keys(&[
        "escrow",
        "recover",
        files[1].to_str().unwrap(),
        "--out",
        lost.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("2 needed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!lost.exists());
    let audit = f.keys_ok(&["audit"]);
    assert!(
        audit.contains("escrow_split") && audit.contains("escrow_recover"),
        "{audit}"
    );
}

#[test]
fn the_key_audit_log_answers_who_and_detects_edits() {
    let f = Fixture::new();
    f.append("a", 10);
    f.keys_ok(&["rotate", "a"]);
    let audit = f.keys_ok(&["audit", "--tenant", "a"]);
    let lines: Vec<_> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(
        lines[0].contains("create") && lines[0].contains("(Workload)"),
        "{audit}"
    );
    assert!(
        lines[1].contains("rotate") && lines[1].contains("(Cli)"),
        "{audit}"
    );
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(lines[1].contains(&format!("on {}", host.trim())), "{audit}");
    let today = f.keys_ok(&["audit", "--since", "2000-01-01", "--until", "2000-01-02"]);
    assert!(today.is_empty(), "{today}");
    let verify = f.keys_ok(&["audit", "--verify"]);
    assert!(
        verify.contains("intact") && verify.contains("authenticated"),
        "{verify}"
    );

    // Someone rewrites who did the rotation.
    let log = f.store().join("keys/audit.log");
    let original = fs::read_to_string(&log).unwrap();
    let pid = original.lines().nth(3).unwrap();
    let forged = original.replacen(
        pid,
        &pid.replace("\"kind\":\"cli\"", "\"kind\":\"agent\""),
        1,
    );
    assert_ne!(forged, original);
    fs::write(&log, forged).unwrap();
    let out = f.keys(&["audit", "--verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).contains("chain broken") || text(&out.stdout).contains("head says"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_kill_during_writes_loses_only_the_unsealed_tail() {
    let f = Fixture::new();
    let never = f.dir.join("never");
    let mut appender = Appender::start(
        &f,
        &[
            "--tenants",
            "a,b",
            "--stop-file",
            never.to_str().unwrap(),
            "--progress-every",
            "500",
            "--frame-bytes",
            "4096",
            "--record-bytes",
            "300",
            "--sync",
            "never",
        ],
    );
    let progress = appender.until("20000 sealed records", |v| {
        v["progress"]["records_sealed"].as_u64() >= Some(20_000)
    });
    let sealed = progress["progress"]["records_sealed"].as_u64().unwrap();
    // SAFETY: killing our own child.
    unsafe { libc::kill(appender.child.id() as i32, libc::SIGKILL) };
    appender.child.wait().unwrap();

    let (records, report) = f.read();
    assert!(
        records.len() as u64 >= sealed,
        "{} read, {sealed} were sealed",
        records.len()
    );
    for tenant in ["a", "b"] {
        let mut indices: Vec<u64> = records
            .iter()
            .filter(|r| r.0 == tenant)
            .map(|r| index(&r.1))
            .collect();
        let first = u64::from(tenant == "b");
        let want: Vec<u64> = (0..indices.len() as u64).map(|i| first + 2 * i).collect();
        indices.sort_unstable();
        assert_eq!(indices, want, "{tenant}: records missing or duplicated");
    }
    assert_eq!(issues(&report, "not_closed").len(), 2, "{report}");
    assert!(issues(&report, "frame_damaged").is_empty(), "{report}");

    // Power loss mid-frame: cut a's newest segment inside its last whole frame (after a tail
    // the kill may have torn already).
    let mut segments: Vec<PathBuf> = fs::read_dir(f.store().join("segments/t-a"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let segment = segments.pop().unwrap();
    let torn_before = issues(&report, "torn_tail");
    let end = match torn_before.as_slice() {
        [] => fs::metadata(&segment).unwrap().len(),
        [torn] => torn["offset"].as_u64().unwrap(),
        more => panic!("several torn tails: {more:?}"),
    };
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(end - 100)
        .unwrap();
    let a_before = records.iter().filter(|r| r.0 == "a").count();
    let (records, report) = f.read();
    let torn = issues(&report, "torn_tail");
    assert_eq!(torn.len(), 1, "{report}");
    assert_eq!(torn[0]["path"], segment.to_str().unwrap());
    assert!(torn[0]["offset"].as_u64().unwrap() < end - 100);
    let a_after = records.iter().filter(|r| r.0 == "a").count();
    assert!(
        a_after < a_before && a_before - a_after <= 4096 / 300 + 1,
        "{a_before} -> {a_after}"
    );
}

#[test]
fn a_full_disk_is_a_counted_gap_and_appends_resume() {
    require_root();
    let f = Fixture::new();
    let mnt = Tmpfs::mount(&f.dir.join("mnt"), "4m");
    // The store moves onto the small tmpfs (its keys too).
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

    let stop = f.dir.join("stop");
    let mut appender = Appender::start(
        &f,
        &[
            "--tenants",
            "a",
            "--stop-file",
            stop.to_str().unwrap(),
            "--progress-every",
            "20",
            "--frame-bytes",
            "8192",
            "--record-bytes",
            "500",
            "--pause-ms",
            "20",
        ],
    );
    appender.until("records sealed", |v| {
        v["progress"]["records_sealed"].as_u64() > Some(0)
    });
    let filler = mnt.0.join("filler");
    fill(&filler);
    let full = appender.until("a gap", |v| {
        v["progress"]["records_dropped"].as_u64() > Some(0)
    });
    assert!(full["errors"].as_u64() > Some(0));
    fs::remove_file(&filler).unwrap();
    let sealed_then = full["progress"]["records_sealed"].as_u64().unwrap();
    appender.until("appends to resume", |v| {
        v["progress"]["records_sealed"].as_u64() > Some(sealed_then + 500)
    });
    fs::write(&stop, "").unwrap();
    let done = appender.until("the end", |v| v.get("done").is_some());
    let status = appender.child.wait().unwrap();
    assert!(status.success(), "the appender failed: {status}");

    let stats = &done["done"];
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert!(n("records_dropped") > 0);
    assert_eq!(
        n("records_sealed") + n("records_dropped") + n("records_rejected"),
        n("records_appended"),
        "{stats}"
    );
    let gaps = done["gaps"].as_array().unwrap();
    assert!(!gaps.is_empty());
    let dropped: u64 = gaps.iter().map(|g| g["records"].as_u64().unwrap()).sum();
    assert_eq!(
        dropped,
        n("records_dropped"),
        "every dropped record is in a gap: {gaps:?}"
    );
    for gap in gaps {
        assert_eq!(gap["scope"]["name"], "a");
        assert_eq!(gap["reason"], "disk_full");
        assert!(gap["from_ns"].as_u64() <= gap["to_ns"].as_u64());
    }

    let (records, report) = f.read();
    assert_eq!(records.len() as u64, n("records_sealed"), "{report}");
    assert!(issues(&report, "frame_damaged").is_empty(), "{report}");
    assert!(issues(&report, "torn_tail").is_empty(), "{report}");
    let mut indices: Vec<u64> = records.iter().map(|r| index(&r.1)).collect();
    let before = indices.len();
    indices.dedup();
    assert_eq!(indices.len(), before, "duplicates");
    assert!(
        indices.last() > Some(&sealed_then),
        "records after the gap are readable"
    );
}

#[test]
fn seal_benchmark_reports_throughput_and_exact_overhead() {
    let out = Command::new(seam_bin())
        .args([
            "workload",
            "store-bench",
            "--records",
            "100000",
            "--rounds",
            "1",
        ])
        .env("SEAM_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bench = last_json(&out.stdout);
    for key in [
        "seal_mb_s",
        "raw_mb_s",
        "ratio",
        "read_records_s",
        "store_mb_s",
    ] {
        assert!(
            bench[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {bench}"
        );
    }
    assert_eq!(bench["read_issues"], 0);
    let n = |k: &str| bench[k].as_u64().unwrap();
    assert_eq!(
        n("bytes_written"),
        n("bytes_plaintext") + n("frames") * 57,
        "{bench}"
    );
    assert_eq!(n("bytes_plaintext"), 100_000 * (256 + 12));
}
