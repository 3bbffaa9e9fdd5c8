//! From what a container runtime lists to pod identities. The kubelet labels every container
//! it starts with `io.kubernetes.pod.namespace`, `io.kubernetes.pod.name`,
//! `io.kubernetes.pod.uid` and `io.kubernetes.container.name`; the pod's own labels are on the
//! pod sandbox (CRI) or its sandbox container (cri-dockerd), so they are gathered per pod uid.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use crate::model::spans::{ContainerRef, PodRef};

/// `io.kubernetes.pod.namespace`.
pub(crate) const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// `io.kubernetes.pod.name`.
pub(crate) const POD_NAME: &str = "io.kubernetes.pod.name";
/// `io.kubernetes.pod.uid`.
pub(crate) const POD_UID: &str = "io.kubernetes.pod.uid";
/// `io.kubernetes.container.name`.
pub(crate) const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A container (or pod sandbox) as a runtime lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    pub id: String,
    /// The runtime's own name for it (`/web-1` in Docker), without a leading `/`.
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// A CRI pod sandbox or a cri-dockerd sandbox container: its labels are the pod's.
    pub sandbox: bool,
}

/// What Seam knows about one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub container: Arc<ContainerRef>,
    /// The pod's labels (empty when the container is not in a pod).
    pub pod_labels: BTreeMap<String, String>,
}

/// Whether a label is the kubelet's or the runtime's bookkeeping rather than a pod label.
fn bookkeeping(key: &str) -> bool {
    key.starts_with("io.kubernetes.")
        || key.starts_with("annotation.")
        || key.starts_with("io.cri-containerd.")
        || key.starts_with("com.docker.")
}

fn pod_of(labels: &BTreeMap<String, String>) -> Option<PodRef> {
    Some(PodRef {
        namespace: labels.get(POD_NAMESPACE)?.clone(),
        name: labels.get(POD_NAME)?.clone(),
        uid: labels.get(POD_UID).cloned().unwrap_or_default(),
    })
}

/// Every listed container by id, with its pod and the pod's labels.
pub(crate) fn identities(listed: Vec<Listed>) -> HashMap<String, Identity> {
    // Pod labels per pod uid: a sandbox's labels, and any non-bookkeeping container label.
    let mut pod_labels: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for item in &listed {
        if let Some(uid) = item.labels.get(POD_UID) {
            let entry = pod_labels.entry(uid.clone()).or_default();
            for (k, v) in item.labels.iter().filter(|(k, _)| !bookkeeping(k)) {
                entry.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    listed
        .into_iter()
        .filter(|item| !item.sandbox)
        .map(|item| {
            let pod = pod_of(&item.labels);
            let labels = match &pod {
                Some(p) => pod_labels.get(&p.uid).cloned().unwrap_or_default(),
                None => BTreeMap::new(),
            };
            let name = item.labels.get(CONTAINER_NAME).cloned().or(item.name);
            let container = ContainerRef {
                id: item.id.clone(),
                name,
                pod,
            };
            (
                item.id,
                Identity {
                    container: Arc::new(container),
                    pod_labels: labels,
                },
            )
        })
        .collect()
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
    fn kubelet_labels_give_the_pod_and_sandbox_labels_the_pod_labels() {
        let sandbox = Listed {
            id: "s".into(),
            name: Some("k8s_POD_web-0".into()),
            labels: labels(&[(POD_UID, "u1"), ("tenant", "acme"), (POD_NAME, "web-0")]),
            sandbox: true,
        };
        let web = Listed {
            id: "c".into(),
            name: Some("k8s_web_web-0".into()),
            labels: labels(&[
                (POD_NAMESPACE, "acme-prod"),
                (POD_NAME, "web-0"),
                (POD_UID, "u1"),
                (CONTAINER_NAME, "web"),
                ("annotation.io.kubernetes.container.hash", "1"),
            ]),
            sandbox: false,
        };
        let plain = Listed {
            id: "p".into(),
            name: Some("builder".into()),
            labels: labels(&[("tenant", "x")]),
            sandbox: false,
        };
        let ids = identities(vec![sandbox, web, plain]);
        assert_eq!(ids.len(), 2, "the sandbox is no container of its own");
        let web = &ids["c"];
        let pod = web.container.pod.as_ref().unwrap();
        assert_eq!(pod.namespace, "acme-prod");
        assert_eq!(pod.name, "web-0");
        assert_eq!(pod.uid, "u1");
        assert_eq!(web.container.name.as_deref(), Some("web"));
        assert_eq!(web.pod_labels, labels(&[("tenant", "acme")]));
        let plain = &ids["p"];
        assert_eq!(plain.container.pod, None);
        assert_eq!(plain.container.name.as_deref(), Some("builder"));
        assert!(plain.pod_labels.is_empty(), "no pod, no pod labels");
    }
}
