//! What an operator asks of any node agent: which build runs (`seam_build_info`) on which
//! kernel (`seam_kernel_info`, the fingerprint's headline), the state of
//! every probe row (`seam_probe_state`), and the container runtime that names pods
//! (`seam_container_runtime_*`).
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    attribution::pods::RuntimeMetrics,
    kernel::{fingerprint::Fingerprint, probes::ProbeStatus},
    model::vocab::ProbeState,
};

/// Labels of `seam_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub version: String,
    pub arch: String,
}

/// Labels of `seam_kernel_info`: what decides which hooks can load, and the probe object and
/// rules the node runs (fleet dashboards group by them to see where guarantees differ).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KernelLabels {
    pub release: String,
    pub arch: String,
    pub btf: String,
    pub bpf_lsm: String,
    pub cgroup_mode: String,
    pub probe_object_sha256: String,
    pub rules_sha256: String,
}

/// Labels of `seam_probe_state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeStateLabels {
    pub probe: String,
    pub hook: String,
    pub state: String,
}

/// The node-level metrics.
#[derive(Debug, Clone)]
pub(crate) struct NodeMetrics {
    pub kernel_info: Family<KernelLabels, Gauge>,
    pub probe_state: Family<ProbeStateLabels, Gauge>,
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
                version: env!("CARGO_PKG_VERSION").to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
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

    /// `seam_kernel_info` from this run's fingerprint.
    pub(crate) fn set_kernel(&self, fp: &Fingerprint) {
        self.kernel_info
            .get_or_create(&KernelLabels {
                release: fp.kernel.release.clone(),
                arch: fp.kernel.arch.clone(),
                btf: fp.btf.present.to_string(),
                bpf_lsm: fp.lsm.bpf.to_string(),
                cgroup_mode: serde_json::to_value(fp.cgroup.mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                probe_object_sha256: fp.probe_object_sha256.clone(),
                rules_sha256: fp.rules_sha256.clone().unwrap_or_default(),
            })
            .set(1);
    }

    /// Every probe row with its state.
    pub(crate) fn set_probe_states(&self, statuses: &[ProbeStatus]) {
        for status in statuses {
            for state in ProbeState::ALL {
                self.probe_state
                    .get_or_create(&ProbeStateLabels {
                        probe: status.program.to_owned(),
                        hook: status.attach_point.clone(),
                        state: state.as_str().to_owned(),
                    })
                    .set(i64::from(status.state == *state));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn build_info_and_probe_states_are_exported() {
        let metrics = Metrics::new();
        let status = |program, state| ProbeStatus {
            program,
            program_type: crate::kernel::probes::ProgramType::CgroupSockAddr,
            attach_point: format!("hook/{program}"),
            capability: crate::kernel::probes::Capability::ConnectIntent,
            rank: 0,
            state,
            loaded: true,
            attached: true,
            load_us: 1,
            error: None,
        };
        metrics.node.set_probe_states(&[
            status("seam_connect4", ProbeState::Live),
            status("seam_kprobe_x", ProbeState::Failed),
        ]);
        let fp = crate::kernel::fingerprint::from_statuses(
            "node-a".into(),
            &[status("seam_connect4", ProbeState::Live)],
            Some("abc".into()),
            5,
        );
        metrics.node.set_kernel(&fp);
        let text = metrics.encode();
        let release = &fp.kernel.release;
        assert!(
            text.contains(&format!("seam_kernel_info{{release=\"{release}\",")),
            "{text}"
        );
        assert!(text.contains("rules_sha256=\"abc\"} 1"), "{text}");
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
