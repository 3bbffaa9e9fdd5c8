//! Seam where its users run it, with a real Docker (Debian's docker.io, installed and started
//! by the harness; skipped with a printed reason only where no daemon can start):
//!
//! - Kubernetes tenancy: containers labelled as the kubelet labels them, in two namespaces;
//!   tenants declared by namespace. A crossing between the namespaces is flagged with both
//!   pods, a connection within a tenant is not.
//! - Seam itself in a container, with the host's cgroupfs, procfs, BTF, tracefs and BPF fs
//!   mounted and only named capabilities, catching a crossing between host cgroups.
use std::{fs, path::Path, process::Command, time::Duration};

use seam_integration_tests::{
    Agent, Cgroups, WAIT, Workload, cgroup2_root,
    docker::{Container, Docker, SOCKET},
    listen, require_root, two_tenants,
};
use serde_json::Value;

/// The kubelet's labels on a container of pod `pod` in `namespace`.
fn kubelet_labels(namespace: &str, pod: &str, container: &str) -> Vec<String> {
    [
        format!("io.kubernetes.pod.namespace={namespace}"),
        format!("io.kubernetes.pod.name={pod}"),
        format!("io.kubernetes.pod.uid={namespace}-{pod}-uid"),
        format!("io.kubernetes.container.name={container}"),
        "tenant-label=present".to_owned(),
    ]
    .into_iter()
    .flat_map(|l| ["--label".to_owned(), l])
    .collect()
}

/// A pod's container on the host network running `command`, with `out` mounted at /out.
fn pod(docker: &Docker, namespace: &str, name: &str, out: &Path, command: &[&str]) -> Container {
    let labels = kubelet_labels(namespace, name, "main");
    let volume = format!("{}:/out", out.display());
    let mut args: Vec<&str> = labels.iter().map(String::as_str).collect();
    args.extend(["--network", "host", "-v", &volume, &docker.image]);
    args.extend_from_slice(command);
    Container::run(docker, &args)
}

/// Waits until `file` (written by a listener in a container) holds a port.
fn port_in(file: &Path) -> u16 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = fs::read_to_string(file)
            && let Ok(port) = text.trim().parse()
        {
            return port;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn listener(docker: &Docker, namespace: &str, name: &str, out: &Path) -> (Container, u16) {
    let port_file = format!("/out/{name}.port");
    let c = pod(
        docker,
        namespace,
        name,
        out,
        &[
            "/usr/local/bin/seam",
            "workload",
            "--comm",
            name,
            "tcp-listen",
            "--addr",
            "127.0.0.1:0",
            "--port-file",
            &port_file,
            "--count",
            "5",
        ],
    );
    let port = port_in(&out.join(format!("{name}.port")));
    (c, port)
}

/// Waits until the agent registered the cgroup of `container` with `tenant`.
fn wait_registered(agent: &mut Agent, container: &Container, tenant: &str) {
    let id = container.id.clone();
    let tenant = format!("tenant={tenant}");
    agent.wait_until(&format!("container {id} registered as {tenant}"), |a| {
        a.log().lines().any(|l| {
            l.contains("tenant cgroup registered") && l.contains(&id) && l.contains(&tenant)
        })
    });
}

fn connect_from(docker: &Docker, client: &Container, comm: &str, port: u16) {
    let addr = format!("127.0.0.1:{port}");
    docker.run(&[
        "exec",
        &client.id,
        "/usr/local/bin/seam",
        "workload",
        "--comm",
        comm,
        "tcp-connect",
        "--addr",
        &addr,
    ]);
}

#[test]
fn a_crossing_between_namespaces_is_flagged_with_both_pods_and_a_same_tenant_pair_is_not() {
    require_root();
    let Some(docker) = Docker::get() else { return };
    let out = tempfile::tempdir().unwrap();
    let rules = r#"
[[tenant]]
name = "acme"
namespaces = ["acme-*"]
pod_labels = { "tenant-label" = "present" }

[[tenant]]
name = "globex"
namespaces = ["globex"]

[[rule]]
id = "cross-tenant-network"
severity = "high"
description = "A tenant's process connected to another tenant's endpoint"
expr = "trace.has(net.*).where(tenant != null and peer.tenant != null and peer.tenant != tenant and not peer.shared)"
"#;
    let mut agent = Agent::start_with(
        rules,
        &[
            "--container-runtime",
            "docker",
            "--container-runtime-endpoint",
            SOCKET,
            "--feed-spans",
        ],
    );
    let (db, db_port) = listener(docker, "globex", "db-globex", out.path());
    let (api, api_port) = listener(docker, "acme-dev", "api-acme", out.path());
    let web = pod(
        docker,
        "acme-prod",
        "web-acme",
        out.path(),
        &["/bin/sleep", "600"],
    );
    for (container, tenant) in [(&db, "globex"), (&api, "acme"), (&web, "acme")] {
        wait_registered(&mut agent, container, tenant);
    }
    connect_from(docker, &web, "web-same", api_port);
    connect_from(docker, &web, "web-cross", db_port);
    let violations = agent.wait_violations(1);
    agent.stop();
    let feed = agent.feed();

    let cross = violations
        .iter()
        .find(|v| v["target"]["port"] == db_port)
        .unwrap_or_else(|| panic!("no violation for the crossing: {violations:#?}"));
    assert_eq!(cross["intended_tenant"], "acme", "{cross:#}");
    assert_eq!(cross["actual_tenant"], "globex", "{cross:#}");
    let caller = &cross["caller"];
    assert_eq!(caller["k8s.namespace.name"], "acme-prod", "{cross:#}");
    assert_eq!(caller["k8s.pod.name"], "web-acme", "{cross:#}");
    assert_eq!(caller["k8s.pod.uid"], "acme-prod-web-acme-uid", "{cross:#}");
    assert_eq!(caller["container.id"], web.id.as_str(), "{cross:#}");
    let target = &cross["target"]["process"];
    assert_eq!(target["k8s.namespace.name"], "globex", "{cross:#}");
    assert_eq!(target["k8s.pod.name"], "db-globex", "{cross:#}");
    assert_eq!(target["container.id"], db.id.as_str(), "{cross:#}");

    // The same-tenant connection was seen (its span names both pods) but not flagged.
    let same_span = feed
        .iter()
        .filter(|r| r["kind"] == "span")
        .map(|r| &r["span"]["body"]["connection"])
        .find(|c| c["server"]["addr"] == format!("127.0.0.1:{api_port}"))
        .unwrap_or_else(|| panic!("no span of the same-tenant connection: {feed:#?}"));
    let pod_of = |end: &Value| end["process"]["container"]["pod"]["namespace"].clone();
    assert_eq!(pod_of(&same_span["client"]), "acme-prod", "{same_span:#}");
    assert_eq!(pod_of(&same_span["server"]), "acme-dev", "{same_span:#}");
    assert!(
        !feed
            .iter()
            .any(|r| r["kind"] == "network" && r["target"]["port"] == api_port),
        "acme-prod -> acme-dev is within tenant acme: {feed:#?}"
    );
}

const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process's capability bounding set holds `cap` (a sandbox may lack some).
fn host_can_grant(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|set| set & (1 << cap) != 0)
}

/// Mounts a BPF file system at a temporary directory (the test's own, not the host's).
struct Bpffs(tempfile::TempDir);

impl Bpffs {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn seam_in_a_container_with_the_host_mounts_catches_a_crossing_on_the_host() {
    require_root();
    let Some(docker) = Docker::get() else { return };
    let mut cgroups = Cgroups::new();
    cgroups.create("a");
    cgroups.create("b");
    let out = tempfile::tempdir().unwrap();
    fs::create_dir_all(out.path().join("rules")).unwrap();
    fs::write(out.path().join("rules/t.toml"), two_tenants(&cgroups, "")).unwrap();
    let bpffs = Bpffs::mount().expect("mount a BPF file system for the pin");
    let volumes = [
        format!("{}:/host/sys/fs/cgroup:ro", cgroup2_root().display()),
        "/proc:/host/proc:ro".to_owned(),
        "/sys/kernel/btf:/sys/kernel/btf:ro".to_owned(),
        "/sys/kernel/tracing:/sys/kernel/tracing:ro".to_owned(),
        format!("{}:/sys/fs/bpf", bpffs.0.path().display()),
        format!("{}:/out", out.path().display()),
    ];
    let mut args: Vec<&str> = vec![
        "--pid",
        "host",
        "--network",
        "host",
        "--cap-drop",
        "ALL",
        // Named capabilities, not --privileged: those of deploy/daemonset.yaml, except that
        // Debian's Docker 20.10 does not know CAP_BPF and CAP_PERFMON, so CAP_SYS_ADMIN (which
        // the kernel accepts in their place) stands in for both.
        "--cap-add",
        "SYS_ADMIN",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "SYS_PTRACE",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--read-only",
    ];
    // SYS_RESOURCE (memlock on kernels before 5.11) only where this host can grant it.
    if host_can_grant(CAP_SYS_RESOURCE) {
        args.extend(["--cap-add", "SYS_RESOURCE"]);
    } else {
        eprintln!("this host's bounding set lacks CAP_SYS_RESOURCE: not granted");
    }
    for v in &volumes {
        args.extend(["-v", v]);
    }
    args.extend([
        docker.image.as_str(),
        "/usr/local/bin/seam",
        "run",
        "--rules",
        "/out/rules",
        "--cgroup-root",
        "/host/sys/fs/cgroup",
        "--procfs",
        "/host/proc",
        "--bpffs",
        "/sys/fs/bpf",
        "--container-runtime",
        "none",
        "--feed-file",
        "/out/feed.jsonl",
        "--ready-file",
        "/out/ready.json",
        "--stats-file",
        "/out/stats.json",
        "--quiet",
    ]);
    let agent = Container::run(docker, &args);
    let logs = || {
        let o = docker.output(&["logs", &agent.id]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !out.path().join("ready.json").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "agent in a container not ready:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        bpffs.0.path().join("seam/tenant_cgroups").exists(),
        "the filter map is pinned under --bpffs:\n{}",
        logs()
    );
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
    let feed = out.path().join("feed.jsonl");
    let deadline = std::time::Instant::now() + WAIT;
    let violation = loop {
        let found = fs::read_to_string(&feed)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["kind"] == "network");
        if let Some(v) = found {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no violation from the agent in a container:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(violation["intended_tenant"], "a", "{violation:#}");
    assert_eq!(violation["actual_tenant"], "b", "{violation:#}");
    assert_eq!(violation["caller"]["comm"], "client-a", "{violation:#}");
    assert_eq!(
        violation["caller"]["cgroup_path"],
        cgroups.rel("a"),
        "{violation:#}"
    );
    assert_eq!(
        violation["target"]["process"]["comm"], "db-b",
        "{violation:#}"
    );
    docker.run(&["stop", "-t", "20", &agent.id]);
    let code = docker.run(&["inspect", "-f", "{{.State.ExitCode}}", &agent.id]);
    assert_eq!(code, "0", "stopped cleanly:\n{}", logs());
    assert!(
        out.path().join("stats.json").exists(),
        "stats written at stop"
    );
    assert!(
        !bpffs.0.path().join("seam/tenant_cgroups").exists(),
        "the pin is removed at exit"
    );
}
