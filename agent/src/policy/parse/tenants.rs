//! `[[tenant]]` tables: names, and the cgroups, endpoints, paths and pods each tenant owns
//! (each claimed by one tenant only).

use std::collections::{BTreeMap, hash_map::Entry};

use toml::Spanned;

use super::{Builder, IDENT_HINT};
use crate::{
    model::{spans::TenantName, vocab::Tier},
    policy::{
        matcher::compile_glob,
        model::{Endpoint, Tenant, TenantId, valid_ident},
        pods::{compile_namespace, plausible_namespace},
        raw::RawTenant,
    },
};

impl Builder<'_> {
    /// A `[[tenant]]` table: its name, then what it owns.
    pub(super) fn tenant(&mut self, file: usize, raw: &RawTenant) {
        let name = raw.name.get_ref();
        let name_at = Self::at(file, &raw.name);
        if !valid_ident(name) {
            self.invalid(
                &name_at,
                format!("invalid tenant name {name:?}"),
                IDENT_HINT,
            );
        }
        let id = TenantId(u32::try_from(self.tenants.len()).unwrap_or(u32::MAX));
        if let Some((_, prev)) = self.tenant_at.get(name) {
            let hint = format!(
                "already defined at {}; tenant names must be unique",
                self.describe(prev)
            );
            self.invalid(&name_at, format!("duplicate tenant {name:?}"), hint);
            return;
        }
        self.tenant_at.insert(name.clone(), (id, name_at.clone()));
        let mut cgroups = Vec::with_capacity(raw.cgroups.len());
        for pattern in &raw.cgroups {
            if let Some(p) = self.cgroup(file, pattern, id) {
                cgroups.push(p);
            }
        }
        let (endpoints, endpoint_tiers) = self.tenant_endpoints(file, raw, id);
        let (paths, path_tiers) = self.tenant_paths(file, raw);
        let (namespaces, pod_labels) = self.pod_selector(file, raw, id);
        if raw.cgroups.is_empty()
            && raw.endpoints.is_empty()
            && raw.paths.is_empty()
            && raw.namespaces.is_empty()
            && raw
                .pod_labels
                .as_ref()
                .is_none_or(|l| l.get_ref().is_empty())
        {
            self.invalid(
                &name_at,
                format!("tenant {name:?} owns no cgroup, pod, endpoint or path"),
                "add at least one pattern to `cgroups` or `namespaces`, a label to \
                 `pod_labels`, one address to `endpoints` or one prefix to `paths`",
            );
        }
        self.tenants.push(Tenant {
            name: TenantName::new(name),
            cgroups,
            endpoints,
            paths,
            path_tiers,
            endpoint_tiers,
            shared: raw.shared,
            namespaces,
            pod_labels,
        });
    }

    /// `endpoints`: checked and claimed for tenant `id`, with the tier of each that names one.
    fn tenant_endpoints(
        &mut self,
        file: usize,
        raw: &RawTenant,
        id: TenantId,
    ) -> (Vec<Endpoint>, Vec<(Endpoint, Tier)>) {
        let mut endpoints = Vec::with_capacity(raw.endpoints.len());
        let mut endpoint_tiers = Vec::new();
        for entry in &raw.endpoints {
            let text = Spanned::new(entry.span(), entry.get_ref().value.clone());
            if let Some(e) = self.endpoint(file, &text, id) {
                endpoints.push(e);
                if let Some(tier) = entry.get_ref().tier {
                    endpoint_tiers.push((e, tier));
                }
            }
        }
        (endpoints, endpoint_tiers)
    }

    /// `paths`: absolute, normalized prefixes, with the tier of each that names one.
    fn tenant_paths(&mut self, file: usize, raw: &RawTenant) -> (Vec<String>, Vec<(String, Tier)>) {
        let mut paths = Vec::with_capacity(raw.paths.len());
        let mut path_tiers = Vec::new();
        for text in &raw.paths {
            let value = &text.get_ref().value;
            if value.starts_with('/') && crate::model::text::normalize_path(value) == *value {
                paths.push(value.clone());
                if let Some(tier) = text.get_ref().tier {
                    path_tiers.push((value.clone(), tier));
                }
            } else {
                let at = Self::at(file, text);
                let hint = "expected an absolute, normalized path prefix such as \"/srv/acme\" \
                            (no `..`, `.` or trailing `/`)";
                self.invalid(&at, format!("invalid path prefix {value:?}"), hint);
            }
        }
        (paths, path_tiers)
    }

    /// `namespaces` and `pod_labels`: checked, and added to the pod matcher.
    fn pod_selector(
        &mut self,
        file: usize,
        raw: &RawTenant,
        id: TenantId,
    ) -> (Vec<String>, BTreeMap<String, String>) {
        let mut names = Vec::with_capacity(raw.namespaces.len());
        let mut globs = Vec::with_capacity(raw.namespaces.len());
        for pattern in &raw.namespaces {
            let text = pattern.get_ref();
            let compiled = if plausible_namespace(text) {
                compile_namespace(text).map_err(|e| e.kind().to_string())
            } else {
                Err("not a namespace name".to_owned())
            };
            match compiled {
                Ok(glob) => {
                    names.push(text.clone());
                    globs.push(glob);
                }
                Err(why) => {
                    let hint = "expected a Kubernetes namespace or a glob over namespaces: \
                                lowercase letters, digits and '-', with `*`, `?`, `[a-z]` or \
                                `{a,b}`, e.g. \"acme-*\"";
                    let msg = format!("invalid namespace pattern {text:?}: {why}");
                    self.invalid(&Self::at(file, pattern), msg, hint);
                }
            }
        }
        let mut labels = BTreeMap::new();
        if let Some(table) = &raw.pod_labels {
            for (key, value) in table.get_ref() {
                if key.is_empty() || key.len() > 317 || key.contains(char::is_whitespace) {
                    let hint = "expected a Kubernetes label key such as \"tenant\" or \
                                \"example.com/team\" and its exact value";
                    let msg = format!("invalid pod label key {key:?}");
                    self.invalid(&Self::at(file, table), msg, hint);
                    continue;
                }
                labels.insert(key.clone(), value.clone());
            }
        }
        if let Err(e) = self.pods.add(id, globs, labels.clone()) {
            let msg = format!("cannot compile the namespace patterns: {e}");
            self.invalid(
                &Self::at(file, &raw.name),
                msg,
                "use simpler namespace patterns",
            );
        }
        (names, labels)
    }

    fn cgroup(&mut self, file: usize, pattern: &Spanned<String>, id: TenantId) -> Option<String> {
        let at = Self::at(file, pattern);
        let text = pattern.get_ref();
        if text.is_empty() {
            let hint = "expected a path relative to the cgroup2 mount, e.g. \"tenants.slice/acme\"";
            self.invalid(&at, "empty cgroup pattern".to_owned(), hint);
            return None;
        }
        if text.starts_with('/') {
            let hint = format!(
                "patterns are relative to the cgroup2 mount: write {:?}",
                text.trim_start_matches('/')
            );
            let msg = format!("cgroup pattern {text:?} starts with '/'");
            self.invalid(&at, msg, hint);
            return None;
        }
        if text.ends_with('/') {
            let hint = format!("write {:?}", text.trim_end_matches('/'));
            let msg = format!("cgroup pattern {text:?} ends with '/'");
            self.invalid(&at, msg, hint);
            return None;
        }
        let glob = match compile_glob(text) {
            Ok(glob) => glob,
            Err(e) => {
                let hint = "expected a glob: `*` matches within one path component, \
                            `**` across components, `?`, `[abc]`, `{a,b}`";
                self.invalid(
                    &at,
                    format!("invalid cgroup pattern {text:?}: {}", e.kind()),
                    hint,
                );
                return None;
            }
        };
        match self.pattern_at.entry(text.clone()) {
            Entry::Occupied(prev) if prev.get().0 == id => return None,
            Entry::Occupied(prev) => {
                let (owner, prev_at) = prev.get().clone();
                let hint = format!(
                    "also claimed by tenant {:?} at {}; a cgroup belongs to one tenant, \
                     remove one of the two patterns",
                    self.tenants
                        .get(owner.index())
                        .map_or("", |t| t.name.as_str()),
                    self.describe(&prev_at)
                );
                let msg = format!("cgroup pattern {text:?} is claimed by two tenants");
                self.invalid(&at, msg, hint);
                return None;
            }
            Entry::Vacant(slot) => {
                slot.insert((id, at));
            }
        }
        self.globs.push((glob, id));
        Some(text.clone())
    }

    fn endpoint(&mut self, file: usize, text: &Spanned<String>, id: TenantId) -> Option<Endpoint> {
        let at = Self::at(file, text);
        let endpoint = match text.get_ref().parse::<Endpoint>() {
            Ok(e) => e,
            Err(e) => {
                let msg = format!("invalid endpoint {:?}: {e}", text.get_ref());
                self.invalid(&at, msg, e.hint());
                return None;
            }
        };
        match self.endpoint_at.entry(endpoint) {
            Entry::Occupied(prev) if prev.get().0 == id => return None,
            Entry::Occupied(prev) => {
                let (owner, prev_at) = prev.get().clone();
                let hint = format!(
                    "also owned by tenant {:?} at {}; an endpoint belongs to one tenant",
                    self.tenants
                        .get(owner.index())
                        .map_or("", |t| t.name.as_str()),
                    self.describe(&prev_at)
                );
                let msg = format!("endpoint {endpoint} is claimed by two tenants");
                self.invalid(&at, msg, hint);
                return None;
            }
            Entry::Vacant(slot) => {
                slot.insert((id, at));
            }
        }
        self.endpoints.push((endpoint, id));
        Some(endpoint)
    }
}
