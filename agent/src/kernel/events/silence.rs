//! Repeated opens, silenced in the kernel once judged. The first open of a file in a directory
//! by a cgroup, of one access class, leaves the kernel as an event with its full path; once the
//! rules have judged it and nothing about the next such opens can differ for them, the agent
//! silences that (cgroup, directory, class) for the current file generation, and the kernel
//! counts the repeats instead of sending them. The counts are read back periodically.
//!
//! When a repeat is silenced nothing can be missed, because every condition below holds:
//! - the rules that can see file spans read only what the key fixes (the caller's tenant and
//!   cgroup, the path's owner tenant and its `shared` flag, the operation and its outcome), count
//!   nothing, and no allow names processes;
//! - the first open was judged and raised no violation;
//! - its path was whole (resolved, rooted, not truncated);
//! - no tenant path and no allow path lies strictly below its directory, so every file directly
//!   in that directory has the owner the judged one had;
//! - the directory kept its canonical path: any rename, directory removal or mount change on
//!   the node advances the generation in the kernel, which voids every silence (silence.rs in
//!   the probes).
//!
//! A rules reload or a change of tenant cgroups forgets every silence.
use std::{cmp::Ordering, collections::HashMap, fmt};

use seam_common::{FileSyscall, SilentKey};
use serde::{Serialize, Serializer};

use super::file::FileEvent;
use crate::{
    model::vocab::{AccessClass, PathConfidence},
    policy::{
        RuleSet,
        lang::{Attr, Family},
        path_under,
    },
};

/// Why a silence could not be set (the opens under its key keep being sent, not counted).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SilenceError {
    /// This tier has no kernel map to silence in.
    #[error("no kernel silence map on this probe tier; every repeated open is sent")]
    NoMap,
    /// The per-CPU values could not be built (the CPU count could not be read, or changed).
    #[error("cannot build per-CPU silence values: {0}; check /sys/devices/system/cpu/possible")]
    Values(#[source] std::io::Error),
    /// The kernel refused the write (the map is full, or was removed).
    #[error("cannot write the kernel's silence map: {0}; repeated opens of this key are sent")]
    Map(#[source] aya::maps::MapError),
}

/// The kernel side: where silences are set and counted.
pub(crate) trait SilenceMap: Send {
    /// Silences `key` for `generation` (an entry of another generation is replaced, keeping
    /// its count).
    fn insert(&mut self, key: SilentKey, generation: u64) -> Result<(), SilenceError>;
    /// The opens counted under each key so far (summed over CPUs).
    fn counts(&mut self) -> Vec<(SilentKey, u64)>;
    /// Forgets every silence.
    fn clear(&mut self);
}

/// No kernel map: nothing is ever silenced (tiers without silencing, tests).
pub(crate) struct NoSilenceMap;

impl SilenceMap for NoSilenceMap {
    fn insert(&mut self, _key: SilentKey, _generation: u64) -> Result<(), SilenceError> {
        Err(SilenceError::NoMap)
    }
    fn counts(&mut self) -> Vec<(SilentKey, u64)> {
        Vec::new()
    }
    fn clear(&mut self) {}
}

/// The attributes every open under one key shares.
const INVARIANT: [Attr; 7] = [
    Attr::Tenant,
    Attr::CgroupId,
    Attr::CgroupPath,
    Attr::FileTenant,
    Attr::FileShared,
    Attr::FileOp,
    Attr::FileOutcome,
];

/// Why `rules` do not allow silencing repeats (None: they do).
pub(crate) fn unsafe_reason(rules: &RuleSet) -> Option<String> {
    for rule in &rules.rules {
        let sees_files = rule
            .matcher
            .spans
            .names()
            .any(|name| name.family() == Family::File);
        if !sees_files {
            continue;
        }
        if rule.count.is_some() || rule.matcher.count.is_some() {
            return Some(format!("rule {} counts file spans", rule.id));
        }
        for attr in rule.matcher.attrs() {
            match attr {
                Some(a) if INVARIANT.contains(&a) => {}
                Some(a) => {
                    return Some(format!(
                        "rule {} reads {}, which differs between repeats",
                        rule.id,
                        a.name()
                    ));
                }
                None => return Some(format!("rule {} reads attr(...)", rule.id)),
            }
        }
    }
    rules
        .allows
        .iter()
        .find(|a| !a.processes.is_empty())
        .map(|_| "an allow names processes".to_owned())
}

/// What a silenced key stands for (the labels of its counts). Written
/// `caller tenant->owner tenant:class` (a key of the stats file's `file_opens_counted_by`),
/// and ordered as written, so maps keyed by it list their keys as maps keyed by the text did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CountLabel {
    /// The caller's tenant.
    pub tenant: String,
    /// The owner of the directory's files (empty: none).
    pub owner: String,
    pub class: AccessClass,
}

impl CountLabel {
    /// The bytes as written (without writing them).
    fn text(&self) -> impl Iterator<Item = u8> + '_ {
        self.tenant
            .bytes()
            .chain(*b"->")
            .chain(self.owner.bytes())
            .chain(*b":")
            .chain(self.class.as_str().bytes())
    }
}

impl Ord for CountLabel {
    fn cmp(&self, other: &Self) -> Ordering {
        // Two labels may read the same (a tenant name with `->` in it): the fields decide.
        self.text().cmp(other.text()).then_with(|| {
            (&self.tenant, &self.owner, self.class).cmp(&(&other.tenant, &other.owner, other.class))
        })
    }
}

impl PartialOrd for CountLabel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CountLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}:{}", self.tenant, self.owner, self.class)
    }
}

impl Serialize for CountLabel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct Silenced {
    label: CountLabel,
    /// The kernel's count at the last read.
    seen: u64,
    /// The generation it was last silenced for.
    generation: u64,
}

/// The agent's side of silencing.
pub(crate) struct Silences {
    map: Box<dyn SilenceMap>,
    /// Why silencing is off, if it is.
    off: Option<String>,
    /// Tenant and allow paths: no silenced directory has one strictly below it.
    boundaries: Vec<String>,
    keys: HashMap<SilentKey, Silenced>,
    /// Silences set since start-up (a key again in each new generation).
    pub(crate) silenced: u64,
}

impl Silences {
    pub(crate) fn new(map: Box<dyn SilenceMap>, rules: &RuleSet) -> Self {
        let mut silences = Self {
            map,
            off: None,
            boundaries: Vec::new(),
            keys: HashMap::new(),
            silenced: 0,
        };
        silences.reload(rules);
        silences
    }

    /// Never silences (no kernel map).
    pub(crate) fn off(rules: &RuleSet) -> Self {
        Self::new(Box::new(NoSilenceMap), rules)
    }

    /// New rules: every silence is forgotten and the rules are checked again.
    pub(crate) fn reload(&mut self, rules: &RuleSet) {
        self.off = unsafe_reason(rules);
        if let Some(reason) = &self.off {
            tracing::info!(%reason, "repeated file opens are all reported (not silenced)");
        }
        self.boundaries = rules
            .tenants
            .iter()
            .flat_map(|t| t.paths.iter())
            .chain(rules.allows.iter().flat_map(|a| a.paths.iter()))
            .map(|p| p.trim_end_matches('/').to_owned())
            .collect();
        self.forget();
    }

    /// Tenant cgroups changed: a cgroup may now stand for another tenant.
    pub(crate) fn forget(&mut self) {
        if !self.keys.is_empty() {
            self.map.clear();
            self.keys.clear();
        }
    }

    /// After the spans of `event` (by `cgroup_id`, of `tenant`) were evaluated: silences its
    /// key when every condition in the module documentation holds. `flagged`: a violation
    /// came out of them.
    pub(crate) fn judged(
        &mut self,
        cgroup_id: u64,
        event: &FileEvent,
        flagged: bool,
        tenant: Option<&str>,
        rules: &RuleSet,
    ) {
        let Some(dir) = event.dir else {
            return;
        };
        if flagged || self.off.is_some() || event.op != FileSyscall::Open || event.ret < 0 {
            return;
        }
        let [path] = event.paths.as_slice() else {
            return;
        };
        if path.confidence != PathConfidence::Full || path.truncated {
            return;
        }
        let Some(directory) = parent(&path.path) else {
            return;
        };
        if self
            .boundaries
            .iter()
            .any(|b| b.as_str() != directory && path_under(b, directory))
        {
            return;
        }
        let key = SilentKey {
            cgroup_id,
            dir_ino: dir.ino,
            dir_dev: dir.dev,
            class: dir.class,
            _pad: [0; 3],
        };
        if self
            .keys
            .get(&key)
            .is_some_and(|k| k.generation == dir.generation)
        {
            // Opens sent before the silence reached the kernel.
            return;
        }
        if let Err(error) = self.map.insert(key, dir.generation) {
            tracing::debug!(%error, "cannot silence repeated opens");
            return;
        }
        self.silenced += 1;
        let owner = rules
            .tenant_for_path(&path.path)
            .map(|t| t.name.as_str().to_owned())
            .unwrap_or_default();
        let entry = self.keys.entry(key).or_insert_with(|| Silenced {
            label: CountLabel {
                tenant: tenant.unwrap_or_default().to_owned(),
                owner,
                class: class_name(dir.class),
            },
            seen: 0,
            generation: dir.generation,
        });
        entry.generation = dir.generation;
    }

    /// Opens the kernel counted since the last call, per label.
    pub(crate) fn collect(&mut self) -> Vec<(CountLabel, u64)> {
        let mut out: HashMap<CountLabel, u64> = HashMap::new();
        for (key, count) in self.map.counts() {
            let Some(silenced) = self.keys.get_mut(&key) else {
                continue;
            };
            // An entry the kernel's LRU dropped and the agent set again starts from zero.
            let new = count.checked_sub(silenced.seen).unwrap_or(count);
            silenced.seen = count;
            if new > 0 {
                *out.entry(silenced.label.clone()).or_default() += new;
            }
        }
        let mut out: Vec<_> = out.into_iter().collect();
        out.sort();
        out
    }
}

/// The directory part of an absolute path (`/` for a file at the root).
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

fn class_name(class: u8) -> AccessClass {
    match class {
        c if c == seam_common::AccessClass::Create as u8 => AccessClass::Create,
        c if c == seam_common::AccessClass::Write as u8 => AccessClass::Write,
        _ => AccessClass::Read,
    }
}

#[cfg(test)]
mod tests;
