//! Reading a console: the sections the scenario printed, what each run flagged, and the checks
//! the matrix holds every kernel to.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::Value;

/// The sections between `=====SEAM-BEGIN name=====` and `=====SEAM-END name=====`.
pub fn sections(console: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for raw in console.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(name) = line
            .strip_prefix("=====SEAM-BEGIN ")
            .and_then(|l| l.strip_suffix("====="))
        {
            current = Some((name.to_owned(), String::new()));
        } else if let Some(name) = line
            .strip_prefix("=====SEAM-END ")
            .and_then(|l| l.strip_suffix("====="))
        {
            if let Some((open, text)) = current.take()
                && open == name
            {
                out.insert(open, text);
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// `key=value` lines.
fn meta(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The program type serving a capability, from the live hooks: the prefix of the first hook
/// `is_member` accepts (`lsm`, `fentry`, `kprobe`, `tracepoint`, `cgroup`, ...).
pub fn tier(hooks: &[String], is_member: fn(&str) -> bool) -> Option<String> {
    hooks
        .iter()
        .find(|h| is_member(h))
        .and_then(|h| h.split('/').next())
        .map(str::to_owned)
}

pub fn is_file_hook(hook: &str) -> bool {
    is_syscall_hook(hook) || hook.contains("file_open") || hook.contains("path_")
}

/// A hook on the syscall path: `tp_btf/sys_exit` or a per-syscall tracepoint.
pub fn is_syscall_hook(hook: &str) -> bool {
    hook == "tp_btf/sys_exit" || hook.starts_with("tracepoint/syscalls/")
}

/// File access on syscall hooks (the `sys_exit` tp_btf tier or the per-syscall tracepoints):
/// they see attempts that fail before the security hooks, and LSMs' refusals after the fact.
fn on_syscalls(file_tier: &str) -> bool {
    matches!(file_tier, "tracepoint" | "tp_btf")
}

pub fn is_connect_hook(hook: &str) -> bool {
    hook.ends_with("/connect4") || hook.ends_with("/connect6") || hook.contains("socket_connect")
}

/// One `seam run` of the scenario.
#[derive(Debug, Default)]
pub struct RunResult {
    pub name: String,
    pub ready_ms: Option<u64>,
    pub scenario_ms: Option<u64>,
    pub exit: Option<i32>,
    /// `error=` lines of the scenario (a workload that failed).
    pub errors: Vec<String>,
    pub live_hooks: Vec<String>,
    /// A -> B over TCP flagged (by the cross-tenant-network rule).
    pub tcp_crossing: bool,
    /// Caller comm and pid of that violation (who connect()ed).
    pub tcp_caller: Option<(String, u64)>,
    /// A -> B over UDP flagged (needs both ends' cgroup_skb flow starts).
    pub udp_crossing: bool,
    /// A reading B's file flagged.
    pub file_crossing: bool,
    /// A's failed open of a missing file under B's path flagged (only syscall tracepoints see
    /// attempts that fail before the security hooks).
    pub failed_attempt_flagged: bool,
    /// Outcome reported for A's read of B's file that Landlock refused (None: not flagged).
    pub refused_outcome: Option<String>,
    /// Operations on B's files flagged (`read`, `truncate`, `rename`, `delete`, ...).
    pub b_ops: BTreeSet<String>,
    /// The A -> A connection or A's own file flagged (must not be).
    pub same_tenant_flagged: Vec<String>,
    pub violations: usize,
    pub log_tail: String,
}

impl RunResult {
    pub fn file_tier(&self) -> Option<String> {
        tier(&self.live_hooks, is_file_hook)
    }

    pub fn connect_tier(&self) -> Option<String> {
        tier(&self.live_hooks, is_connect_hook)
    }
}

/// Reads run `name` from the sections.
pub fn run(sections: &BTreeMap<String, String>, name: &str) -> Option<RunResult> {
    let m = meta(sections.get(&format!("run/{name}/meta"))?);
    let num = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
    let mut result = RunResult {
        name: name.to_owned(),
        ready_ms: num("ready_ms"),
        scenario_ms: num("scenario_ms"),
        exit: m.get("exit").and_then(|v| v.parse().ok()),
        errors: sections
            .get(&format!("run/{name}/meta"))
            .map(|t| {
                t.lines()
                    .filter_map(|l| l.strip_prefix("error="))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        log_tail: sections
            .get(&format!("run/{name}/log"))
            .cloned()
            .unwrap_or_default(),
        ..RunResult::default()
    };
    let ready: Value = sections
        .get(&format!("run/{name}/ready"))
        .and_then(|t| serde_json::from_str(t.trim()).ok())
        .unwrap_or(Value::Null);
    result.live_hooks = ready["live_hooks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let a_port = num("a_port");
    let b_port = num("b_port");
    let u_port = num("u_port");
    let a_file = m.get("a_file").cloned();
    let b_file = m.get("b_file").cloned();
    let b_dir = m.get("b_dir").cloned();
    let b_missing = m.get("b_missing").cloned();
    let b_locked = m.get("b_locked").cloned();
    let feed = sections
        .get(&format!("run/{name}/feed"))
        .map(String::as_str)
        .unwrap_or("");
    for line in feed.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            result.errors.push(format!("unreadable feed line: {line}"));
            continue;
        };
        if v["rule_id"].is_null() {
            continue; // loss records
        }
        result.violations += 1;
        let port = v["target"]["port"].as_u64();
        let path = v["target"]["path"].as_str().map(str::to_owned);
        let crossing = v["intended_tenant"] == "a" && v["actual_tenant"] == "b";
        if v["kind"] == "network" && crossing && port.is_some() && port == b_port {
            result.tcp_crossing = true;
            result.tcp_caller = Some((
                v["caller"]["comm"].as_str().unwrap_or("").to_owned(),
                v["caller"]["pid"].as_u64().unwrap_or(0),
            ));
        }
        if v["kind"] == "network"
            && crossing
            && v["target"]["protocol"] == "udp"
            && port.is_some()
            && port == u_port
        {
            result.udp_crossing = true;
        }
        if v["kind"] == "file" && crossing && path.is_some() && path == b_file {
            result.file_crossing = true;
        }
        if v["kind"] == "file" && crossing && path.is_some() && path == b_locked {
            result.refused_outcome = v["target"]["outcome"].as_str().map(str::to_owned);
            continue;
        }
        if v["kind"] == "file" && crossing && path.is_some() && path == b_missing {
            result.failed_attempt_flagged = true;
            continue;
        }
        if let (Some(path), Some(dir), Some(op)) = (&path, &b_dir, v["target"]["op"].as_str())
            && v["kind"] == "file"
            && crossing
            && path.starts_with(dir.as_str())
        {
            result.b_ops.insert(op.to_owned());
        }
        if port.is_some() && port == a_port {
            result
                .same_tenant_flagged
                .push(format!("A -> A connection: {line}"));
        }
        if path.is_some() && path == a_file {
            result
                .same_tenant_flagged
                .push(format!("A's own file: {line}"));
        }
    }
    Some(result)
}

/// A run's expectations: both crossings flagged, the same-tenant pair not, and the file and
/// connect capabilities on the given tiers.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub file: &'static str,
    pub connect: &'static str,
}

/// Why a run falls short of `expect` (empty: it passed).
pub fn check_run(run: &RunResult, expect: Expect) -> Vec<String> {
    let mut failures = Vec::new();
    let name = &run.name;
    if run.exit != Some(0) {
        failures.push(format!(
            "run {name}: seam run exited {:?}; its log:\n{}",
            run.exit, run.log_tail
        ));
    }
    for error in &run.errors {
        failures.push(format!("run {name}: {error}"));
    }
    if !run.tcp_crossing {
        failures.push(format!(
            "run {name}: the TCP crossing A -> B was not flagged"
        ));
    }
    if !run.udp_crossing {
        failures.push(format!(
            "run {name}: the UDP crossing A -> B was not flagged"
        ));
    }
    if !run.file_crossing {
        failures.push(format!(
            "run {name}: the read of B's file from A was not flagged"
        ));
    }
    // The reduced guarantee of the security-hook tiers, observed: a failed attempt is seen by
    // the syscall tracepoints only.
    let sees_attempts = on_syscalls(expect.file);
    if run.failed_attempt_flagged != sees_attempts {
        failures.push(format!(
            "run {name}: A's failed open under B's path was {} on {} (expected {})",
            if run.failed_attempt_flagged {
                "flagged"
            } else {
                "not flagged"
            },
            expect.file,
            if sees_attempts { "flagged" } else { "unseen" },
        ));
    }
    // An LSM's refusal: reported denied after the decision (tracepoint exit, fexit), as an
    // access before it (kprobe), not at all by BPF LSM (called after the refusing LSM).
    let refused = match expect.file {
        "fexit" => Some("denied"),
        file if on_syscalls(file) => Some("denied"),
        "kprobe" => Some("ok"),
        _ => None,
    };
    if run.refused_outcome.as_deref() != refused {
        failures.push(format!(
            "run {name}: the read Landlock refused was reported {:?} on {}, expected {refused:?}",
            run.refused_outcome, expect.file
        ));
    }
    for op in ["truncate", "rename", "delete"] {
        if !run.b_ops.contains(op) {
            failures.push(format!("run {name}: A's {op} of B's file was not flagged"));
        }
    }
    for flagged in &run.same_tenant_flagged {
        failures.push(format!(
            "run {name}: same-tenant activity flagged: {flagged}"
        ));
    }
    if let Some((comm, pid)) = &run.tcp_caller
        && (comm != "client-a" || *pid == 0)
    {
        failures.push(format!(
            "run {name}: the TCP crossing names caller {comm:?} pid {pid}, not client-a (the \
             connect intent did not fire)"
        ));
    }
    for (what, want, got) in [
        ("file access", expect.file, run.file_tier()),
        ("connect intent", expect.connect, run.connect_tier()),
    ] {
        if got.as_deref() != Some(want) {
            failures.push(format!(
                "run {name}: {what} runs on {} instead of {want}",
                got.as_deref().unwrap_or("nothing")
            ));
        }
    }
    if !on_syscalls(expect.file) && run.live_hooks.iter().any(|h| is_syscall_hook(h)) {
        failures.push(format!(
            "run {name}: syscall tracepoints are live although file access runs on {}",
            expect.file
        ));
    }
    failures
}

/// Milliseconds of a duration, for reports.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_runs_and_checks_them() {
        let console = "\
noise\r
=====SEAM-BEGIN run/default/meta=====\r
ready_ms=420\r
a_port=1000\r
b_port=2000\r
u_port=3000\r
a_file=/d/a/notes.txt\r
b_file=/d/b/secret.txt\r
b_dir=/d/b/\r
exit=0\r
=====SEAM-END run/default/meta=====\r
=====SEAM-BEGIN run/default/ready=====\r
{\"live_hooks\":[\"cgroup/connect4\",\"lsm/file_open\",\"lsm/path_unlink\"]}\r
=====SEAM-END run/default/ready=====\r
=====SEAM-BEGIN run/default/feed=====\r
{\"rule_id\":\"r\",\"kind\":\"network\",\"intended_tenant\":\"a\",\"actual_tenant\":\"b\",\"caller\":{\"comm\":\"client-a\",\"pid\":7},\"target\":{\"port\":2000}}\r
{\"rule_id\":\"r\",\"kind\":\"network\",\"intended_tenant\":\"a\",\"actual_tenant\":\"b\",\"target\":{\"port\":3000,\"protocol\":\"udp\"}}\r
{\"rule_id\":\"r\",\"kind\":\"file\",\"intended_tenant\":\"a\",\"actual_tenant\":\"b\",\"target\":{\"path\":\"/d/b/secret.txt\",\"op\":\"read\"}}\r
{\"rule_id\":\"r\",\"kind\":\"file\",\"intended_tenant\":\"a\",\"actual_tenant\":\"b\",\"target\":{\"path\":\"/d/b/t\",\"op\":\"truncate\"}}\r
{\"rule_id\":\"r\",\"kind\":\"file\",\"intended_tenant\":\"a\",\"actual_tenant\":\"b\",\"target\":{\"path\":\"/d/b/n\",\"op\":\"rename\"}}\r
{\"rule_id\":\"r\",\"kind\":\"file\",\"intended_tenant\":\"a\",\"actual_tenant\":\"b\",\"target\":{\"path\":\"/d/b/g\",\"op\":\"delete\"}}\r
=====SEAM-END run/default/feed=====\r
";
        let s = sections(console);
        let run = run(&s, "default").expect("run parsed");
        assert_eq!(run.ready_ms, Some(420));
        assert!(run.tcp_crossing && run.file_crossing);
        assert_eq!(run.file_tier().as_deref(), Some("lsm"));
        assert_eq!(run.connect_tier().as_deref(), Some("cgroup"));
        let ok = Expect {
            file: "lsm",
            connect: "cgroup",
        };
        assert!(check_run(&run, ok).is_empty(), "{:?}", check_run(&run, ok));
        let wrong = Expect {
            file: "tracepoint",
            connect: "cgroup",
        };
        // Wrong tier; a tracepoint tier would also have seen the failed attempt and reported
        // the refused read.
        assert_eq!(
            check_run(&run, wrong).len(),
            3,
            "{:?}",
            check_run(&run, wrong)
        );
    }

    #[test]
    fn missing_crossings_and_same_tenant_flags_fail() {
        let console = "=====SEAM-BEGIN run/x/meta=====\na_port=1\nb_port=2\nexit=0\n=====SEAM-END run/x/meta=====\n=====SEAM-BEGIN run/x/feed=====\n{\"rule_id\":\"r\",\"kind\":\"network\",\"intended_tenant\":\"a\",\"actual_tenant\":\"a\",\"target\":{\"port\":1}}\n=====SEAM-END run/x/feed=====\n";
        let run = run(&sections(console), "x").unwrap();
        let failures = check_run(
            &run,
            Expect {
                file: "lsm",
                connect: "cgroup",
            },
        );
        let text = failures.join("\n");
        assert!(
            text.contains("TCP crossing A -> B was not flagged"),
            "{text}"
        );
        assert!(text.contains("B's file"), "{text}");
        assert!(text.contains("same-tenant"), "{text}");
    }
}
