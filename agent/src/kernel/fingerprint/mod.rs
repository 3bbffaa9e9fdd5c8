//! `seam fingerprint`: what this node's kernel lets Seam see. Every row of the probe table is
//! loaded and attached ([`LoadMode::TryEveryRow`]), and the report names the kernel, its BTF,
//! cgroup mode and LSMs, each row's outcome (with the verifier's message), the tier that serves
//! each capability and what that tier does not see. `seam fleet-check` compares these reports.
pub(crate) mod node;

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) use self::node::{BtfInfo, CgroupInfo, KernelInfo, LsmInfo};
use crate::{
    kernel::{
        preflight,
        preflight::PreflightError,
        probes,
        probes::{
            Capability, LoadMode, ProbeError, ProbeState, ProbeStatus, ProgramType,
            guarantee::{Reduction, reductions},
        },
    },
    metrics::node::KernelLabels,
    policy::{ConfigErrors, RuleSet},
};

/// Version of the report's layout; fleet-check refuses layouts it does not know.
pub(crate) const SCHEMA: u32 = 1;

/// Why a fingerprint could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FingerprintError {
    /// Not root, or no cgroup v2 mount to attach the cgroup programs to.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The probe object itself could not be loaded (not one row: the whole object).
    #[error(transparent)]
    Probes(#[from] ProbeError),
    /// `--rules` could not be loaded; the hash would describe rules the agent refuses.
    #[error("cannot hash the rules: {0}; fix them (`seam check-rules`) or leave out --rules")]
    Rules(#[source] ConfigErrors),
    /// A rules file that loaded could not be read again for hashing (changed meanwhile?).
    #[error(
        "a rules file could not be read again to hash the rules (changed meanwhile?); run again"
    )]
    RulesChanged,
}

/// One row of the probe table as tried on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub program: String,
    pub program_type: ProgramType,
    pub attach_point: String,
    pub capability: Capability,
    pub rank: u8,
    pub state: ProbeState,
    pub loaded: bool,
    pub attached: bool,
    pub load_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&ProbeStatus> for Row {
    fn from(s: &ProbeStatus) -> Self {
        Self {
            program: s.program.to_owned(),
            program_type: s.program_type,
            attach_point: s.attach_point.clone(),
            capability: s.capability,
            rank: s.rank,
            state: s.state,
            loaded: s.loaded,
            attached: s.attached,
            load_us: s.load_us,
            error: s.error.clone(),
        }
    }
}

/// The tier serving one capability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Live {
    /// Program type of the live tier (None: the capability is not live).
    pub program_type: Option<ProgramType>,
    /// Its rank (0: the best tier Seam has for the capability).
    pub rank: Option<u8>,
    /// Attach points of the live rows.
    pub hooks: Vec<String>,
    /// What this tier does not see compared with the best one.
    pub reductions: Vec<Reduction>,
}

/// A node's fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    pub schema: u32,
    pub node: String,
    pub agent_version: String,
    pub kernel: KernelInfo,
    pub btf: BtfInfo,
    pub cgroup: CgroupInfo,
    pub lsm: LsmInfo,
    pub probe_object_sha256: String,
    /// SHA-256 over the rules files (name and content, in load order) when `--rules` was given.
    #[serde(default)]
    pub rules_sha256: Option<String>,
    /// Time to load and attach every row, in milliseconds.
    pub load_ms: u64,
    pub rows: Vec<Row>,
    pub capabilities: BTreeMap<Capability, Live>,
}

impl Fingerprint {
    /// The labels of `seam_kernel_info`: this fingerprint in brief.
    pub(crate) fn kernel_labels(&self) -> KernelLabels {
        KernelLabels {
            release: self.kernel.release.clone(),
            arch: self.kernel.arch.clone(),
            btf: self.btf.present,
            bpf_lsm: self.lsm.bpf,
            cgroup_mode: serde_json::to_value(self.cgroup.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            probe_object_sha256: self.probe_object_sha256.clone(),
            rules_sha256: self.rules_sha256.clone().unwrap_or_default(),
        }
    }
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The live tier of each capability, from the rows' states.
pub(crate) fn live_tiers(rows: &[Row]) -> BTreeMap<Capability, Live> {
    Capability::ALL
        .into_iter()
        .map(|capability| {
            let live: Vec<&Row> = rows
                .iter()
                .filter(|r| r.capability == capability && r.state == ProbeState::Live)
                .collect();
            let tier = live.first().map(|r| (r.program_type, r.rank));
            let entry = Live {
                program_type: tier.map(|t| t.0),
                rank: tier.map(|t| t.1),
                hooks: live.iter().map(|r| r.attach_point.clone()).collect(),
                reductions: reductions(capability, tier),
            };
            (capability, entry)
        })
        .collect()
}

/// Hashes the rules the agent would load from `dirs` (validated first).
fn rules_sha256(dirs: &[PathBuf]) -> Result<String, FingerprintError> {
    let rules = RuleSet::load_dirs(dirs).map_err(FingerprintError::Rules)?;
    rules.sha256().ok_or(FingerprintError::RulesChanged)
}

/// The fingerprint of a node whose probe rows were tried as `statuses` say: `seam fingerprint`
/// tries every row, `seam run` the rows it runs with (the start record of its feed).
pub(crate) fn from_statuses(
    node: String,
    statuses: &[ProbeStatus],
    rules_sha256: Option<String>,
    load_ms: u64,
) -> Fingerprint {
    let rows: Vec<Row> = statuses.iter().map(Row::from).collect();
    Fingerprint {
        schema: SCHEMA,
        node,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel: node::kernel(),
        btf: node::btf(),
        cgroup: node::cgroup(),
        lsm: node::lsm(),
        probe_object_sha256: sha256_hex(probes::probe_object()),
        rules_sha256,
        load_ms,
        capabilities: live_tiers(&rows),
        rows,
    }
}

/// Takes this node's fingerprint: needs root; loads and attaches every probe row for a moment.
pub(crate) fn take(node: String, rules: &[PathBuf]) -> Result<Fingerprint, FingerprintError> {
    preflight::require_root()?;
    let rules_sha256 = if rules.is_empty() {
        None
    } else {
        Some(rules_sha256(rules)?)
    };
    let cgroup_root = preflight::cgroup2_mount()?;
    let started = std::time::Instant::now();
    let offsets = crate::kernel::probes::resolve_offsets();
    let mut probes = probes::load_mode(
        offsets,
        &cgroup_root,
        None,
        crate::kernel::probes::budget::DEFAULT,
        &[],
        LoadMode::TryEveryRow,
    )?;
    let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let statuses = std::mem::take(&mut probes.statuses);
    drop(probes);
    Ok(from_statuses(node, &statuses, rules_sha256, load_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_labels_are_the_fingerprint_in_brief() {
        let fp = from_statuses("node-a".into(), &[], Some("abc".into()), 5);
        let labels = fp.kernel_labels();
        assert_eq!(labels.release, fp.kernel.release);
        assert_eq!(labels.arch, fp.kernel.arch);
        assert_eq!((labels.btf, labels.bpf_lsm), (fp.btf.present, fp.lsm.bpf));
        // As the start record writes it.
        let start = serde_json::to_value(&fp).unwrap();
        assert_eq!(
            labels.cgroup_mode,
            start["cgroup"]["mode"].as_str().unwrap()
        );
        assert_eq!(labels.probe_object_sha256, fp.probe_object_sha256);
        assert_eq!(labels.rules_sha256, "abc");
        let unknown = from_statuses("node-a".into(), &[], None, 5);
        assert_eq!(unknown.kernel_labels().rules_sha256, "");
    }
}
