//! Pod identity from the Kubernetes API (`--kubernetes-api`): the in-cluster config (the pod's
//! service account), a watch on **this node's pods only** (`spec.nodeName=<node>`), and each
//! pod's container statuses (`containerID: containerd://<id>`) mapped to the pod's namespace,
//! name, uid and labels. The API's labels are the pods' own, so they win over what the runtime
//! lists; the runtime still names containers the API has not reported yet.
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;

use super::{Identity, PodDirectory, PodError};
use crate::model::{
    handoff::Notifier,
    spans::{ContainerRef, PodRef},
};

/// How long start-up waits for the first complete list of this node's pods.
const FIRST_SYNC: Duration = Duration::from_secs(15);

/// A client from the in-cluster config (service account token and CA, `KUBERNETES_SERVICE_*`).
pub(crate) fn in_cluster() -> Result<Client, PodError> {
    let config = kube::Config::incluster().map_err(|source| PodError::ApiConfig {
        source: Box::new(source),
    })?;
    Client::try_from(config).map_err(|source| PodError::ApiConfig {
        source: Box::new(source),
    })
}

/// The containers of `pod`, by container id.
pub(crate) fn identities(pod: &Pod) -> Vec<(String, Identity)> {
    let meta = &pod.metadata;
    let (Some(namespace), Some(name)) = (&meta.namespace, &meta.name) else {
        return Vec::new();
    };
    let labels: BTreeMap<String, String> = meta.labels.clone().unwrap_or_default();
    let pod_ref = PodRef {
        namespace: namespace.clone(),
        name: name.clone(),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter_map(|cs| {
        // `containerd://<id>`, `cri-o://<id>`, `docker://<id>`.
        let id = cs.container_id.as_deref()?.split_once("://")?.1.to_owned();
        let container = ContainerRef {
            id: id.clone(),
            name: Some(cs.name.clone()),
            pod: Some(pod_ref.clone()),
        };
        Some((
            id,
            Identity {
                container: Arc::new(container),
                pod_labels: labels.clone(),
            },
        ))
    })
    .collect()
}

/// Pods by uid while the watch runs.
#[derive(Default)]
struct Pods {
    current: HashMap<String, Vec<(String, Identity)>>,
    /// A re-list in progress (`Init` .. `InitDone`).
    relisting: Option<HashMap<String, Vec<(String, Identity)>>>,
}

impl Pods {
    fn uid(pod: &Pod) -> String {
        pod.metadata.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or("")
            )
        })
    }

    /// Applies one watch event; true when the set of pods is complete and may have changed.
    fn on(&mut self, event: watcher::Event<Pod>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply(pod) => {
                if let Some(list) = &mut self.relisting {
                    list.insert(Self::uid(&pod), identities(&pod));
                }
                false
            }
            watcher::Event::InitDone => {
                if let Some(list) = self.relisting.take() {
                    self.current = list;
                }
                true
            }
            watcher::Event::Apply(pod) => {
                self.current.insert(Self::uid(&pod), identities(&pod));
                true
            }
            watcher::Event::Delete(pod) => {
                self.current.remove(&Self::uid(&pod));
                true
            }
        }
    }

    fn by_container(&self) -> HashMap<String, Identity> {
        self.current.values().flatten().cloned().collect()
    }
}

/// Watches this node's pods and keeps `directory`'s API view current; returns once the first
/// complete list is in (or an error if it does not come within [`FIRST_SYNC`]).
pub(crate) async fn start(
    client: Client,
    node: &str,
    directory: PodDirectory,
    changed: Notifier,
    errors: Counter,
) -> Result<(), PodError> {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let (synced_tx, synced) = oneshot::channel::<()>();
    let node = node.to_owned();
    tokio::spawn(async move {
        let mut synced_tx = Some(synced_tx);
        let mut state = Pods::default();
        let mut healthy = true;
        let mut stream = watcher(pods, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    if !healthy {
                        tracing::info!(node, "Kubernetes API watch of this node's pods resumed");
                        healthy = true;
                    }
                    if state.on(event) {
                        if let Some(done) = synced_tx.take() {
                            let _ = done.send(());
                        }
                        if directory.set_api(state.by_container()) && !changed.notify() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    errors.inc();
                    if healthy {
                        tracing::warn!(
                            node,
                            %error,
                            "Kubernetes API watch failed; retrying with backoff. Pods started \
                             meanwhile are named by the container runtime only (counted in \
                             seam_kubernetes_api_errors_total)"
                        );
                        healthy = false;
                    }
                }
            }
        }
    });
    match tokio::time::timeout(FIRST_SYNC, synced).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(PodError::ApiSync {
            seconds: FIRST_SYNC.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests;
