//! The Container Runtime Interface (containerd, CRI-O) over its unix socket: the kubelet's own
//! view of the node. `runtime.v1.RuntimeService/ListPodSandbox` gives each pod's namespace,
//! name, uid and labels; `ListContainers` each container's id, name and pod labels. Only the
//! fields Seam reads are declared (protobuf skips the others).
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tonic::{codegen::http::uri::PathAndQuery, transport::Endpoint};

use super::{
    RuntimeError,
    labels::{CONTAINER_NAME, Listed, POD_NAME, POD_NAMESPACE, POD_UID},
};

/// `ListContainersRequest` (no filter: every container).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListContainersRequest {}

/// `ListContainersResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
}

/// `Container`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(map = "string, string", tag = "8")]
    pub labels: HashMap<String, String>,
}

/// `ContainerMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `ListPodSandboxRequest` (no filter).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListPodSandboxRequest {}

/// `ListPodSandboxResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// `PodSandbox`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
}

/// `PodSandboxMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
}

/// The gRPC method paths.
pub(crate) const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";
pub(crate) const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

/// A CRI endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Cri {
    socket: PathBuf,
    timeout: Duration,
}

impl Cri {
    pub(crate) fn new(socket: &Path, timeout: Duration) -> Self {
        Self {
            socket: socket.to_owned(),
            timeout,
        }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    fn unreachable(&self, source: impl std::error::Error + Send + Sync + 'static) -> RuntimeError {
        RuntimeError::Unreachable {
            endpoint: self.socket.clone(),
            source: Box::new(source),
        }
    }

    /// Every pod sandbox and container, as [`Listed`] items.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let socket = self.socket.clone();
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    tokio::net::UnixStream::connect(socket)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(|e| self.unreachable(e))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| self.unreachable(e))?;
        let sandboxes: ListPodSandboxResponse = grpc
            .unary(
                tonic::Request::new(ListPodSandboxRequest {}),
                PathAndQuery::from_static(LIST_POD_SANDBOX),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map_err(|status| self.status(status))?
            .into_inner();
        grpc.ready().await.map_err(|e| self.unreachable(e))?;
        let containers: ListContainersResponse = grpc
            .unary(
                tonic::Request::new(ListContainersRequest {}),
                PathAndQuery::from_static(LIST_CONTAINERS),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map_err(|status| self.status(status))?
            .into_inner();
        Ok(listed(sandboxes, containers))
    }

    fn status(&self, status: tonic::Status) -> RuntimeError {
        if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
            return self.unreachable(status);
        }
        RuntimeError::Status {
            endpoint: self.socket.clone(),
            status: status.code() as u16,
            body: status.message().chars().take(200).collect(),
        }
    }
}

/// Sandboxes (the pods' labels) and containers as [`Listed`] items. A container's pod comes
/// from its labels, or else from its sandbox's metadata.
fn listed(sandboxes: ListPodSandboxResponse, containers: ListContainersResponse) -> Vec<Listed> {
    let mut out = Vec::with_capacity(sandboxes.items.len() + containers.containers.len());
    let mut pods: HashMap<String, PodSandboxMetadata> = HashMap::new();
    for sandbox in sandboxes.items {
        let mut labels: std::collections::BTreeMap<String, String> =
            sandbox.labels.into_iter().collect();
        if let Some(meta) = &sandbox.metadata {
            labels.insert(POD_UID.to_owned(), meta.uid.clone());
            pods.insert(sandbox.id.clone(), meta.clone());
        }
        out.push(Listed {
            id: sandbox.id,
            name: sandbox.metadata.map(|m| m.name),
            labels,
            sandbox: true,
        });
    }
    for container in containers.containers {
        let mut labels: std::collections::BTreeMap<String, String> =
            container.labels.into_iter().collect();
        if let Some(pod) = pods.get(&container.pod_sandbox_id) {
            labels
                .entry(POD_NAMESPACE.to_owned())
                .or_insert_with(|| pod.namespace.clone());
            labels
                .entry(POD_NAME.to_owned())
                .or_insert_with(|| pod.name.clone());
            labels
                .entry(POD_UID.to_owned())
                .or_insert_with(|| pod.uid.clone());
        }
        let name = container.metadata.map(|m| m.name);
        if let Some(name) = &name {
            labels
                .entry(CONTAINER_NAME.to_owned())
                .or_insert_with(|| name.clone());
        }
        out.push(Listed {
            id: container.id,
            name,
            labels,
            sandbox: false,
        });
    }
    out
}

#[cfg(test)]
mod tests;
