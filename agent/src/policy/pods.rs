//! Kubernetes tenancy: which tenant a pod belongs to, by its namespace (globs) and its labels.
//! A tenant with `namespaces` and `pod_labels` claims the pods that match both; with one of
//! them, the pods that match it. The first tenant in load order that claims a pod wins.
use std::collections::BTreeMap;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::model::TenantId;

/// Compiles a namespace pattern (`acme-*`, `team-{a,b}`).
pub(super) fn compile_namespace(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

/// Whether `text` is a Kubernetes namespace name or a glob that may match one: lowercase
/// letters, digits, `-` and glob characters.
pub(super) fn plausible_namespace(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-*?[]{},!".contains(&b))
}

/// One tenant's pod selector.
#[derive(Debug, Clone)]
struct Selector {
    tenant: TenantId,
    /// `None`: any namespace.
    namespaces: Option<GlobSet>,
    /// Every label must be present with this value.
    labels: BTreeMap<String, String>,
}

impl Selector {
    fn claims(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|set| set.is_match(namespace))
            && self
                .labels
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// Pod -> owning tenant, in load order.
#[derive(Debug, Clone, Default)]
pub(super) struct PodMatcher {
    selectors: Vec<Selector>,
}

impl PodMatcher {
    /// Adds tenant `tenant`'s selector (call in load order). A tenant with neither namespaces
    /// nor labels claims no pod.
    pub(super) fn add(
        &mut self,
        tenant: TenantId,
        namespaces: Vec<Glob>,
        labels: BTreeMap<String, String>,
    ) -> Result<(), globset::Error> {
        if namespaces.is_empty() && labels.is_empty() {
            return Ok(());
        }
        let namespaces = if namespaces.is_empty() {
            None
        } else {
            let mut builder = GlobSetBuilder::new();
            for glob in namespaces {
                builder.add(glob);
            }
            Some(builder.build()?)
        };
        self.selectors.push(Selector {
            tenant,
            namespaces,
            labels,
        });
        Ok(())
    }

    /// Whether any tenant is declared by namespace or pod labels.
    pub(super) fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// The first tenant (load order) claiming a pod of `namespace` with `labels`.
    pub(super) fn lookup(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<TenantId> {
        self.selectors
            .iter()
            .find(|s| s.claims(namespace, labels))
            .map(|s| s.tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn namespaces_and_labels_must_both_match() {
        let mut m = PodMatcher::default();
        let acme = vec![compile_namespace("acme-*").unwrap()];
        m.add(TenantId(0), acme, labels(&[("tenant", "acme")]))
            .unwrap();
        m.add(
            TenantId(1),
            vec![compile_namespace("globex").unwrap()],
            BTreeMap::new(),
        )
        .unwrap();
        m.add(TenantId(2), Vec::new(), labels(&[("team", "ops")]))
            .unwrap();
        m.add(TenantId(3), Vec::new(), BTreeMap::new()).unwrap();
        let acme = labels(&[("tenant", "acme"), ("app", "web")]);
        assert_eq!(m.lookup("acme-prod", &acme), Some(TenantId(0)));
        assert_eq!(m.lookup("acme-prod", &labels(&[])), None);
        assert_eq!(m.lookup("acme", &acme), None, "the glob needs the dash");
        assert_eq!(m.lookup("globex", &acme), Some(TenantId(1)));
        assert_eq!(
            m.lookup("anything", &labels(&[("team", "ops")])),
            Some(TenantId(2))
        );
        assert_eq!(m.lookup("other", &labels(&[("team", "dev")])), None);
        assert!(!m.is_empty());
        assert!(PodMatcher::default().is_empty());
    }

    #[test]
    fn namespace_patterns() {
        assert!(plausible_namespace("acme-*"));
        assert!(plausible_namespace("team-{a,b}"));
        assert!(!plausible_namespace("Acme"));
        assert!(!plausible_namespace(""));
        assert!(!plausible_namespace("a/b"));
    }
}
