//! What Seam knows of tenant processes: comm, uid and cgroup by pid, from exec events and from
//! every event raised in a task's own context. Exited processes linger briefly so late events
//! (a socket closed in softirq after its owner exited) can still name them.
use std::collections::HashMap;

/// How long (ns) an exited process is kept.
const LINGER_NS: u64 = 30_000_000_000;

/// One process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub uid: u32,
    pub cgroup_id: u64,
    /// Boot-time ns of the exit, if it exited.
    pub exited_ns: Option<u64>,
}

/// pid -> process.
#[derive(Default)]
pub struct ProcessTable {
    by_pid: HashMap<u32, ProcessInfo>,
}

impl ProcessTable {
    /// Records what an event's header says about its task.
    pub fn observe(&mut self, pid: u32, comm: &str, uid: u32, cgroup_id: u64) {
        if pid == 0 {
            return;
        }
        let entry = self.by_pid.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            ppid: 0,
            comm: String::new(),
            uid,
            cgroup_id,
            exited_ns: None,
        });
        comm.clone_into(&mut entry.comm);
        entry.uid = uid;
        entry.cgroup_id = cgroup_id;
    }

    pub fn exec(&mut self, pid: u32, ppid: u32, comm: &str, uid: u32, cgroup_id: u64) {
        self.observe(pid, comm, uid, cgroup_id);
        if let Some(p) = self.by_pid.get_mut(&pid) {
            p.ppid = ppid;
            p.exited_ns = None;
        }
    }

    pub fn exit(&mut self, pid: u32, now_ns: u64) {
        if let Some(p) = self.by_pid.get_mut(&pid) {
            p.exited_ns = Some(now_ns);
        }
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.by_pid.get(&pid)
    }

    /// Forgets processes that exited more than [`LINGER_NS`] before `now_ns`.
    pub fn expire(&mut self, now_ns: u64) {
        self.by_pid.retain(|_, p| {
            p.exited_ns
                .is_none_or(|t| now_ns.saturating_sub(t) < LINGER_NS)
        });
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_observe_exit_and_expiry() {
        let mut table = ProcessTable::default();
        table.exec(10, 1, "server", 0, 5);
        table.observe(10, "server-renamed", 0, 5);
        table.observe(0, "softirq", 0, 5);
        assert_eq!(table.get(10).unwrap().comm, "server-renamed");
        assert_eq!(table.get(10).unwrap().ppid, 1);
        assert_eq!(table.len(), 1);
        table.exit(10, 1_000);
        table.expire(1_000 + LINGER_NS - 1);
        assert!(table.get(10).is_some(), "kept while lingering");
        table.expire(1_000 + LINGER_NS);
        assert!(table.is_empty());
    }
}
