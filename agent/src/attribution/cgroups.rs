//! The cgroup registry: which cgroup ids belong to which tenant. Scans the cgroup2 tree, follows
//! cgroups created and removed while Seam runs (inotify plus a periodic rescan as a safety net),
//! and reports the differences so the pipeline can update the kernel's filter map.
use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc;

use super::containers::Containers;
use crate::{
    config::RuleSet,
    input::Input,
    k8s::PodDirectory,
    spans::{ContainerRef, TenantRef},
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

/// All cgroups under the cgroup2 mount, with their tenants.
pub(crate) struct CgroupRegistry {
    root: PathBuf,
    by_id: HashMap<u64, CgroupInfo>,
    /// The container of each container cgroup, by cgroup id.
    containers_by_id: HashMap<u64, Arc<ContainerRef>>,
    containers: Containers,
}

impl CgroupRegistry {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            by_id: HashMap::new(),
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
    pub(crate) fn unresolved_pods(&self) -> (u64, &'static str) {
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
            containers_by_id: HashMap::new(),
            containers: Containers::default(),
        }
    }

    /// The cgroup2 mount.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup with this id, if it existed at the last scan.
    pub(crate) fn get(&self, id: u64) -> Option<&CgroupInfo> {
        self.by_id.get(&id)
    }

    /// Rescans the tree and returns the tenant cgroups that appeared, changed or went away.
    pub(crate) fn scan(&mut self, rules: &RuleSet) -> CgroupChanges {
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
        }
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
            .map(|p| crate::text::escape_os(p.as_os_str()))
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

/// Watches the cgroup tree and sends [`Input::CgroupsChanged`] when directories come or go.
/// Runs on its own thread (inotify reads block). Also ticks every `rescan` as a safety net
/// against missed notifications.
pub(crate) fn spawn_watcher(root: PathBuf, tx: mpsc::Sender<Input>, rescan: Duration) {
    std::thread::Builder::new()
        .name("seam-cgroup-watch".into())
        .spawn(move || {
            if let Err(error) = watch(&root, &tx) {
                tracing::warn!(%error, "inotify on cgroupfs failed; relying on periodic rescans");
            }
            // Fallback (or after inotify failed): periodic rescans only.
            while tx.blocking_send(Input::CgroupsChanged).is_ok() {
                std::thread::sleep(rescan);
            }
        })
        .map(drop)
        .unwrap_or_else(|error| tracing::warn!(%error, "cannot start the cgroup watcher"));
}

fn watch(root: &Path, tx: &mpsc::Sender<Input>) -> std::io::Result<()> {
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
            if tx.blocking_send(Input::CgroupsChanged).is_err() {
                return Ok(());
            }
        }
    }
}
