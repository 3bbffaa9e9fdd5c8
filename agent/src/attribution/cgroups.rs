//! The cgroup registry: which cgroup ids belong to which tenant. Scans the cgroup2 tree, follows
//! cgroups created and removed while Seam runs (inotify plus a periodic rescan as a safety net),
//! and reports the differences so the pipeline can update the kernel's filter map.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use inotify::{Inotify, WatchMask};

use super::containers::Containers;
use crate::{
    attribution::pods::PodDirectory,
    model::{
        handoff::Notifier,
        spans::{ContainerRef, TenantRef},
    },
    policy::RuleSet,
};

/// A cgroup Seam knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupInfo {
    /// cgroup v2 id (the directory's inode number).
    pub id: u64,
    /// Path relative to the cgroup2 mount, e.g. `seam-demo/tenant-a` (empty for the root);
    /// shared with every span of the cgroup.
    pub path: std::sync::Arc<str>,
    pub tenant: Option<TenantRef>,
}

/// What changed in one scan.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupChanges {
    /// Tenant cgroups to register in the kernel (new, or moved to another tenant).
    pub registered: Vec<CgroupInfo>,
    /// Tenant cgroups gone (or no longer matching any tenant).
    pub unregistered: Vec<CgroupInfo>,
}

/// How long (ns) a removed tenant cgroup is still known: events it raised before it went may
/// still be in the ring buffer, or queued behind the rescan that saw it go.
const DEPARTED_LINGER_NS: u64 = 30_000_000_000;
/// Most removed tenant cgroups remembered at once (the oldest are forgotten first).
const MAX_DEPARTED: usize = 16_384;

/// All cgroups under the cgroup2 mount, with their tenants.
pub(crate) struct CgroupRegistry {
    root: PathBuf,
    by_id: HashMap<u64, CgroupInfo>,
    /// Tenant cgroups removed lately, by id, and (boot ns of the scan that missed them, id)
    /// oldest first.
    departed: HashMap<u64, CgroupInfo>,
    departed_order: VecDeque<(u64, u64)>,
    /// The container of each container cgroup, by cgroup id.
    containers_by_id: HashMap<u64, Arc<ContainerRef>>,
    containers: Containers,
}

impl CgroupRegistry {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            by_id: HashMap::new(),
            departed: HashMap::new(),
            departed_order: VecDeque::new(),
            containers_by_id: HashMap::new(),
            containers: Containers::default(),
        }
    }

    /// Attributes container cgroups by pod too, asking `directory` (the container runtime).
    pub(crate) fn with_pods(mut self, directory: Option<PodDirectory>) -> Self {
        self.containers = Containers::new(directory);
        self
    }

    /// The container the cgroup with this id belongs to, if it is a container's.
    pub(crate) fn container(&self, id: u64) -> Option<&Arc<ContainerRef>> {
        self.containers_by_id.get(&id)
    }

    /// Container cgroups left unattributed because their pod is unknown (since start), and
    /// the runtime asked.
    pub(crate) fn unresolved_pods(&self) -> (u64, crate::model::vocab::PodSource) {
        (self.containers.unresolved_total, self.containers.runtime())
    }

    /// A registry with known entries (fixtures).
    #[cfg(test)]
    pub(crate) fn from_entries(
        root: PathBuf,
        entries: impl IntoIterator<Item = CgroupInfo>,
    ) -> Self {
        Self {
            root,
            by_id: entries.into_iter().map(|c| (c.id, c)).collect(),
            departed: HashMap::new(),
            departed_order: VecDeque::new(),
            containers_by_id: HashMap::new(),
            containers: Containers::default(),
        }
    }

    /// The cgroup2 mount.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup with this id, if it existed at the last scan, or was a tenant's and was
    /// removed lately (its last events may arrive after the scan that saw it go).
    pub(crate) fn get(&self, id: u64) -> Option<&CgroupInfo> {
        self.by_id.get(&id).or_else(|| self.departed.get(&id))
    }

    /// Rescans the tree and returns the tenant cgroups that appeared, changed or went away.
    pub(crate) fn scan(&mut self, rules: &RuleSet) -> CgroupChanges {
        self.scan_at(rules, crate::model::clock::boot_ns())
    }

    /// [`CgroupRegistry::scan`] at boot time `now_ns`.
    pub(crate) fn scan_at(&mut self, rules: &RuleSet, now_ns: u64) -> CgroupChanges {
        let mut seen = HashMap::with_capacity(self.by_id.len());
        let mut containers = HashMap::new();
        let mut container_ids = HashSet::new();
        for (id, path) in walk(&self.root) {
            let (tenant, container) = self.containers.attribute(rules, &path);
            if let Some(container) = container {
                container_ids.insert(container.id.clone());
                containers.insert(id, container);
            }
            let path = match self.by_id.get(&id) {
                Some(old) if *old.path == *path => old.path.clone(),
                _ => path.into(),
            };
            seen.insert(id, CgroupInfo { id, path, tenant });
        }
        self.containers.retain(&container_ids);
        self.containers_by_id = containers;
        let mut changes = CgroupChanges::default();
        for (id, old) in &self.by_id {
            let still = seen.get(id);
            if old.tenant.is_some() && still.is_none_or(|new| new.tenant != old.tenant) {
                changes.unregistered.push(old.clone());
            }
            if old.tenant.is_some() && still.is_none() {
                self.departed.insert(*id, old.clone());
                self.departed_order.push_back((now_ns, *id));
            }
        }
        self.forget_departed(now_ns);
        for (id, new) in &seen {
            let old = self.by_id.get(id);
            if new.tenant.is_some() && old.is_none_or(|old| old.tenant != new.tenant) {
                changes.registered.push(new.clone());
            }
        }
        changes.registered.sort_by(|a, b| a.path.cmp(&b.path));
        changes.unregistered.sort_by(|a, b| a.path.cmp(&b.path));
        self.by_id = seen;
        changes
    }

    /// Forgets removed cgroups that left more than [`DEPARTED_LINGER_NS`] ago, and the oldest
    /// beyond [`MAX_DEPARTED`].
    fn forget_departed(&mut self, now_ns: u64) {
        while let Some(&(left_ns, id)) = self.departed_order.front() {
            let stale = now_ns.saturating_sub(left_ns) >= DEPARTED_LINGER_NS;
            if !stale && self.departed_order.len() <= MAX_DEPARTED {
                break;
            }
            self.departed_order.pop_front();
            self.departed.remove(&id);
        }
    }

    /// Removed tenant cgroups still remembered.
    #[cfg(test)]
    pub(crate) fn departed(&self) -> usize {
        self.departed.len()
    }

    /// The first cgroup (by path) of tenant `name`, relative to the mount.
    pub(crate) fn first_of(&self, name: &str) -> Option<String> {
        self.by_id
            .values()
            .filter(|c| c.tenant.as_ref().is_some_and(|t| t.name.as_str() == name))
            .map(|c| c.path.to_string())
            .min()
    }

    /// Number of tenant cgroups currently registered.
    pub(crate) fn tenant_cgroups(&self) -> usize {
        self.by_id.values().filter(|c| c.tenant.is_some()).count()
    }
}

/// Every directory under `root` as (inode, relative path). Unreadable directories (a cgroup
/// removed mid-walk) are skipped.
fn walk(root: &Path) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = fs::metadata(&dir) else {
            continue;
        };
        let rel = dir
            .strip_prefix(root)
            .map(|p| crate::model::text::escape_os(p.as_os_str()))
            .unwrap_or_default();
        out.push((meta.ino(), rel));
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    out
}

/// Watches the cgroup tree and gives notice when directories come or go.
/// Runs on its own thread (inotify reads block). Also ticks every `rescan` as a safety net
/// against missed notifications.
pub(crate) fn spawn_watcher(root: PathBuf, changed: Notifier, rescan: Duration) {
    std::thread::Builder::new()
        .name("seam-cgroup-watch".into())
        .spawn(move || {
            if let Err(error) = watch(&root, &changed) {
                tracing::warn!(%error, "inotify on cgroupfs failed; relying on periodic rescans");
            }
            // Fallback (or after inotify failed): periodic rescans only.
            while changed.notify() {
                std::thread::sleep(rescan);
            }
        })
        .map(drop)
        .unwrap_or_else(|error| tracing::warn!(%error, "cannot start the cgroup watcher"));
}

fn watch(root: &Path, changed: &Notifier) -> std::io::Result<()> {
    let mut inotify = Inotify::init()?;
    let mask = WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::ONLYDIR;
    let mut watched: HashSet<String> = HashSet::new();
    let mut buffer = [0u8; 8192];
    loop {
        for (_, rel) in walk(root) {
            if watched.insert(rel.clone()) {
                // A directory may vanish between the walk and the watch: not an error.
                let _ = inotify.watches().add(root.join(&rel), mask);
            }
        }
        let events = inotify.read_events_blocking(&mut buffer)?;
        let dirs_changed = events
            .into_iter()
            .any(|e| e.mask.contains(inotify::EventMask::ISDIR));
        if dirs_changed {
            // Forget removed directories so a re-created one is watched again.
            watched.retain(|rel| root.join(rel).is_dir());
            if !changed.notify() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[tenant]]
name = "a"
cgroups = ["a"]

[[rule]]
id = "any"
severity = "low"
description = "d"
expr = "trace.has(*)"
"#;
    const SEC: u64 = 1_000_000_000;

    fn rules() -> RuleSet {
        RuleSet::from_sources(&[("t.toml", RULES)]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_removed_tenant_cgroup_is_still_known_for_a_while_then_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("a/job");
        fs::create_dir_all(&job).unwrap();
        let id = fs::metadata(&job).unwrap().ino();
        let mut registry = CgroupRegistry::new(root.path().to_owned());
        let rules = rules();
        let changes = registry.scan_at(&rules, 0);
        assert!(changes.registered.iter().any(|c| c.id == id));
        assert_eq!(registry.tenant_cgroups(), 2);

        fs::remove_dir(&job).unwrap();
        let changes = registry.scan_at(&rules, SEC);
        assert_eq!(changes.unregistered.len(), 1);
        assert_eq!(registry.tenant_cgroups(), 1, "no longer counted");
        let late = registry
            .get(id)
            .expect("late events still find their tenant");
        assert_eq!(&*late.path, "a/job");
        assert_eq!(late.tenant.as_ref().unwrap().name.as_str(), "a");
        assert_eq!(registry.departed(), 1);

        registry.scan_at(&rules, SEC + DEPARTED_LINGER_NS - 1);
        assert!(registry.get(id).is_some());
        registry.scan_at(&rules, SEC + DEPARTED_LINGER_NS);
        assert!(registry.get(id).is_none(), "forgotten after the linger");
        assert_eq!(registry.departed(), 0);
    }
}
