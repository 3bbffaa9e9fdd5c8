//! Tenant and rule configuration: loading, validation and the compiled lookups the
//! detector uses.
//!
//! A rules directory holds `*.toml` files with `[[tenant]]`, `[[rule]]` and `[[allow]]`
//! tables; the format is documented in `docs/rules.md`. Loading reports every error in
//! every file at once, each with its file, line, column and source line.

mod error;
mod matcher;
mod model;
mod parse;
mod raw;
#[cfg(test)]
mod tests;

use std::{
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
};

pub use self::{
    error::{ConfigError, ConfigErrors, Location},
    model::{
        Allow, Endpoint, PortRange, Protocol, Rule, RuleKind, Severity, Tenant, TenantId,
        TenantMatch, ValueError,
    },
};
use self::{
    matcher::{CgroupMatcher, EndpointMatcher},
    parse::Source,
};

/// The demo's default rules (`rules/demo/`), embedded in the binary, as `(name, text)`.
pub const DEMO_SOURCES: &[(&str, &str)] = &[
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
pub struct RuleSet {
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
}

impl RuleSet {
    /// Loads every `*.toml` file directly in `dir` (sorted by name; other files, hidden files
    /// and subdirectories are ignored) and validates them together.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, ConfigErrors> {
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
        let mut sources = Vec::with_capacity(paths.len());
        let mut errors = Vec::new();
        for path in paths {
            // `metadata` follows symlinks (Kubernetes ConfigMap volumes are symlinks).
            match fs::metadata(&path).and_then(|m| {
                if m.is_dir() {
                    Ok(None)
                } else {
                    fs::read_to_string(&path).map(Some)
                }
            }) {
                Ok(Some(text)) => sources.push(Source { path, text }),
                Ok(None) => tracing::debug!(path = %path.display(), "skipping directory"),
                Err(source) => errors.push(ConfigError::FileUnreadable { path, source }),
            }
        }
        if sources.is_empty() && errors.is_empty() {
            return Err(ConfigErrors(vec![ConfigError::Invalid {
                path: dir.to_owned(),
                location: None,
                message: "no rules files (*.toml) in the directory".to_owned(),
                hint: "add at least one .toml file with [[tenant]] and [[rule]] tables".to_owned(),
            }]));
        }
        tracing::debug!(dir = %dir.display(), files = sources.len(), "loading rules");
        parse::build(dir, sources, errors)
    }

    /// Same validation for in-memory files `(name, text)`, in the given order — used for the
    /// demo's embedded rules.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<RuleSet, ConfigErrors> {
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
    pub fn demo() -> Result<RuleSet, ConfigErrors> {
        RuleSet::from_sources(DEMO_SOURCES)
    }

    /// The tenant with this id.
    ///
    /// # Panics
    /// If `id` does not come from this rule set.
    pub fn tenant(&self, id: TenantId) -> &Tenant {
        &self.tenants[id.index()]
    }

    /// The tenant with this name.
    pub fn tenant_by_name(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Which tenant owns this cgroup path (relative to the cgroup2 mount, e.g.
    /// `"seam-demo/tenant-a/web"`; a leading '/' is ignored): the nearest ancestor (or the
    /// path itself) matching a pattern wins; at equal depth the first pattern in load order.
    pub fn tenant_for_cgroup(&self, path: &str) -> Option<TenantId> {
        self.cgroups.lookup(path)
    }

    /// Which tenant owns this off-node endpoint: longest prefix wins, then a port-specific
    /// endpoint beats a port-less one (a narrower range beats a wider one), then load order.
    /// IPv4-mapped IPv6 addresses match IPv4 endpoints.
    pub fn tenant_for_endpoint(&self, ip: IpAddr, port: u16) -> Option<TenantId> {
        self.endpoints.lookup(ip, port)
    }

    /// The first allow entry covering this (rule, from, to, port, protocol), if any.
    pub fn allowed(
        &self,
        rule_id: &str,
        from: TenantId,
        to: TenantId,
        port: u16,
        protocol: Protocol,
    ) -> Option<&Allow> {
        self.allows
            .iter()
            .find(|a| a.covers(rule_id, from, to, port, protocol))
    }

    /// Rules of a kind, in load order.
    pub fn rules_of(&self, kind: RuleKind) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.kind == kind)
    }
}
