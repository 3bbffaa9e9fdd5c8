//! `seam run` flags for running in a container (the host's file systems) and for naming
//! containers' pods (the container runtime).
use std::{path::PathBuf, time::Duration};

use crate::attribution::pods::{RuntimeConfig, RuntimeKind};

/// Where the host's file systems are when Seam runs in a container, and which container
/// runtime names the pods of container cgroups.
#[derive(Debug, clap::Args)]
pub(super) struct HostArgs {
    /// The host's procfs (process start times, the boot id, OTLP senders' sockets); set it
    /// when Seam runs in a container with the host's /proc mounted elsewhere.
    #[arg(long, value_name = "DIR", env = "SEAM_PROCFS", default_value = "/proc")]
    pub procfs: PathBuf,
    /// The host's cgroup v2 root (default: the cgroup2 mount in /proc/self/mountinfo); set it
    /// when Seam runs in a container, which sees only its own cgroup namespace.
    #[arg(long, value_name = "DIR", env = "SEAM_CGROUP_ROOT")]
    pub cgroup_root: Option<PathBuf>,
    /// The host's BPF file system (e.g. /sys/fs/bpf): Seam pins its tenant filter map there as
    /// seam/tenant_cgroups (removed at exit) for `bpftool map dump pinned ...`.
    #[arg(long, value_name = "DIR", env = "SEAM_BPFFS")]
    pub bpffs: Option<PathBuf>,
    /// Which container runtime names the pods of container cgroups (needed by tenants declared
    /// with `namespaces` or `pod_labels`): auto (containerd or CRI-O, else Docker, whichever
    /// socket exists; with an endpoint, Docker when its name says docker, else CRI), cri,
    /// docker, none.
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        env = "SEAM_CONTAINER_RUNTIME",
        default_value = "auto"
    )]
    pub container_runtime: RuntimeKind,
    /// The container runtime's unix socket, e.g. /var/run/docker.sock (mount it into Seam's
    /// container).
    #[arg(long, value_name = "PATH", env = "SEAM_CONTAINER_RUNTIME_ENDPOINT")]
    pub container_runtime_endpoint: Option<PathBuf>,
    /// How often the runtime's container list is refreshed, in milliseconds (it is also
    /// refreshed at once when a cgroup of an unknown container appears).
    #[arg(long, value_name = "MS", env = "SEAM_CONTAINER_RUNTIME_REFRESH_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub container_runtime_refresh_ms: u64,
    /// Also watch this node's pods on the Kubernetes API (in-cluster config: the pod's service
    /// account must list and watch pods, deploy/kubernetes-api.yaml); the API's pod labels win
    /// over the runtime's. The node is --node (SEAM_NODE, from spec.nodeName).
    #[arg(long, env = "SEAM_KUBERNETES_API")]
    pub kubernetes_api: bool,
}

impl HostArgs {
    pub(super) fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            kind: self.container_runtime,
            endpoint: self.container_runtime_endpoint.clone(),
            refresh: Duration::from_millis(self.container_runtime_refresh_ms),
            kubernetes_api: self.kubernetes_api,
            ..RuntimeConfig::default()
        }
    }
}
