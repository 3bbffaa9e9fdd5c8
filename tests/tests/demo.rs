//! `seam demo` (the README's main command) flags the cross-tenant connection and file read,
//! not the same-tenant ones, and leaves nothing behind. Runs the shipped build: the demo's
//! tenant processes are its own `seam chaos-actor`, not the testkit's `seam workload`.
use std::process::Command;

use seam_integration_tests::{cgroup2_root, release_bin, require_root};

#[test]
fn demo_flags_the_cross_tenant_connection_and_file_read_and_cleans_up() {
    require_root();
    let out = Command::new(release_bin()).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let violations: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(violations.len(), 2, "{stdout}");
    for v in &violations {
        assert_eq!(v["intended_tenant"], "tenant-a", "{v}");
        assert_eq!(v["actual_tenant"], "tenant-b", "{v}");
    }
    let network = violations
        .iter()
        .find(|v| v["kind"] == "network")
        .expect("a network violation");
    assert_eq!(network["caller"]["comm"], "client-a");
    let file = violations
        .iter()
        .find(|v| v["kind"] == "file")
        .expect("a file violation");
    assert_eq!(file["caller"]["comm"], "app-a");
    assert_eq!(
        file["target"]["path"],
        "/tmp/seam-demo/tenant-b/customers.csv"
    );
    assert!(stdout.contains("2 connection(s) and"), "{stdout}");
    assert!(stdout.contains("2 violation(s)"), "{stdout}");
    assert!(
        !cgroup2_root().join("seam-demo").exists(),
        "the demo removes its cgroups"
    );
    assert!(
        !std::path::Path::new("/tmp/seam-demo").exists(),
        "the demo removes its data"
    );
}
