//! Seam's own attack surface on the real kernel: its listeners serve TLS and require the bearer
//! token when configured (health stays open), a real OpenTelemetry SDK app exports to it over
//! TLS with the token, the agent keeps only the capabilities it needs in every thread and still
//! sees tenants that appear after the drop, and neither the token, the TLS key nor tenant data
//! reach its logs.
use std::{fs, os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use seam_integration_tests::{
    Agent, Cgroups, Workload, listen,
    python::{python, script},
    shipped_rules, tenants_ab,
};
use serde_json::Value;

const TOKEN: &str = "seam-test-token-7f3a9c";
const SECRET: &str = "secret-marker-51d2";

struct Tls {
    dir: tempfile::TempDir,
}

impl Tls {
    /// A self-signed certificate for 127.0.0.1/localhost, and the token file (0600).
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .output()
            .expect("run openssl");
        assert!(status.status.success(), "{status:?}");
        let token = dir.path().join("token");
        fs::write(&token, TOKEN).unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// The base64 body lines of the private key.
    fn key_lines(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("key.pem"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(str::to_owned)
            .collect()
    }
}

/// `curl` status code of GET `url` (0 when no HTTP answer came).
fn curl(url: &str, ca: &str, token: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ])
    .args(["--cacert", ca]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn scrape(port: u16, ca: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert", ca])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("https://localhost:{port}/metrics"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the real OTel SDK app in `cgroup`: it connects to `connect` within a CLIENT span
/// carrying a secret attribute and exports over TLS to `endpoint` with `token`.
fn app(cgroup: &str, protocol: &str, endpoint: &str, ca: &str, token: &str, connect: u16) {
    let python = python();
    let script = script("otel_app.py");
    let connect = format!("127.0.0.1:{connect}");
    let attribute = format!("db.statement=SELECT {SECRET}");
    Workload::start(
        Some(cgroup),
        "app",
        &[
            "exec",
            python.to_str().unwrap(),
            script.to_str().unwrap(),
            "--protocol",
            protocol,
            "--endpoint",
            endpoint,
            "--service",
            "svc",
            "--tenant",
            "a",
            "--connect",
            &connect,
            "--ca",
            ca,
            "--token",
            token,
            "--attribute",
            &attribute,
        ],
    )
    .finish();
}

/// `CapEff` of every thread of `pid`.
fn thread_caps(pid: u32) -> Vec<u64> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let status = fs::read_to_string(t.path().join("status")).ok()?;
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .collect()
}

/// CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, and CAP_BPF (CAP_SYS_ADMIN before 5.8).
fn kept_caps() -> u64 {
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (1 << 2) | (1 << 19) | if last >= 39 { 1 << 39 } else { 1 << 21 }
}

fn ready(agent: &Agent) -> Value {
    serde_json::from_str(&fs::read_to_string(agent.dir.join("ready.json")).unwrap()).unwrap()
}

fn port(ready: &Value, key: &str) -> u16 {
    ready[key]
        .as_str()
        .and_then(|a| a.rsplit(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {ready}"))
}

#[test]
fn listeners_serve_tls_with_a_token_and_the_agent_runs_with_few_capabilities() {
    let tls = Tls::new();
    let (ca, cert, key, token) = (
        tls.path("cert.pem"),
        tls.path("cert.pem"),
        tls.path("key.pem"),
        tls.path("token"),
    );
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    let b = cgroups.create("b");
    let rules = format!("{}\n{}", tenants_ab(&cgroups), shipped_rules());
    let mut agent = Agent::start_env(
        &rules,
        &[
            "--aggregate-window",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--otlp-receive-http",
            "127.0.0.1:0",
            "--otlp-receive-grpc",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--auth-token-file",
            &token,
        ],
        &[("SEAM_LOG", "debug")],
    );
    let ready = ready(&agent);
    let metrics = port(&ready, "listen");
    let url = |path: &str| format!("https://localhost:{metrics}{path}");

    // Metrics need the token; health does not; plain HTTP gets no answer.
    assert_eq!(curl(&url("/metrics"), &ca, None), 401);
    assert_eq!(curl(&url("/metrics"), &ca, Some("wrong")), 401);
    assert_eq!(curl(&url("/metrics"), &ca, Some(TOKEN)), 200);
    assert_eq!(curl(&url("/healthz"), &ca, None), 200);
    assert_eq!(
        curl(
            &format!("http://127.0.0.1:{metrics}/metrics"),
            &ca,
            Some(TOKEN)
        ),
        0
    );

    // Every thread keeps only the capabilities Seam still uses.
    agent.wait_until("capabilities dropped in every thread", |a| {
        thread_caps(a.pid()).iter().all(|&caps| caps == kept_caps())
    });

    // A tenant cgroup made after the drop is still watched (a map update in the kernel).
    let late = cgroups.create("a/late");
    let service = listen("tcp-listen", Some(&b), "b-db", "127.0.0.1:0", 4);
    std::thread::sleep(std::time::Duration::from_secs(3));
    Workload::start(
        Some(&late),
        "late-client",
        &[
            "tcp-connect",
            "--addr",
            &format!("127.0.0.1:{}", service.port),
        ],
    )
    .finish();

    // The real SDK exports over TLS with the token, on both protocols; a wrong token is refused.
    let http = format!("https://localhost:{}", port(&ready, "otlp_receive_http"));
    let grpc = format!("https://localhost:{}", port(&ready, "otlp_receive_grpc"));
    app(&a, "http", &http, &ca, TOKEN, service.port);
    app(&a, "grpc", &grpc, &ca, TOKEN, service.port);
    app(&a, "http", &http, &ca, "wrong", service.port);

    agent.wait_until("the late cgroup's crossing", |a| {
        a.violations()
            .iter()
            .any(|v| v["caller"]["comm"] == "late-client" && v["intended_tenant"] == "a")
    });
    agent.wait_until("both apps' spans received", |_| {
        metric(&scrape(metrics, &ca), "seam_otlp_received_spans_total") >= 4
    });
    let text = scrape(metrics, &ca);
    assert!(
        metric(
            &text,
            "seam_listener_unauthorized_total{listener=\"otlp_http\"}"
        ) >= 1,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "seam_listener_unauthorized_total{listener=\"metrics\"}"
        ) >= 2,
        "{text}"
    );
    agent.stop();
    // Same-tenant activity stayed quiet: only a's crossings into b were flagged.
    for v in agent.violations() {
        assert_eq!(v["intended_tenant"], "a", "{v}");
        assert_eq!(v["actual_tenant"], "b", "{v}");
    }

    // Debug logs hold neither the token, nor the key, nor the application's data.
    let log = agent.log();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert!(!log.contains(TOKEN), "the token is in the log");
    assert!(!log.contains(SECRET), "application data is in the log");
    for line in tls.key_lines() {
        assert!(!log.contains(&line), "key material is in the log");
    }
}

#[test]
fn bad_tls_and_token_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::write(&empty, "\n").unwrap();
    let rules = dir.path().join("rules");
    fs::create_dir_all(&rules).unwrap();
    let tenants = "[[tenant]]\nname = \"a\"\ncgroups = [\"none/a\"]\n";
    fs::write(
        rules.join("r.toml"),
        format!("{tenants}\n{}", shipped_rules()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(seam_integration_tests::seam_bin())
            .arg("run")
            .arg("--rules")
            .arg(&rules)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["--auth-token-file", empty.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("auth token file is empty"), "{stderr}");
    let missing = Path::new("/nonexistent/cert.pem");
    let (code, stderr) = run(&[
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/cert.pem"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--tls-cert", empty.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// A tenant names a file and its process to forge feed records: a newline, a fake JSON record
/// and bytes that are not UTF-8. Seam reports the real names, byte for byte, as one record.
#[test]
fn hostile_names_are_reported_byte_for_byte_in_one_record() {
    use std::os::unix::{ffi::OsStrExt as _, fs::symlink};
    let mut cgroups = Cgroups::new();
    let a = cgroups.create("a");
    cgroups.create("b");
    let dir = tempfile::tempdir().unwrap();
    for t in ["a", "b"] {
        fs::create_dir_all(dir.path().join(t)).unwrap();
    }
    let evil = std::ffi::OsStr::from_bytes(b"x\n{\"rule_id\":\"fake\"}\xff\xfe");
    let target = dir.path().join("b").join(evil);
    fs::write(&target, "b's data").unwrap();
    symlink(&target, dir.path().join("a/link")).unwrap();
    let rules = format!(
        "[[tenant]]\nname = \"a\"\ncgroups = [\"{}\"]\npaths = [\"{d}/a\"]\n\n\
         [[tenant]]\nname = \"b\"\ncgroups = [\"{}\"]\npaths = [\"{d}/b\"]\n\n{}",
        cgroups.rel("a"),
        cgroups.rel("b"),
        shipped_rules(),
        d = dir.path().display(),
    );
    let mut agent = Agent::start_with(&rules, &["--aggregate-window", "0"]);
    let link = dir.path().join("a/link");
    Workload::start(
        Some(&a),
        "ev\nil\u{1b}[31m",
        &["file-op", "--op", "read", "--path", link.to_str().unwrap()],
    )
    .finish();
    agent.wait_until("the read flagged", |a| {
        a.feed().iter().any(|v| v["kind"] == "file")
    });
    agent.stop();
    let raw = fs::read_to_string(agent.dir.join("feed.jsonl")).unwrap();
    assert!(!raw.contains("\"rule_id\":\"fake\"}\n"), "{raw}");
    let files: Vec<Value> = agent
        .feed()
        .into_iter()
        .filter(|v| v["kind"] == "file")
        .collect();
    assert_eq!(files.len(), 1, "{files:#?}");
    let expected = format!(
        "{}/b/x\n{{\"rule_id\":\"fake\"}}\\xff\\xfe",
        dir.path().display()
    );
    assert_eq!(files[0]["target"]["path"], expected.as_str());
    assert_eq!(files[0]["caller"]["comm"], "ev\nil\u{1b}[31m");
    assert_eq!(files[0]["intended_tenant"], "a");
    // The feed file still holds one JSON record per line.
    for line in raw.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}
