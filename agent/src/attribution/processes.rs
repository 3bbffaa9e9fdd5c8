//! What Seam knows of tenant processes, by pid: identity (comm, uid, cgroup, executable) from
//! exec events and from every event raised in a task's own context, and the execution each pid
//! is running (the process span's ids and start). Exited processes linger briefly so late
//! events (a socket closed in softirq after its owner exited) can still name them.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::model::{ids::process_ids, spans::SpanRef};

/// How long (ns) an exited process is kept.
const LINGER_NS: u64 = 30_000_000_000;

/// One process (one execution of one program).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProcessInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: std::sync::Arc<str>,
    pub exe: Option<std::sync::Arc<str>>,
    pub uid: u32,
    pub cgroup_id: u64,
    /// The process span: trace id and span id of this execution.
    pub execution: SpanRef,
    /// Boot-time ns of the exec (or of the process's start when the exec was not seen).
    pub start_ns: u64,
    /// Whether Seam saw the exec.
    pub exec_seen: bool,
    /// Boot-time ns of the exit, if it exited.
    pub exited_ns: Option<u64>,
    /// Rules were evaluated on the process span (at exec, once the executable is known).
    pub evaluated: bool,
}

/// What [`ProcessTable::observe`] found.
pub(crate) enum Observed {
    /// A pid already known.
    Known,
    /// A pid seen for the first time without its exec: a new (already running) execution.
    New,
}

/// pid -> process.
pub(crate) struct ProcessTable {
    by_pid: HashMap<u32, ProcessInfo>,
    boot_id: [u8; 16],
    procfs: PathBuf,
}

impl ProcessTable {
    /// A table for this boot (`boot_id` keys trace ids), reading process start times from
    /// `procfs`.
    pub(crate) fn new(boot_id: [u8; 16], procfs: PathBuf) -> Self {
        Self {
            by_pid: HashMap::new(),
            boot_id,
            procfs,
        }
    }

    /// The procfs the table reads.
    pub(crate) fn procfs(&self) -> &Path {
        &self.procfs
    }

    fn execution(&self, pid: u32, start_ns: u64) -> SpanRef {
        let (trace_id, span_id) = process_ids(&self.boot_id, pid, start_ns);
        SpanRef { trace_id, span_id }
    }

    /// Records what an event raised in `pid`'s own context says about it. `now_ns` is the
    /// event's boot time, the start of last resort when procfs no longer has the process.
    pub(crate) fn observe(
        &mut self,
        pid: u32,
        comm: &str,
        uid: u32,
        cgroup_id: u64,
        now_ns: u64,
    ) -> Observed {
        if let Some(entry) = self.by_pid.get_mut(&pid) {
            if *entry.comm != *comm {
                entry.comm = comm.into();
            }
            entry.uid = uid;
            entry.cgroup_id = cgroup_id;
            return Observed::Known;
        }
        let start_ns = proc_start_ns(&self.procfs, pid).unwrap_or(now_ns);
        let info = ProcessInfo {
            pid,
            ppid: None,
            comm: comm.into(),
            exe: None,
            uid,
            cgroup_id,
            execution: self.execution(pid, start_ns),
            start_ns,
            exec_seen: false,
            exited_ns: None,
            evaluated: true,
        };
        self.by_pid.insert(pid, info);
        Observed::New
    }

    /// A new execution of `pid`; returns the execution it replaced, if one was running.
    pub(crate) fn exec(
        &mut self,
        pid: u32,
        ppid: u32,
        comm: &str,
        uid: u32,
        cgroup_id: u64,
        time_ns: u64,
    ) -> Option<ProcessInfo> {
        let info = ProcessInfo {
            pid,
            ppid: (ppid != 0).then_some(ppid),
            comm: comm.into(),
            exe: None,
            uid,
            cgroup_id,
            execution: self.execution(pid, time_ns),
            start_ns: time_ns,
            exec_seen: true,
            exited_ns: None,
            evaluated: false,
        };
        self.by_pid
            .insert(pid, info)
            .filter(|old| old.exited_ns.is_none())
    }

    /// The executable of `pid`'s current execution (from its exec's `bprm->file`).
    pub(crate) fn set_exe(&mut self, pid: u32, exe: &str) -> Option<&mut ProcessInfo> {
        let entry = self.by_pid.get_mut(&pid)?;
        entry.exe = Some(exe.into());
        Some(entry)
    }

    /// `pid` exited; returns its execution (still kept for late events).
    pub(crate) fn exit(&mut self, pid: u32, now_ns: u64) -> Option<&ProcessInfo> {
        let p = self.by_pid.get_mut(&pid)?;
        if p.exited_ns.is_some() {
            return None;
        }
        p.exited_ns = Some(now_ns);
        Some(p)
    }

    pub(crate) fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.by_pid.get(&pid)
    }

    /// Forgets processes that exited more than [`LINGER_NS`] before `now_ns`.
    pub(crate) fn expire(&mut self, now_ns: u64) {
        self.by_pid.retain(|_, p| {
            p.exited_ns
                .is_none_or(|t| now_ns.saturating_sub(t) < LINGER_NS)
        });
    }

    /// Running processes (open process spans).
    pub(crate) fn running(&self) -> impl Iterator<Item = &ProcessInfo> {
        self.by_pid.values().filter(|p| p.exited_ns.is_none())
    }

    /// Processes that exec'd but whose span was not evaluated yet.
    pub(crate) fn unevaluated(&mut self) -> impl Iterator<Item = &mut ProcessInfo> {
        self.by_pid.values_mut().filter(|p| !p.evaluated)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_pid.len()
    }
}

/// Boot-time ns at which `pid` started (`/proc/<pid>/stat` field 22, in clock ticks).
fn proc_start_ns(procfs: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read(procfs.join(pid.to_string()).join("stat")).ok()?;
    // The comm (field 2) may hold spaces, parentheses and bytes that are not UTF-8: count
    // fields after the last ')'.
    let rest = std::str::from_utf8(&stat[stat.iter().rposition(|&b| b == b')')? + 1..]).ok()?;
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)?;
    Some(ticks.saturating_mul(1_000_000_000 / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ProcessTable {
        ProcessTable::new([1; 16], PathBuf::from("/nonexistent"))
    }

    #[test]
    fn exec_observe_exit_and_expiry() {
        let mut table = table();
        assert!(table.exec(10, 1, "server", 0, 5, 100).is_none());
        assert!(matches!(
            table.observe(10, "renamed", 0, 5, 200),
            Observed::Known
        ));
        assert_eq!(&*table.get(10).unwrap().comm, "renamed");
        assert_eq!(table.get(10).unwrap().ppid, Some(1));
        assert!(table.exit(10, 1_000).is_some());
        assert!(table.exit(10, 1_001).is_none(), "an exit is reported once");
        table.expire(1_000 + LINGER_NS - 1);
        assert!(table.get(10).is_some(), "kept while lingering");
        table.expire(1_000 + LINGER_NS);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn an_exec_replaces_the_running_execution_with_new_ids() {
        let mut table = table();
        table.exec(10, 1, "sh", 0, 5, 100);
        let first = table.get(10).unwrap().execution;
        let old = table.exec(10, 1, "python", 0, 5, 200).expect("replaced");
        assert_eq!(old.execution, first);
        assert_ne!(table.get(10).unwrap().execution, first);
    }

    #[test]
    fn first_sight_without_exec_uses_procfs_start() {
        let mut table = ProcessTable::new([1; 16], PathBuf::from("/proc"));
        let me = std::process::id();
        assert!(matches!(
            table.observe(me, "test", 0, 1, u64::MAX),
            Observed::New
        ));
        let info = table.get(me).unwrap();
        assert!(!info.exec_seen);
        assert!(info.start_ns < u64::MAX, "start read from /proc/{me}/stat");
        // The same process seen again by a restarted agent gets the same ids.
        let mut again = ProcessTable::new([1; 16], PathBuf::from("/proc"));
        again.observe(me, "test", 0, 1, 7);
        assert_eq!(again.get(me).unwrap().execution, info.execution);
    }
}
