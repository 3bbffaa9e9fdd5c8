//! Attribution: from a cgroup id and a task to a tenant and a caller (second stage).
pub mod cgroups;
pub mod processes;

pub use cgroups::{CgroupChanges, CgroupInfo, CgroupRegistry};
pub use processes::{ProcessInfo, ProcessTable};
use serde::Serialize;

use crate::config::{RuleSet, TenantId};

/// Who did something: process identity plus the cgroup and tenant it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Option<TenantId>,
    /// 0 when unknown (the event ran in softirq and no owner was seen).
    pub pid: u32,
    pub comm: String,
    pub uid: u32,
    pub cgroup_id: u64,
    pub cgroup_path: String,
}

/// [`Caller`] as it appears in the feed (tenant by name).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CallerRecord {
    pub tenant: Option<String>,
    pub pid: u32,
    pub comm: String,
    pub uid: u32,
    pub cgroup_id: u64,
    pub cgroup_path: String,
}

impl Caller {
    pub fn record(&self, rules: &RuleSet) -> CallerRecord {
        CallerRecord {
            tenant: self.tenant.map(|t| rules.tenant(t).name.clone()),
            pid: self.pid,
            comm: self.comm.clone(),
            uid: self.uid,
            cgroup_id: self.cgroup_id,
            cgroup_path: self.cgroup_path.clone(),
        }
    }
}

/// Builds [`Caller`]s from the registry and the process table.
pub struct Attributor {
    pub cgroups: CgroupRegistry,
    pub processes: ProcessTable,
}

impl Attributor {
    /// The caller for an event attributed to `cgroup_id`, raised by `pid` (0: unknown task).
    /// `fallback` names the task when the event carries none (e.g. a listener's owner).
    pub fn caller(
        &self,
        cgroup_id: u64,
        pid: u32,
        comm: &str,
        uid: u32,
        fallback: Option<&Caller>,
    ) -> Caller {
        let cgroup = self.cgroups.get(cgroup_id);
        let (tenant, cgroup_path) = match cgroup {
            Some(c) => (c.tenant, c.path.clone()),
            None => (None, String::new()),
        };
        if let (0, Some(owner)) = (pid, fallback) {
            return Caller {
                tenant,
                cgroup_id,
                cgroup_path,
                ..owner.clone()
            };
        }
        let known = self.processes.get(pid);
        Caller {
            tenant,
            pid,
            comm: if comm.is_empty() {
                known.map(|p| p.comm.clone()).unwrap_or_default()
            } else {
                comm.to_owned()
            },
            uid,
            cgroup_id,
            cgroup_path,
        }
    }
}
