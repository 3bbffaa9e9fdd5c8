//! Attribution: from a cgroup id and a task to a process and a tenant (second stage).
//!
//! The [`CgroupRegistry`] maps cgroup ids to paths and tenants and tells the kernel's filter
//! ([`crate::kernel::filter::TenantFilter`]) which cgroups to watch; the [`ProcessTable`] knows tenant processes by
//! pid. Tenants are resolved by name here, once, so every span carries them.
pub(crate) mod cgroups;
pub(crate) mod containers;
pub(crate) mod local;
pub(crate) mod pods;
pub(crate) mod processes;

use std::{os::unix::ffi::OsStrExt as _, sync::Arc};

pub(crate) use cgroups::{CgroupChanges, CgroupRegistry};
pub(crate) use local::LocalAddrs;
pub(crate) use processes::{Observed, ProcessInfo, ProcessTable};

use crate::{model::spans::ProcessRef, policy::RuleSet};

/// Builds [`ProcessRef`]s from the registry and the process table.
pub(crate) struct Attributor {
    pub cgroups: CgroupRegistry,
    pub processes: ProcessTable,
    /// This node's addresses (`peer.local`, `caller.local`).
    pub local: LocalAddrs,
}

impl Attributor {
    /// `info` as a span's process, in `cgroup_id` (the event's: a socket's own cgroup may
    /// differ from where its owner runs now).
    pub(crate) fn process_ref(&self, info: &ProcessInfo, cgroup_id: u64) -> ProcessRef {
        let mut process = self.cgroup_only(cgroup_id);
        process.pid = Some(info.pid);
        process.comm = info.comm.clone();
        process.exe.clone_from(&info.exe);
        process.uid = Some(info.uid);
        process.execution = Some(info.execution);
        process
    }

    /// The process behind an event raised in its own task context (`pid` non-zero); records
    /// what the event says about it. The second value says whether the pid is new (a process
    /// already running when Seam first saw it: its span starts now).
    pub(crate) fn task(
        &mut self,
        pid: u32,
        comm: &str,
        uid: u32,
        cgroup_id: u64,
        time_ns: u64,
    ) -> (ProcessRef, Observed) {
        let observed = self.processes.observe(pid, comm, uid, cgroup_id, time_ns);
        let process = match self.processes.get(pid) {
            Some(info) => self.process_ref(info, cgroup_id),
            None => self.cgroup_only(cgroup_id),
        };
        (process, observed)
    }

    /// A socket event raised outside its owner's context (softirq): the cgroup is the
    /// socket's; the process is `owner` when known (the caller of connect() or listen()).
    pub(crate) fn socket(&self, cgroup_id: u64, owner: Option<&ProcessRef>) -> ProcessRef {
        let mut process = self.cgroup_only(cgroup_id);
        if let Some(owner) = owner {
            process.pid = owner.pid;
            process.comm = owner.comm.clone();
            process.exe.clone_from(&owner.exe);
            process.uid = owner.uid;
            process.execution = owner.execution;
        }
        process
    }

    /// Any process on this node by pid: a tenant process Seam follows, else what procfs says
    /// (its cgroup, hence its tenant, comm, executable and uid). `None` when it is gone.
    pub(crate) fn process_by_pid(&self, pid: u32, rules: &RuleSet) -> Option<ProcessRef> {
        if let Some(info) = self.processes.get(pid) {
            return Some(self.process_ref(info, info.cgroup_id));
        }
        let dir = self.processes.procfs().join(pid.to_string());
        // Bytes, not text: a cgroup's name need not be UTF-8, and such a name must not hide
        // the process.
        let cgroups = std::fs::read(dir.join("cgroup")).ok()?;
        let raw = cgroups
            .split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(b"0::"))?;
        let raw = raw.strip_prefix(b"/").unwrap_or(raw);
        let raw = std::ffi::OsStr::from_bytes(raw);
        let path = crate::model::text::escape_os(raw);
        let cgroup_id = std::fs::metadata(self.cgroups.root().join(raw))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        let tenant = self
            .cgroups
            .get(cgroup_id)
            .and_then(|c| c.tenant.clone())
            .or_else(|| rules.tenant_for_cgroup(&path));
        let status = std::fs::read(dir.join("status")).unwrap_or_default();
        let status = String::from_utf8_lossy(&status);
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok());
        Some(ProcessRef {
            pid: Some(pid),
            comm: std::fs::read(dir.join("comm"))
                .map(|c| {
                    crate::model::text::escape_bytes(c.strip_suffix(b"\n").unwrap_or(&c)).into()
                })
                .unwrap_or_default(),
            exe: std::fs::read_link(dir.join("exe"))
                .ok()
                .map(|p| crate::model::text::escape_os(p.as_os_str()).into()),
            uid,
            cgroup_id,
            cgroup_path: path.into(),
            tenant,
            execution: None,
            container: self.cgroups.container(cgroup_id).cloned(),
        })
    }

    /// A process known only by its cgroup.
    fn cgroup_only(&self, cgroup_id: u64) -> ProcessRef {
        let cgroup = self.cgroups.get(cgroup_id);
        ProcessRef {
            pid: None,
            comm: Arc::default(),
            exe: None,
            uid: None,
            cgroup_id,
            cgroup_path: cgroup.map(|c| c.path.clone()).unwrap_or_default(),
            tenant: cgroup.and_then(|c| c.tenant.clone()),
            execution: None,
            container: self.cgroups.container(cgroup_id).cloned(),
        }
    }
}
