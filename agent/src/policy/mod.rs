//! Tenant and rule configuration: loading, validation and the compiled lookups the
//! detector uses.
//!
//! A rules directory holds `*.toml` files with `[[tenant]]`, `[[rule]]` and `[[allow]]`
//! tables; the format is documented in `docs/rules.md`. Loading reports every error in
//! every file at once, each with its file, line, column and source line.

mod error;
pub(crate) mod lang;
mod matcher;
mod model;
mod parse;
mod pods;
mod raw;
mod strmap;
#[cfg(test)]
mod tests;
mod tier;

use std::{
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
};

pub(crate) use self::{
    error::{ConfigError, ConfigErrors},
    model::{Allow, CountRule, Rule, Tenant, TenantId, TenantMatch, path_under},
};
use self::{
    matcher::{CgroupMatcher, EndpointMatcher},
    parse::Source,
    pods::PodMatcher,
};
use crate::model::spans::TenantRef;

/// The demo's default rules (`rules/demo/`), embedded in the binary, as `(name, text)`.
pub(crate) const DEMO_SOURCES: &[(&str, &str)] = &[
    (
        "rules/demo/policy.toml",
        include_str!("../../../rules/demo/policy.toml"),
    ),
    (
        "rules/demo/tenants.toml",
        include_str!("../../../rules/demo/tenants.toml"),
    ),
];

/// A validated set of tenants, rules and allow entries, with precompiled matchers.
///
/// The public fields are a read-only view: the lookups use matchers compiled at load time.
#[derive(Debug, Clone)]
pub(crate) struct RuleSet {
    /// Tenants in load order; `TenantId(i)` is `tenants[i]`.
    pub tenants: Vec<Tenant>,
    /// Rules in load order.
    pub rules: Vec<Rule>,
    /// Allow entries in load order.
    pub allows: Vec<Allow>,
    /// The files the set was loaded from, in load order.
    pub sources: Vec<PathBuf>,
    cgroups: CgroupMatcher,
    endpoints: EndpointMatcher,
    /// Pod (namespace, labels) -> tenant, for tenants declared by Kubernetes namespace.
    pods: PodMatcher,
    /// `refs[i]` names `tenants[i]` (shared by every span attributed to it).
    refs: Vec<TenantRef>,
}

/// Largest rules file read, in bytes: rules are small, and a huge file is a mistake or an attack.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

impl RuleSet {
    /// SHA-256 of the rules files' names and contents in load order: what `seam fingerprint`,
    /// the feed's start record and the history's run marks carry, so fleet-check sees drift.
    /// The demo's embedded rules hash by their text. None if a file cannot be read.
    pub(crate) fn sha256(&self) -> Option<String> {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        for source in &self.sources {
            let text = match fs::read(source) {
                Ok(text) => text,
                Err(_) => DEMO_SOURCES
                    .iter()
                    .find(|(name, _)| Path::new(name) == source)?
                    .1
                    .as_bytes()
                    .to_vec(),
            };
            hasher.update(source.file_name().unwrap_or_default().as_encoded_bytes());
            hasher.update([0]);
            hasher.update(&text);
            hasher.update([0]);
        }
        Some(
            hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// Loads every `*.toml` file directly in `dir` (sorted by name; other files, hidden files
    /// and subdirectories are ignored) and validates them together.
    #[cfg(test)]
    pub(crate) fn load_dir(dir: &Path) -> Result<RuleSet, ConfigErrors> {
        RuleSet::load_dirs(&[dir.to_owned()])
    }

    /// Loads several directories as one set (e.g. the shipped rules and this node's tenants):
    /// the files of each directory sorted by name, directories in the given order.
    pub(crate) fn load_dirs(dirs: &[PathBuf]) -> Result<RuleSet, ConfigErrors> {
        let mut paths = Vec::new();
        let mut unreadable = Vec::new();
        for dir in dirs {
            match toml_files(dir) {
                Ok(files) => paths.extend(files),
                Err(errors) => unreadable.extend(errors.0),
            }
        }
        if !unreadable.is_empty() {
            return Err(ConfigErrors(unreadable));
        }
        let origin = dirs.first().map_or(Path::new("."), |d| d.as_path());
        let mut sources = Vec::with_capacity(paths.len());
        let mut errors = Vec::new();
        for path in paths {
            // `metadata` follows symlinks (Kubernetes ConfigMap volumes are symlinks).
            match fs::metadata(&path).and_then(|m| {
                if m.is_dir() {
                    Ok(None)
                } else if m.len() > MAX_FILE_BYTES {
                    Ok(Some(Err(m.len())))
                } else {
                    fs::read_to_string(&path).map(|text| Some(Ok(text)))
                }
            }) {
                Ok(Some(Ok(text))) => sources.push(Source { path, text }),
                Ok(Some(Err(len))) => errors.push(ConfigError::Invalid {
                    path,
                    location: None,
                    message: format!(
                        "the file is {len} bytes, more than the {MAX_FILE_BYTES} a rules file may be"
                    ),
                    hint: "split it into several files, or check that it is the file you meant"
                        .to_owned(),
                }),
                Ok(None) => tracing::debug!(path = %path.display(), "skipping directory"),
                Err(source) => errors.push(ConfigError::FileUnreadable { path, source }),
            }
        }
        if sources.is_empty() && errors.is_empty() {
            return Err(ConfigErrors(vec![ConfigError::Invalid {
                path: origin.to_owned(),
                location: None,
                message: "no rules files (*.toml) in the directory".to_owned(),
                hint: "add at least one .toml file with [[tenant]] and [[rule]] tables".to_owned(),
            }]));
        }
        tracing::debug!(dir = %origin.display(), files = sources.len(), "loading rules");
        parse::build(origin, sources, errors)
    }

    /// Same validation for in-memory files `(name, text)`, in the given order — used for the
    /// demo's embedded rules.
    pub(crate) fn from_sources(files: &[(&str, &str)]) -> Result<RuleSet, ConfigErrors> {
        let sources = files
            .iter()
            .map(|(name, text)| Source {
                path: PathBuf::from(name),
                text: (*text).to_owned(),
            })
            .collect();
        parse::build(Path::new("<embedded rules>"), sources, Vec::new())
    }

    /// The demo's default rules ([`DEMO_SOURCES`]).
    pub(crate) fn demo() -> Result<RuleSet, ConfigErrors> {
        RuleSet::from_sources(DEMO_SOURCES)
    }

    /// The tenant with this name.
    pub(crate) fn tenant_by_name(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name.as_str() == name)
    }

    fn tenant_ref(&self, id: TenantId) -> Option<TenantRef> {
        self.refs.get(id.index()).cloned()
    }

    /// Which tenant owns this cgroup path (relative to the cgroup2 mount, e.g.
    /// `"seam-demo/tenant-a/web"`; a leading '/' is ignored): the nearest ancestor (or the
    /// path itself) matching a pattern wins; at equal depth the first pattern in load order.
    pub(crate) fn tenant_for_cgroup(&self, path: &str) -> Option<TenantRef> {
        self.cgroups.lookup(path).and_then(|id| self.tenant_ref(id))
    }

    /// Whether any tenant is declared by Kubernetes namespace or pod labels (then container
    /// cgroups need their pod's identity before they can be attributed).
    pub(crate) fn has_pod_tenants(&self) -> bool {
        !self.pods.is_empty()
    }

    /// Which tenant owns a pod of `namespace` with `labels`: the first tenant in load order
    /// whose `namespaces` and `pod_labels` both match.
    pub(crate) fn tenant_for_pod(
        &self,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Option<TenantRef> {
        self.pods
            .lookup(namespace, labels)
            .and_then(|id| self.tenant_ref(id))
    }

    /// Which tenant owns this off-node endpoint: longest prefix wins, then a port-specific
    /// endpoint beats a port-less one (a narrower range beats a wider one), then load order.
    /// IPv4-mapped IPv6 addresses match IPv4 endpoints.
    pub(crate) fn tenant_for_endpoint(&self, ip: IpAddr, port: u16) -> Option<TenantRef> {
        self.endpoints
            .lookup(ip, port)
            .and_then(|id| self.tenant_ref(id))
    }

    /// The tenant owning `path` (absolute, normalized): the longest `paths` prefix that matches
    /// at a component boundary wins (`/srv/a` owns `/srv/a` and `/srv/a/x`, not `/srv/ab`).
    pub(crate) fn tenant_for_path(&self, path: &str) -> Option<TenantRef> {
        let mut best: Option<(usize, usize)> = None;
        for (index, tenant) in self.tenants.iter().enumerate() {
            for prefix in &tenant.paths {
                if path_under(path, prefix) && best.is_none_or(|(len, _)| prefix.len() > len) {
                    best = Some((prefix.len(), index));
                }
            }
        }
        best.and_then(|(_, index)| self.refs.get(index).cloned())
    }
}

/// The `*.toml` files directly in `dir` (sorted; hidden files and other files ignored).
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigErrors> {
    let dir_error = |source| {
        ConfigErrors(vec![ConfigError::DirUnreadable {
            path: dir.to_owned(),
            source,
        }])
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(dir_error)? {
        let path = entry.map_err(dir_error)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with('.') && path.extension().is_some_and(|e| e == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
