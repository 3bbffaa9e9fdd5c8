//! The agent's memory: VmRSS and VmHWM (/proc/PID/status) with 10, 100 and 1000 tenant cgroups
//! declared one tenant per cgroup (the cgroups exist before `seam run` starts; read
//! [`SETTLE`] after it is ready), then with [`CONNECTIONS`] loopback TCP connections held open
//! from tenant A to a server in tenant B (the bench's two-tenant rules).

use std::{fmt::Write as _, fs, path::Path, process::Command, thread, time::Duration};

use anyhow::{Context as _, Result, bail};

use super::{
    BENCH_CGROUP, TENANTS, cgroup::Scratch, procs::Proc, start_agent, start_agent_with, stop_agent,
};
use crate::util;

pub(crate) const TENANT_COUNTS: [usize; 3] = [10, 100, 1000];
pub(crate) const CONNECTIONS: u32 = 10_000;
/// Wait after ready (or after the connections are open) before reading the agent's memory.
const SETTLE: Duration = Duration::from_secs(2);
const HOLD_TIMEOUT: Duration = Duration::from_secs(120);
pub(crate) const TARGET_MIB: f64 = 64.0;

#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub label: String,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Rss {
    pub samples: Vec<Sample>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Rss {
    pub(crate) fn value(&self) -> String {
        let parts: Vec<String> = self
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{}: {:.1} MiB (peak {:.1})",
                    s.label,
                    mib(s.rss_kib),
                    mib(s.hwm_kib)
                )
            })
            .collect();
        parts.join("; ")
    }

    /// Met when every sample's VmHWM (the peak, start-up included) is under the target.
    pub(crate) fn met(&self) -> bool {
        !self.samples.is_empty()
            && self
                .samples
                .iter()
                .all(|s| mib(s.hwm_kib.max(s.rss_kib)) < TARGET_MIB)
    }

    pub(crate) fn json(&self) -> String {
        let rows: Vec<String> = self
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{{\"at\": {}, \"vm_rss_kib\": {}, \"vm_hwm_kib\": {}}}",
                    util::json_str(&s.label),
                    s.rss_kib,
                    s.hwm_kib
                )
            })
            .collect();
        format!("[{}]", rows.join(", "))
    }
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

fn sample(agent: &Proc, label: String) -> Result<Sample> {
    let pid = agent.pid().context("the agent is not running")?;
    Ok(Sample {
        label,
        rss_kib: status_kib(pid, "VmRSS")?,
        hwm_kib: status_kib(pid, "VmHWM")?,
    })
}

fn rules_for(count: usize) -> String {
    let mut s = String::new();
    for i in 0..count {
        let _ = write!(
            s,
            "[[tenant]]\nname = \"t{i}\"\ncgroups = [\"{BENCH_CGROUP}/rss/t{i}\"]\n"
        );
    }
    s.push_str(
        "[[rule]]\nid = \"cross-tenant-network\"\nseverity = \"high\"\ndescription = \
         \"cross-tenant connection\"\nexpr = \"trace.has(net.*)\"\n",
    );
    s
}

pub(crate) fn measure(bin: &Path, tmp: &Path, mount: &Path, scratch: &mut Scratch) -> Result<Rss> {
    let mut rss = Rss::default();
    let root = mount.join(BENCH_CGROUP).join("rss");
    scratch.add_cgroup(&root)?;
    let rules = tmp.join("rss-rules");
    fs::create_dir_all(&rules)?;
    let mut made = 0;
    for count in TENANT_COUNTS {
        util::check_interrupted()?;
        for i in made..count {
            scratch.add_cgroup(&root.join(format!("t{i}")))?;
        }
        made = count;
        fs::write(rules.join("tenants.toml"), rules_for(count))?;
        let agent = start_agent_with(bin, tmp, &rules, &["--quiet".as_ref()])?;
        thread::sleep(SETTLE);
        let s = sample(&agent, format!("{count} tenant cgroups"));
        stop_agent(agent, tmp);
        rss.samples.push(s?);
    }
    rss.samples.push(with_connections(bin, tmp)?);
    Ok(rss)
}

/// The bench's two tenants, [`CONNECTIONS`] connections from A to B held open.
fn with_connections(bin: &Path, tmp: &Path) -> Result<Sample> {
    let agent = start_agent(bin, tmp)?;
    let (port_file, server_ready, client_ready) = (
        tmp.join("hold-port"),
        tmp.join("hold-server-ready"),
        tmp.join("hold-client-ready"),
    );
    for stale in [&port_file, &server_ready, &client_ready] {
        let _ = fs::remove_file(stale);
    }
    let hold = |cgroup: &str, what: &'static str, ready: &Path, connect: Option<&str>| {
        let mut cmd = Command::new(bin);
        cmd.args(["workload", "--cgroup"])
            .arg(format!("{BENCH_CGROUP}/{cgroup}"))
            .args(["bench", "hold", "--count"])
            .arg(CONNECTIONS.to_string())
            .arg("--port-file")
            .arg(&port_file)
            .arg("--ready-file")
            .arg(ready);
        if let Some(port) = connect {
            cmd.args(["--connect", port]);
        }
        Proc::spawn(cmd, what, tmp, false)
    };
    let mut server = hold(TENANTS[1], "hold-server", &server_ready, None)?;
    let port = wait_file(&port_file, &mut server)?;
    let mut client = hold(TENANTS[0], "hold-client", &client_ready, Some(port.trim()))?;
    wait_file(&client_ready, &mut client)?;
    wait_file(&server_ready, &mut server)?;
    thread::sleep(SETTLE);
    let s = sample(&agent, format!("{CONNECTIONS} connections open"));
    drop(client);
    drop(server);
    stop_agent(agent, tmp);
    s
}

fn wait_file(path: &Path, proc: &mut Proc) -> Result<String> {
    let deadline = std::time::Instant::now() + HOLD_TIMEOUT;
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && !text.is_empty()
        {
            return Ok(text);
        }
        if let Some(status) = proc.try_wait()? {
            bail!("a connection holder exited ({status}): {}", proc.stderr());
        }
        util::check_interrupted()?;
        if std::time::Instant::now() > deadline {
            bail!("{} did not appear: {}", path.display(), proc.stderr());
        }
        thread::sleep(Duration::from_millis(50));
    }
}
