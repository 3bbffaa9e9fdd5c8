//! The tenant of a container cgroup. A cgroup whose path names a container is attributed by
//! its pod (namespace and labels, from the [`PodDirectory`]) when a tenant claims that pod,
//! else by the cgroup patterns. While the rules declare tenants by pod, a container whose pod
//! is not known yet gets **no** tenant rather than a possibly wrong one; if it is still unknown
//! two runtime listings later (the runtime is down, or does not know it), it is counted as
//! degraded attribution, logged once and reported as a `pod_identity` loss.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use crate::{
    attribution::pods::{PodDirectory, cgroup::container_id},
    model::{
        spans::{ContainerRef, TenantRef},
        vocab::PodSource,
    },
    policy::RuleSet,
};

/// Containers seen in cgroup paths and what became of their identity.
#[derive(Default)]
pub(crate) struct Containers {
    directory: Option<PodDirectory>,
    /// Containers of unknown identity: the directory's listing count when first seen.
    pending: HashMap<String, u64>,
    /// Containers given up on (counted once each).
    unresolved: HashSet<String>,
    /// Containers left unattributed for lack of their pod's identity, since start.
    pub unresolved_total: u64,
}

impl Containers {
    pub(crate) fn new(directory: Option<PodDirectory>) -> Self {
        Self {
            directory,
            ..Self::default()
        }
    }

    /// The runtime asked, for loss records (`none` without one).
    pub(crate) fn runtime(&self) -> PodSource {
        self.directory
            .as_ref()
            .map_or(PodSource::None, PodDirectory::runtime)
    }

    /// The tenant and container of the cgroup at `path`.
    pub(crate) fn attribute(
        &mut self,
        rules: &RuleSet,
        path: &str,
    ) -> (Option<TenantRef>, Option<Arc<ContainerRef>>) {
        let Some(id) = container_id(path) else {
            return (rules.tenant_for_cgroup(path), None);
        };
        if let Some(identity) = self.directory.as_ref().and_then(|d| d.lookup(id)) {
            self.pending.remove(id);
            let by_pod = identity
                .container
                .pod
                .as_ref()
                .and_then(|pod| rules.tenant_for_pod(&pod.namespace, &identity.pod_labels));
            let tenant = by_pod.or_else(|| rules.tenant_for_cgroup(path));
            return (tenant, Some(identity.container));
        }
        let bare = Arc::new(ContainerRef {
            id: id.to_owned(),
            name: None,
            pod: None,
        });
        if !rules.has_pod_tenants() {
            return (rules.tenant_for_cgroup(path), Some(bare));
        }
        self.unknown(id, path);
        (None, Some(bare))
    }

    /// A container of unknown identity while pod tenants exist.
    fn unknown(&mut self, id: &str, path: &str) {
        let attempts = self
            .directory
            .as_ref()
            .map_or(u64::MAX, PodDirectory::attempts);
        let first = *self.pending.entry(id.to_owned()).or_insert(attempts);
        if let Some(directory) = &self.directory {
            directory.nudge();
        }
        let given_up = self.directory.is_none() || attempts >= first.saturating_add(2);
        if given_up && self.unresolved.insert(id.to_owned()) {
            self.unresolved_total += 1;
            tracing::warn!(
                container = id,
                cgroup = path,
                runtime = %self.runtime(),
                "the container runtime does not know this container's pod: its cgroup is not \
                 attributed to any tenant (tenants are declared by namespace or pod labels); \
                 its activity is not observed until the runtime names its pod"
            );
        }
    }

    /// Forgets containers whose cgroups are gone (`seen`: the ids of this scan).
    pub(crate) fn retain(&mut self, seen: &HashSet<String>) {
        self.pending.retain(|id, _| seen.contains(id));
        self.unresolved.retain(|id| seen.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{attribution::pods::Identity, model::spans::PodRef};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    const RULES: &str = r#"
[[tenant]]
name = "acme"
namespaces = ["acme-*"]
pod_labels = { "tenant" = "acme" }

[[tenant]]
name = "globex"
namespaces = ["globex"]

[[tenant]]
name = "builders"
cgroups = ["docker"]

[[rule]]
id = "r"
severity = "high"
description = "d"
expr = "trace.has(net.*)"
"#;

    fn identity(id: &str, namespace: &str, labels: &[(&str, &str)]) -> (String, Identity) {
        let pod = PodRef {
            namespace: namespace.into(),
            name: "p".into(),
            uid: "u".into(),
        };
        let container = ContainerRef {
            id: id.into(),
            name: Some("c".into()),
            pod: Some(pod),
        };
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        (
            id.to_owned(),
            Identity {
                container: Arc::new(container),
                pod_labels: labels,
            },
        )
    }

    fn name(t: Option<TenantRef>) -> Option<String> {
        t.map(|t| t.name.to_string())
    }

    #[test]
    fn pods_are_attributed_by_namespace_and_labels_before_cgroup_patterns() {
        let rules = RuleSet::from_sources(&[("t.toml", RULES)]).unwrap();
        let directory = PodDirectory::fixed(
            [
                identity(A, "acme-prod", &[("tenant", "acme")]),
                identity(B, "globex", &[]),
                identity(C, "acme-prod", &[]),
            ]
            .into(),
            1,
        );
        let mut c = Containers::new(Some(directory));
        let (t, container) = c.attribute(&rules, &format!("docker/{A}"));
        assert_eq!(name(t).as_deref(), Some("acme"));
        let container = container.unwrap();
        assert_eq!(container.pod.as_ref().unwrap().namespace, "acme-prod");
        let (t, _) = c.attribute(&rules, &format!("docker/{B}/init.scope"));
        assert_eq!(name(t).as_deref(), Some("globex"));
        // In acme's namespaces without acme's label: no pod tenant, so the cgroup pattern.
        let (t, _) = c.attribute(&rules, &format!("docker/{C}"));
        assert_eq!(name(t).as_deref(), Some("builders"));
        // Not a container.
        let (t, container) = c.attribute(&rules, "docker");
        assert_eq!(name(t).as_deref(), Some("builders"));
        assert!(container.is_none());
        assert_eq!(c.unresolved_total, 0);
    }

    #[test]
    fn unknown_pods_get_no_tenant_and_are_counted_once_when_given_up() {
        let rules = RuleSet::from_sources(&[("t.toml", RULES)]).unwrap();
        let directory = PodDirectory::fixed(HashMap::new(), 3);
        let mut c = Containers::new(Some(directory));
        let path = format!("docker/{A}");
        let (t, container) = c.attribute(&rules, &path);
        assert_eq!(
            t, None,
            "never the cgroup pattern's tenant while the pod is unknown"
        );
        assert_eq!(container.unwrap().id, A, "the id still comes from the path");
        assert_eq!(c.unresolved_total, 0, "the next listing may still name it");
        // Two listings later (fixture: same directory, so simulate by a fresh pending entry).
        c.pending.insert(A.to_owned(), 1);
        let _ = c.attribute(&rules, &path);
        let _ = c.attribute(&rules, &path);
        assert_eq!(c.unresolved_total, 1, "counted once");
        c.retain(&HashSet::new());
        assert!(c.pending.is_empty() && c.unresolved.is_empty());
        // No runtime at all: given up at once.
        let mut none = Containers::new(None);
        let (t, _) = none.attribute(&rules, &path);
        assert_eq!(t, None);
        assert_eq!(none.unresolved_total, 1);
        assert_eq!(none.runtime(), PodSource::None);
    }

    #[test]
    fn without_pod_tenants_containers_keep_their_cgroup_tenant() {
        let rules = RuleSet::from_sources(&[(
            "t.toml",
            "[[tenant]]\nname = \"b\"\ncgroups = [\"docker\"]\n[[rule]]\nid = \"r\"\nseverity = \"high\"\ndescription = \"d\"\nexpr = \"trace.has(net.*)\"\n",
        )])
        .unwrap();
        let mut c = Containers::new(None);
        let (t, container) = c.attribute(&rules, &format!("docker/{A}"));
        assert_eq!(name(t).as_deref(), Some("b"));
        assert_eq!(container.unwrap().id, A);
        assert_eq!(c.unresolved_total, 0);
    }
}
