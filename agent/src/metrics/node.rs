//! What an operator asks of any node agent: which build runs (`seam_build_info`) on which
//! kernel (`seam_kernel_info`, the fingerprint's headline), the state of
//! every probe row (`seam_probe_state`), and the container runtime that names pods
//! (`seam_container_runtime_*`). The kernel's parts hand in plain values: this module knows no
//! fingerprint and no probe table.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::model::vocab::ProbeState;

/// Labels of `seam_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub version: &'static str,
    pub arch: &'static str,
}

/// Labels of `seam_kernel_info`: what decides which hooks can load, and the probe object and
/// rules the node runs (fleet dashboards group by them to see where guarantees differ).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KernelLabels {
    pub release: String,
    pub arch: String,
    /// The kernel has BTF.
    pub btf: bool,
    /// BPF is among the active LSMs.
    pub bpf_lsm: bool,
    /// The cgroup hierarchy's mode as the fingerprint writes it (`unified`, `hybrid`, ...).
    pub cgroup_mode: String,
    pub probe_object_sha256: String,
    /// Empty when unknown.
    pub rules_sha256: String,
}

/// Labels of `seam_probe_state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeStateLabels {
    /// The probe's program name.
    pub probe: &'static str,
    /// Its attach point.
    pub hook: String,
    pub state: ProbeState,
}

/// The container runtime's counters (`seam_container_runtime_*`), handed to the pod
/// directory.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuntimeMetrics {
    /// Listings that failed.
    pub errors: Counter,
    /// Containers the last listing returned.
    pub containers: Gauge,
    /// Kubernetes API watch errors.
    pub api_errors: Counter,
}

/// The node-level metrics.
#[derive(Debug, Clone)]
pub(crate) struct NodeMetrics {
    kernel_info: Family<KernelLabels, Gauge>,
    probe_state: Family<ProbeStateLabels, Gauge>,
    pub runtime: RuntimeMetrics,
}

impl NodeMetrics {
    /// Registers the node metrics; `seam_build_info` is set here, once.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the labels say which Seam runs",
            build.clone(),
        );
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                arch: std::env::consts::ARCH,
            })
            .set(1);
        let kernel_info = Family::<KernelLabels, Gauge>::default();
        registry.register(
            "kernel_info",
            "Always 1; the labels say which kernel this node runs and what it offers Seam (the \
             start record of the feed and `seam fingerprint` have the details)",
            kernel_info.clone(),
        );
        let probe_state = Family::<ProbeStateLabels, Gauge>::default();
        registry.register(
            "probe_state",
            "1 for the state each probe row is in (live, standby, failed, disabled), 0 for the \
             others",
            probe_state.clone(),
        );
        let runtime = RuntimeMetrics::default();
        registry.register(
            "container_runtime_errors",
            "Container runtime listings that failed (pods of new containers stay unknown)",
            runtime.errors.clone(),
        );
        registry.register(
            "kubernetes_api_errors",
            "Kubernetes API watch errors (this node's pods; retried with backoff)",
            runtime.api_errors.clone(),
        );
        registry.register(
            "container_runtime_containers",
            "Containers the container runtime listed last",
            runtime.containers.clone(),
        );
        Self {
            kernel_info,
            probe_state,
            runtime,
        }
    }

    /// `seam_kernel_info`: this run's kernel, in brief.
    pub(crate) fn set_kernel(&self, info: &KernelLabels) {
        self.kernel_info.get_or_create(info).set(1);
    }

    /// Probe row `probe` at `hook` is in `state` (1 for it, 0 for the other states).
    pub(crate) fn set_probe_state(&self, probe: &'static str, hook: &str, state: ProbeState) {
        for other in ProbeState::ALL {
            self.probe_state
                .get_or_create(&ProbeStateLabels {
                    probe,
                    hook: hook.to_owned(),
                    state: *other,
                })
                .set(i64::from(state == *other));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn build_kernel_and_probe_states_are_exported() {
        let metrics = Metrics::new();
        metrics
            .node
            .set_probe_state("seam_connect4", "hook/seam_connect4", ProbeState::Live);
        metrics
            .node
            .set_probe_state("seam_kprobe_x", "hook/seam_kprobe_x", ProbeState::Failed);
        metrics.node.set_kernel(&KernelLabels {
            release: "6.1.0-x".into(),
            arch: "x86_64".into(),
            btf: true,
            bpf_lsm: false,
            cgroup_mode: "unified".into(),
            probe_object_sha256: "def".into(),
            rules_sha256: "abc".into(),
        });
        let text = metrics.encode();
        assert!(
            text.contains(
                "seam_kernel_info{release=\"6.1.0-x\",arch=\"x86_64\",btf=\"true\",\
                 bpf_lsm=\"false\",cgroup_mode=\"unified\",probe_object_sha256=\"def\",\
                 rules_sha256=\"abc\"} 1"
            ),
            "{text}"
        );
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("seam_build_info{{version=\"{version}\"")),
            "{text}"
        );
        for line in [
            "seam_probe_state{probe=\"seam_connect4\",hook=\"hook/seam_connect4\",state=\"live\"} 1",
            "seam_probe_state{probe=\"seam_connect4\",hook=\"hook/seam_connect4\",state=\"failed\"} 0",
            "seam_probe_state{probe=\"seam_kprobe_x\",hook=\"hook/seam_kprobe_x\",state=\"failed\"} 1",
            "seam_probe_state{probe=\"seam_kprobe_x\",hook=\"hook/seam_kprobe_x\",state=\"standby\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
