//! Pod identity for container cgroups. A container's cgroup path names its id
//! ([`cgroup::container_id`]) but not its pod or namespace; those come from the container
//! runtime on the node, which lists every container with the kubelet's labels. The
//! [`PodDirectory`] keeps that list (refreshed every few seconds, and at once when a cgroup of
//! an unknown container appears) for the cgroup registry to attribute container cgroups to
//! tenants declared by namespace and pod labels (docs/rules.md).
pub(crate) mod api;
pub(crate) mod cgroup;
pub(crate) mod cri;
pub(crate) mod docker;
pub(crate) mod labels;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::sync::Notify;

pub(crate) use self::labels::Identity;
use crate::{
    metrics::node::RuntimeMetrics,
    model::{handoff::Notifier, vocab::PodSource},
};

/// CRI sockets tried, in order, when no `--container-runtime-endpoint` is given (the
/// kubelet's runtime: containerd, CRI-O).
const CRI_SOCKETS: &[&str] = &["/run/containerd/containerd.sock", "/run/crio/crio.sock"];
/// Docker sockets tried after them.
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// Shortest pause between two listings (a burst of new cgroups triggers one).
const MIN_GAP: Duration = Duration::from_millis(200);

/// Logged when the runtime stops answering: what is not attributed until it answers again.
const LISTING_FAILED: &str = "cannot list containers; containers started from now on stay \
                              unattributed to tenants declared by namespace or pod labels \
                              (counted in seam_lost_total{source=\"pod_identity\"}) until the \
                              runtime answers";

/// Why one listing of the runtime's containers failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RuntimeError {
    /// The socket could not be reached or the connection failed.
    #[error(
        "container runtime at {endpoint} unreachable: {source}; check the socket is mounted and \
         the runtime is running"
    )]
    Unreachable {
        endpoint: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer in time.
    #[error("container runtime at {endpoint} did not answer in time; check the runtime is healthy")]
    Timeout { endpoint: PathBuf },
    /// The runtime answered with an error status.
    #[error(
        "container runtime at {endpoint} answered HTTP {status}: {body}; check the runtime's \
         logs and API version"
    )]
    Status {
        endpoint: PathBuf,
        status: u16,
        body: String,
    },
    /// The answer was not the expected container list.
    #[error("container runtime at {endpoint} sent an unreadable container list: {source}")]
    Decode {
        endpoint: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why pod identity could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PodError {
    /// Tenants are declared by namespace or pod labels but there is no runtime to ask.
    #[error(
        "the rules declare tenants by Kubernetes namespace or pod labels, but no container \
         runtime socket was found (tried {tried}); mount the runtime's socket into Seam and pass \
         --container-runtime-endpoint, or declare those tenants by cgroup"
    )]
    NoRuntime { tried: String },
    /// The runtime was named but its first listing failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// `--kubernetes-api` outside a pod, or without its service account.
    #[error(
        "--kubernetes-api needs the in-cluster config (KUBERNETES_SERVICE_HOST and the service \
         account token): {source}; run Seam in a pod with a service account allowed to watch \
         pods, or drop --kubernetes-api"
    )]
    ApiConfig {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The first list of this node's pods did not arrive.
    #[error(
        "the Kubernetes API did not list this node's pods within {seconds} s; check the API \
         server is reachable and the service account may list and watch pods (see \
         deploy/kubernetes-api.yaml)"
    )]
    ApiSync { seconds: u64 },
}

/// Which runtime to ask (`--container-runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeKind {
    /// The endpoint's kind from its name (`docker` in it: Docker, else CRI); without an
    /// endpoint, the first CRI socket found, else Docker's.
    Auto,
    /// The Container Runtime Interface (containerd, CRI-O): the kubelet's view.
    Cri,
    /// Docker's Engine API.
    Docker,
    /// Do not ask any runtime (container ids still come from cgroup paths).
    None,
}

/// How to find the runtime.
#[derive(Clone, Debug)]
pub(crate) struct RuntimeConfig {
    pub kind: RuntimeKind,
    /// The runtime's unix socket (`--container-runtime-endpoint`).
    pub endpoint: Option<PathBuf>,
    /// How often the container list is refreshed.
    pub refresh: Duration,
    /// Also watch this node's pods on the Kubernetes API (in-cluster config).
    pub kubernetes_api: bool,
    /// Timeout of one listing.
    pub timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            kind: RuntimeKind::Auto,
            endpoint: None,
            refresh: Duration::from_secs(2),
            kubernetes_api: false,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What the directory holds.
#[derive(Default)]
struct State {
    containers: HashMap<String, Identity>,
    /// What the Kubernetes API says (wins over the runtime: it has the pods' own labels).
    from_api: HashMap<String, Identity>,
    /// Listings tried (failed ones included).
    attempts: u64,
    healthy: bool,
}

struct Shared {
    state: RwLock<State>,
    wake: Notify,
    runtime: PodSource,
}

/// The containers the runtime knows, shared between the refresh task and the cgroup registry.
#[derive(Clone)]
pub(crate) struct PodDirectory {
    shared: Arc<Shared>,
}

impl PodDirectory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// What the Kubernetes API, else the runtime, said about container `id` last.
    pub(crate) fn lookup(&self, id: &str) -> Option<Identity> {
        let state = self.read();
        state
            .from_api
            .get(id)
            .or_else(|| state.containers.get(id))
            .cloned()
    }

    /// Takes the API's view of this node's containers; true when it changed.
    pub(crate) fn set_api(&self, containers: HashMap<String, Identity>) -> bool {
        let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
        state.attempts += 1;
        let changed = containers != state.from_api;
        state.from_api = containers;
        changed
    }

    fn new(runtime: PodSource) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(State::default()),
                wake: Notify::new(),
                runtime,
            }),
        }
    }

    /// Listings tried so far: a container still unknown two listings after it was first
    /// seen is not coming.
    pub(crate) fn attempts(&self) -> u64 {
        self.read().attempts
    }

    /// Asks for a listing now (a cgroup of an unknown container appeared).
    pub(crate) fn nudge(&self) {
        self.shared.wake.notify_one();
    }

    /// The runtime's name, for labels and loss records (`docker`).
    pub(crate) fn runtime(&self) -> PodSource {
        self.shared.runtime
    }

    /// A directory holding `identities` (fixtures).
    #[cfg(test)]
    pub(crate) fn fixed(identities: HashMap<String, Identity>, attempts: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(State {
                    containers: identities,
                    from_api: HashMap::new(),
                    attempts,
                    healthy: true,
                }),
                wake: Notify::new(),
                runtime: PodSource::Cri,
            }),
        }
    }

    /// Takes one listing's result; true when the containers changed.
    fn apply(
        &self,
        result: Result<HashMap<String, Identity>, RuntimeError>,
        m: &RuntimeMetrics,
    ) -> bool {
        let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
        state.attempts += 1;
        match result {
            Ok(containers) => {
                if !state.healthy {
                    tracing::info!(
                        runtime = %self.shared.runtime,
                        "container runtime answers again"
                    );
                }
                state.healthy = true;
                m.containers
                    .set(i64::try_from(containers.len()).unwrap_or(i64::MAX));
                let changed = containers != state.containers;
                state.containers = containers;
                changed
            }
            Err(error) => {
                m.errors.inc();
                if state.healthy {
                    tracing::warn!(runtime = %self.shared.runtime, %error, "{LISTING_FAILED}");
                }
                state.healthy = false;
                false
            }
        }
    }
}

/// The runtime client.
enum Runtime {
    Cri(cri::Cri),
    Docker(docker::Docker),
}

impl Runtime {
    fn name(&self) -> PodSource {
        match self {
            Runtime::Cri(_) => PodSource::Cri,
            Runtime::Docker(_) => PodSource::Docker,
        }
    }

    fn socket(&self) -> &Path {
        match self {
            Runtime::Cri(c) => c.socket(),
            Runtime::Docker(d) => d.socket(),
        }
    }

    async fn list(&self) -> Result<HashMap<String, Identity>, RuntimeError> {
        match self {
            Runtime::Cri(c) => c.list().await.map(labels::identities),
            Runtime::Docker(d) => d.list().await.map(labels::identities),
        }
    }
}

/// The runtime to ask, if any: the configured endpoint, else the first default socket found.
fn choose(config: &RuntimeConfig) -> Option<Runtime> {
    let docker = |path: &Path| Runtime::Docker(docker::Docker::new(path, config.timeout));
    let cri = |path: &Path| Runtime::Cri(cri::Cri::new(path, config.timeout));
    fn first(sockets: &[&'static str]) -> Option<&'static Path> {
        sockets.iter().copied().map(Path::new).find(|p| p.exists())
    }
    match (config.kind, config.endpoint.as_deref()) {
        (RuntimeKind::None, _) => None,
        (RuntimeKind::Docker, Some(endpoint)) => Some(docker(endpoint)),
        (RuntimeKind::Cri, Some(endpoint)) => Some(cri(endpoint)),
        (RuntimeKind::Auto, Some(endpoint)) => {
            let named_docker = endpoint
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("docker"));
            Some(if named_docker {
                docker(endpoint)
            } else {
                cri(endpoint)
            })
        }
        (RuntimeKind::Docker, None) => first(DOCKER_SOCKETS).map(docker),
        (RuntimeKind::Cri, None) => first(CRI_SOCKETS).map(cri),
        (RuntimeKind::Auto, None) => first(CRI_SOCKETS)
            .map(cri)
            .or_else(|| first(DOCKER_SOCKETS).map(docker)),
    }
}

/// Starts the directory: lists the runtime's containers once and, with `api` (a client and
/// this node's name), waits for the first list of this node's pods, so the first cgroup scan
/// knows them; then keeps both current on tasks, giving `changed` notice on change.
/// `None` when nothing is configured or found and nothing is needed; an error when the rules
/// need pod identity and there is no source, or a configured source does not answer.
pub(crate) async fn start(
    config: &RuntimeConfig,
    needed: bool,
    api: Option<(kube::Client, String)>,
    changed: Notifier,
    metrics: RuntimeMetrics,
) -> Result<Option<PodDirectory>, PodError> {
    let runtime = choose(config);
    if runtime.is_none() && api.is_none() {
        if needed {
            let tried = config.endpoint.as_ref().map_or_else(
                || [CRI_SOCKETS, DOCKER_SOCKETS].concat().join(", "),
                |p| p.display().to_string(),
            );
            return Err(PodError::NoRuntime { tried });
        }
        return Ok(None);
    }
    let directory = PodDirectory::new(
        runtime
            .as_ref()
            .map_or(PodSource::KubernetesApi, Runtime::name),
    );
    if let Some(runtime) = runtime {
        let first = runtime.list().await;
        let explicit = config.endpoint.is_some() || config.kind != RuntimeKind::Auto;
        match first {
            Err(error) if (needed && api.is_none()) || explicit => return Err(error.into()),
            first => {
                directory.apply(first, &metrics);
            }
        }
        tracing::info!(
            runtime = %runtime.name(),
            socket = %runtime.socket().display(),
            containers = directory.read().containers.len(),
            "pod identity from the container runtime"
        );
        let task = directory.clone();
        let every = config.refresh;
        let changed_tx = changed.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = task.shared.wake.notified() => {}
                }
                let changed = task.apply(runtime.list().await, &metrics);
                if changed && !changed_tx.notify() {
                    return;
                }
                tokio::time::sleep(MIN_GAP).await;
            }
        });
    }
    if let Some((client, node)) = api {
        api::start(
            client,
            &node,
            directory.clone(),
            changed,
            metrics.api_errors,
        )
        .await?;
        tracing::info!(
            node,
            "pod identity from the Kubernetes API (this node's pods)"
        );
    }
    Ok(Some(directory))
}
