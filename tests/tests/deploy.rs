//! The deployment, checked offline: the Dockerfile's structure, every manifest in deploy/
//! against the Kubernetes API schemas (`kubernetes-validate`), the Helm chart with the real
//! Helm (`helm lint`, `helm template`, whose output must validate too and be the same objects
//! as the plain manifests).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use seam_integration_tests::python::{python, script};

/// Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.30.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool installed in the test venv (next to its python).
fn venv_tool(name: &str) -> PathBuf {
    let tool = python().parent().expect("venv bin").join(name);
    assert!(
        tool.exists(),
        "{} missing: run `cargo xtask test`",
        tool.display()
    );
    tool
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The manifests `kubectl apply -k deploy/` applies.
fn manifests() -> Vec<PathBuf> {
    let kustomization = fs::read_to_string(repo().join("deploy/kustomization.yaml")).unwrap();
    let files: Vec<PathBuf> = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|f| repo().join("deploy").join(f.trim()))
        .collect();
    assert!(files.len() >= 7, "{files:?}");
    files
}

/// kubernetes-validate on `files`: built-in kinds must pass; the ServiceMonitor (a CRD) has no
/// schema there and is checked by hand.
fn validate(files: &[PathBuf], objects: usize) {
    let mut cmd = Command::new(venv_tool("kubernetes-validate"));
    cmd.args(["--kubernetes-version", KUBERNETES, "--strict"])
        .args(files);
    let (_, text) = run(&mut cmd);
    let mut passed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains(" passed") {
            passed += 1;
        } else {
            assert!(
                line.starts_with("WARN")
                    && line
                        .contains("kind ServiceMonitor with api version monitoring.coreos.com/v1"),
                "kubernetes-validate refused a manifest:\n{text}"
            );
        }
    }
    assert_eq!(passed, objects, "objects validated:\n{text}");
}

#[test]
fn every_plain_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    validate(&files, 6);
    let monitor = fs::read_to_string(repo().join("deploy/servicemonitor.yaml")).unwrap();
    for needle in ["kind: ServiceMonitor", "port: metrics", "path: /metrics"] {
        assert!(monitor.contains(needle), "{needle} in servicemonitor.yaml");
    }
    validate(&[repo().join("deploy/secret.example.yaml")], 1);
}

#[test]
fn the_daemonset_asks_for_named_capabilities_not_privilege() {
    let daemonset = fs::read_to_string(repo().join("deploy/daemonset.yaml")).unwrap();
    assert!(daemonset.contains("privileged: false"));
    assert!(!daemonset.contains("privileged: true"));
    assert!(daemonset.contains("drop: [\"ALL\"]"));
    for cap in ["- BPF", "- PERFMON", "- NET_ADMIN", "- SYS_RESOURCE"] {
        assert!(daemonset.contains(cap), "{cap}");
    }
    assert!(
        !daemonset.contains("- SYS_ADMIN"),
        "no hook needs SYS_ADMIN"
    );
    for probe in ["path: /healthz", "path: /readyz"] {
        assert!(daemonset.contains(probe), "{probe}");
    }
    // Host file systems read-only; only the store is writable.
    let mounts = daemonset.split("volumeMounts:").nth(1).unwrap();
    let mounts = mounts.split("volumes:").next().unwrap();
    for mount in mounts.split("- name: ").skip(1) {
        let name = mount.lines().next().unwrap().trim();
        assert_eq!(
            mount.contains("readOnly: true"),
            name != "store",
            "mount {name}: only the store is writable"
        );
    }
}

#[test]
fn the_chart_lints_renders_valid_objects_and_matches_the_plain_manifests() {
    let helm = venv_tool("helm");
    let chart = repo().join("deploy/helm/seam");
    let (ok, text) = run(Command::new(&helm).arg("lint").arg("--strict").arg(&chart));
    assert!(ok, "helm lint:\n{text}");
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("rendered.yaml");
    let out = Command::new(&helm)
        .args(["template", "seam", "--namespace", "seam"])
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(&rendered, &out.stdout).unwrap();
    validate(std::slice::from_ref(&rendered), 5);
    let (same, text) = run(Command::new(python())
        .arg(script("compare_manifests.py"))
        .arg(&rendered)
        .args(manifests()));
    assert!(same, "the chart and deploy/ differ:\n{text}");
    // Switched off, the ServiceMonitor is not rendered.
    let out = Command::new(&helm)
        .args([
            "template",
            "seam",
            "--namespace",
            "seam",
            "--set",
            "serviceMonitor.enabled=false",
        ])
        .arg(&chart)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ServiceMonitor"));
}

#[test]
fn the_dockerfile_builds_probes_and_agent_then_ships_a_small_runtime() {
    let text = fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    assert!(froms[0].ends_with(" AS build"), "{}", froms[0]);
    assert!(froms[1].ends_with(" AS runtime"), "{}", froms[1]);
    // Only official images from the registry Docker pulls by default, pinned to a release.
    for arg in instructions
        .iter()
        .filter(|l| l.starts_with("ARG ") && l.contains("_IMAGE="))
    {
        let image = arg.split('=').nth(1).unwrap();
        assert!(image.starts_with("docker.io/library/"), "{image}");
        assert!(
            !image.ends_with(":latest") && image.contains(':'),
            "{image}"
        );
    }
    let build = text.split(" AS runtime").next().unwrap();
    assert!(
        build.contains("cargo xtask build"),
        "probes and agent built by xtask"
    );
    let runtime = text.split(" AS runtime").nth(1).unwrap();
    assert!(
        runtime.contains("COPY --from=build"),
        "the runtime takes only the binary"
    );
    assert!(
        !runtime.contains("cargo"),
        "no toolchain in the runtime image"
    );
    assert!(
        !text.contains("ADD http"),
        "nothing fetched outside the package managers"
    );
    let entrypoint = instructions
        .iter()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .unwrap();
    assert_eq!(
        *entrypoint, "ENTRYPOINT [\"/usr/local/bin/seam\"]",
        "exec form"
    );
    let cmd = instructions.iter().find(|l| l.starts_with("CMD")).unwrap();
    assert!(cmd.contains("/etc/seam/seam.toml"), "{cmd}");
    for copied in ["rules/shipped", "target/release/seam"] {
        assert!(text.contains(copied), "{copied}");
    }
}

#[test]
fn the_kubernetes_api_variant_grants_read_only_access_to_pods() {
    validate(&[repo().join("deploy/kubernetes-api.yaml")], 2);
    let out = Command::new(venv_tool("helm"))
        .args([
            "template",
            "seam",
            "--namespace",
            "seam",
            "--set",
            "kubernetesApi.enabled=true",
        ])
        .arg(repo().join("deploy/helm/seam"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    fs::write(&file, &rendered).unwrap();
    validate(&[file], 7);
    assert!(
        rendered.contains("verbs: [\"get\", \"list\", \"watch\"]"),
        "{rendered}"
    );
    assert!(rendered.contains("resources: [\"pods\"]"), "{rendered}");
    assert!(rendered.contains("name: SEAM_KUBERNETES_API"), "{rendered}");
    assert_eq!(
        rendered
            .matches("automountServiceAccountToken: true")
            .count(),
        2,
        "the token is mounted only in this variant"
    );
}
