//! What operators expect of a node agent, on the real kernel: a config file under flags and
//! `SEAM_*` variables, each exit code, rules hot-reloaded through a Kubernetes ConfigMap's
//! symlink swap, and a falcosidekick-format webhook payload checked against its schema.
use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use seam_integration_tests::{
    Agent, Cgroups, WAIT, Workload, listen,
    python::{python, script},
    require_root, seam_bin, two_tenants,
};
use serde_json::Value;

/// One crossing from a's client to a listener in b; returns the listener's port.
fn cross(cgroups: &Cgroups) -> u16 {
    let server = listen(
        "tcp-listen",
        Some(&cgroups.rel("b")),
        "db-b",
        "127.0.0.1:0",
        1,
    );
    Workload::start(
        Some(&cgroups.rel("a")),
        "client-a",
        &[
            "tcp-connect",
            "--addr",
            &format!("127.0.0.1:{}", server.port),
        ],
    )
    .finish();
    server.port
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn records(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

#[test]
fn flags_beat_seam_variables_which_beat_the_config_file() {
    require_root();
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    cgroups.create("b");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("rules")).unwrap();
    fs::write(d.join("rules/t.toml"), two_tenants(&cgroups, "")).unwrap();
    let config = format!(
        "rules = [{rules:?}]\nnode = \"node-from-file\"\nfeed_file = {file_feed:?}\n\
         ready_file = {ready:?}\nquiet = true\naggregate_window = 0\n",
        rules = d.join("rules"),
        file_feed = d.join("file-feed.jsonl"),
        ready = d.join("ready.json"),
    );
    fs::write(d.join("seam.toml"), config).unwrap();
    let log = fs::File::create(d.join("log")).unwrap();
    let mut child = Command::new(seam_bin())
        .args(["run", "--config"])
        .arg(d.join("seam.toml"))
        .arg("--feed-file")
        .arg(d.join("cli-feed.jsonl"))
        .env("SEAM_NODE", "node-from-env")
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for("the agent to be ready", || d.join("ready.json").exists());
    let port = cross(&cgroups);
    wait_for("the violation in the command line's feed file", || {
        records(&d.join("cli-feed.jsonl"))
            .iter()
            .any(|v| v["target"]["port"] == port)
    });
    interrupt(&child);
    assert!(child.wait().unwrap().success());
    let violation = records(&d.join("cli-feed.jsonl"))
        .into_iter()
        .find(|v| v["target"]["port"] == port)
        .unwrap();
    assert_eq!(
        violation["node"], "node-from-env",
        "SEAM_NODE beats the file"
    );
    assert!(
        !d.join("file-feed.jsonl").exists(),
        "--feed-file beats the file's feed_file"
    );
}

fn seam_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(seam_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_say_ok_violations_usage_or_runtime() {
    require_root();
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    cgroups.create("b");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    fs::create_dir(&rules).unwrap();
    fs::write(rules.join("t.toml"), two_tenants(&cgroups, "")).unwrap();
    let rules_arg = rules.to_string_lossy().into_owned();

    // 2: the input is wrong (a config file key, a flag value).
    let bad_config = dir.path().join("bad.toml");
    fs::write(&bad_config, "feed_fil = \"x\"\n").unwrap();
    let (code, stderr) = seam_exit(
        &[
            "run",
            "--rules",
            &rules_arg,
            "--config",
            &bad_config.to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown key `feed_fil`"), "{stderr}");
    let (code, stderr) = seam_exit(&["run", "--rules", &rules_arg, "--log-format", "xml"], &[]);
    assert_eq!(code, Some(2), "{stderr}");

    // 3: the node cannot run it (a host path that is not what its flag says; a runtime
    // that does not answer while tenants are declared by namespace).
    let (code, stderr) = seam_exit(
        &[
            "run",
            "--rules",
            &rules_arg,
            "--cgroup-root",
            &dir.path().to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("is not a cgroup v2 mount"), "{stderr}");
    let k8s = dir.path().join("k8s");
    fs::create_dir(&k8s).unwrap();
    fs::write(
        k8s.join("t.toml"),
        "[[tenant]]\nname = \"acme\"\nnamespaces = [\"acme-*\"]\n[[rule]]\nid = \"r\"\n\
         severity = \"high\"\ndescription = \"d\"\nexpr = \"trace.has(net.*)\"\n",
    )
    .unwrap();
    let (code, stderr) = seam_exit(
        &[
            "run",
            "--rules",
            &k8s.to_string_lossy(),
            "--container-runtime",
            "docker",
            "--container-runtime-endpoint",
            "/nonexistent/docker.sock",
        ],
        &[],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
    let (code, stderr) = seam_exit(
        &["run", "--rules", &rules_arg, "--kubernetes-api"],
        &[
            ("KUBERNETES_SERVICE_HOST", ""),
            ("KUBERNETES_SERVICE_PORT", ""),
        ],
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("--kubernetes-api needs the in-cluster config"),
        "{stderr}"
    );

    // 1 with --fail-on-violation after a crossing; 0 without one.
    for (crossing, expected) in [(true, 1), (false, 0)] {
        let ready = dir.path().join(format!("ready-{crossing}.json"));
        let stats = dir.path().join(format!("stats-{crossing}.json"));
        let mut child = Command::new(seam_bin())
            .args([
                "run",
                "--rules",
                &rules_arg,
                "--quiet",
                "--fail-on-violation",
            ])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--stats-file")
            .arg(&stats)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("ready", || ready.exists());
        if crossing {
            cross(&cgroups);
        }
        // The listener and client are done; the agent flushes at SIGINT.
        std::thread::sleep(Duration::from_millis(300));
        interrupt(&child);
        let status = child.wait().unwrap();
        let stats: Value = serde_json::from_str(&fs::read_to_string(&stats).unwrap()).unwrap();
        assert_eq!(
            stats["violations"].as_u64().unwrap() > 0,
            crossing,
            "{stats}"
        );
        assert_eq!(status.code(), Some(expected), "crossing: {crossing}");
    }
}

/// Lays `dir` out as the kubelet's atomic writer does a ConfigMap volume: the files are
/// symlinks `NAME -> ..data/NAME`, `..data` a symlink to a timestamped directory; an update
/// writes a new directory and renames a fresh `..data` link over the old one.
fn configmap_write(dir: &Path, generation: u32, files: &[(&str, &str)]) {
    let data = format!("..2026_11_23_00_00_0{generation}.000000001");
    fs::create_dir(dir.join(&data)).unwrap();
    for (name, text) in files {
        fs::write(dir.join(&data).join(name), text).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&data, &tmp).unwrap();
    fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        std::os::unix::fs::symlink(PathBuf::from("..data").join(name), &tmp).unwrap();
        fs::rename(&tmp, &link).unwrap();
    }
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..2026") && name != data {
            fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}

#[test]
fn rules_reload_through_a_configmap_symlink_swap() {
    require_root();
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    cgroups.create("b");
    let allowed = two_tenants(
        &cgroups,
        "[[allow]]\nrule = \"cross-tenant-network\"\nfrom = \"a\"\nto = \"b\"\nreason = \"SEC-1\"\n",
    );
    let mut agent = Agent::start_with(&allowed, &["--feed-spans"]);
    let dir = agent.rules_file().parent().unwrap().to_owned();
    configmap_write(&dir, 1, &[("tenants.toml", &allowed)]);
    agent.wait_until("the ConfigMap layout to be loaded", |a| {
        a.log().matches("rules reloaded").count() >= 1
    });
    let allowed_port = cross(&cgroups);
    agent.wait_until("the allowed crossing's span", |a| {
        a.feed().iter().any(|r| {
            r["kind"] == "span"
                && r["span"]["body"]["connection"]["server"]["addr"]
                    == format!("127.0.0.1:{allowed_port}")
        })
    });
    // The ConfigMap changes: the allow is gone, and a third tenant tells the new rules apart.
    let swapped = two_tenants(
        &cgroups,
        "[[tenant]]\nname = \"c\"\ncgroups = [\"nowhere\"]\n",
    );
    configmap_write(&dir, 2, &[("tenants.toml", &swapped)]);
    agent.wait_until("the swapped rules to be loaded", |a| {
        a.log()
            .lines()
            .any(|l| l.contains("rules reloaded") && l.contains("tenants=3"))
    });
    let flagged_port = cross(&cgroups);
    let violations = agent.wait_violations(1);
    agent.stop();
    assert!(
        violations
            .iter()
            .all(|v| v["target"]["port"] != allowed_port),
        "allowed before the swap: {violations:#?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v["target"]["port"] == flagged_port),
        "flagged after the swap: {violations:#?}"
    );
}

/// A webhook receiver on 127.0.0.1 writing each body as a line to the returned channel.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(32) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, rx)
}

fn schema_check(bodies: &[String]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bodies.jsonl");
    fs::write(&file, bodies.join("\n")).unwrap();
    let out = Command::new(python())
        .arg(script("check_schema.py"))
        .arg(script("falcosidekick.schema.json"))
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn falcosidekick_webhook_payloads_match_falcosidekicks_schema() {
    require_root();
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    cgroups.create("b");
    let (url, bodies) = receiver();
    let mut agent = Agent::start_with(
        &two_tenants(&cgroups, ""),
        &["--webhook", &url, "--webhook-format", "falcosidekick"],
    );
    let port = cross(&cgroups);
    let body = bodies.recv_timeout(WAIT).expect("a webhook request");
    agent.stop();
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["rule"], "cross-tenant-network", "{payload:#}");
    assert_eq!(payload["priority"], "Error", "{payload:#}");
    assert_eq!(payload["output_fields"]["fd.sport"], port, "{payload:#}");
    assert_eq!(
        payload["output_fields"]["proc.name"], "client-a",
        "{payload:#}"
    );
    assert_eq!(
        payload["output_fields"]["seam.actual_tenant"], "b",
        "{payload:#}"
    );
    let (ok, report) = schema_check(&[body]);
    assert!(ok, "falcosidekick would refuse it:\n{report}");
    // The check can fail: Seam's own record is not a Falco payload.
    let seam_record = agent.violations().first().cloned().expect("a violation");
    let (ok, report) = schema_check(&[seam_record.to_string()]);
    assert!(
        !ok,
        "a Seam record passed the falcosidekick schema:\n{report}"
    );
}
