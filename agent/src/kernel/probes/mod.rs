//! Loading the probes: BTF offsets in, programs loaded in table order with fallbacks, attached,
//! and a report of which hooks are live (the node's fingerprint).
mod attach;
pub(crate) mod btf;
pub(crate) mod budget;
pub(crate) mod guarantee;
pub(crate) mod lsm_list;
pub(crate) mod maps;
pub(crate) mod table;
pub(crate) mod tracefs;

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{Btf, Ebpf, EbpfLoader};
use seam_common::{
    BudgetConfig, GLOBAL_BUDGET, GLOBAL_OFFSETS, GLOBAL_SYSCALLS, KernelOffsets, MAP_EVENTS,
    SyscallNumbers,
};
pub(crate) use table::{Capability, Hook, Needs, PROBES, ProbeSpec, ProgramType};

pub(crate) use crate::model::vocab::ProbeState;

/// The probes, compiled for bpfel-unknown-none by agent/build.rs (ebpf/src/main.rs; the
/// benchmark floor's object, ebpf/src/floor.rs, is a separate `seam-floor` only testkit embeds).
static PROBE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/seam"));

/// Why probes could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// The eBPF object could not be parsed or its maps created.
    #[error("cannot load Seam's eBPF object: {0}; is the kernel built with BPF and BTF support?")]
    Object(#[source] aya::EbpfError),
    /// The kernel's BTF could not be read (tp_btf programs need it).
    #[error("cannot read kernel BTF: {0}")]
    KernelBtf(#[source] aya::BtfError),
    /// A program named in the probe table is missing from the object (a build mismatch).
    #[error("probe {program} is not in the eBPF object; rebuild with `cargo xtask build`")]
    MissingProgram { program: &'static str },
    /// The root cgroup could not be opened for attaching.
    #[error("cannot open cgroup root {path}: {source}")]
    CgroupRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The requested ring buffer size is not usable.
    #[error(
        "ring buffer size {bytes} is not a power of two of at least the page size ({page}); \
         pick e.g. 4194304"
    )]
    RingSize { bytes: u32, page: u32 },
    /// A map the probes declare is missing (a build mismatch).
    #[error("eBPF map {name} missing from the probe object; rebuild with `cargo xtask build`")]
    MissingMap { name: &'static str },
    /// A map has another type than the agent expects (a build mismatch).
    #[error("eBPF map {name}: {source}; rebuild with `cargo xtask build`")]
    Map {
        name: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A required capability has no probe that loads and attaches on this kernel.
    #[error(
        "no probe for required capability {capability:?} could be loaded on this kernel; \
         {failures}"
    )]
    Required {
        capability: Capability,
        /// Each attempted probe and the kernel's answer (the verifier log for load failures).
        failures: String,
    },
}

/// Outcome of one probe.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ProbeStatus {
    pub program: &'static str,
    pub program_type: ProgramType,
    pub attach_point: String,
    pub capability: Capability,
    pub rank: u8,
    pub state: ProbeState,
    /// The kernel accepted the program (the verifier passed).
    pub loaded: bool,
    /// The program was attached to its hook.
    pub attached: bool,
    /// Time spent loading and attaching, in microseconds (0 when not tried).
    pub load_us: u64,
    /// Why it failed (includes the verifier's output for load errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Loaded, attached probes. Dropping it detaches everything.
pub(crate) struct Probes {
    pub ebpf: Ebpf,
    pub statuses: Vec<ProbeStatus>,
}

impl Probes {
    /// Hooks that are live, e.g. `["cgroup/connect4", "tp_btf/inet_sock_set_state", ...]`.
    pub(crate) fn live_hooks(&self) -> Vec<String> {
        self.statuses
            .iter()
            .filter(|s| s.state == ProbeState::Live)
            .map(|s| s.attach_point.clone())
            .collect()
    }

    /// Whether repeated file opens may be silenced: only the [`table::SYS_EXIT`] file tier
    /// follows the file generation (silences under another could outlive a rename).
    pub(crate) fn silences_files(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| s.program == table::SYS_EXIT && s.state == ProbeState::Live)
    }
}

/// How much of the table to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadMode {
    /// Start-up: per capability, tiers in rank order until one is complete; worse tiers are not
    /// loaded, and an incomplete tier's programs are unloaded again.
    Run,
    /// Fingerprint: every row is loaded and attached, whatever serves its capability; the
    /// selection is the one `Run` would make. Missing required capabilities are not an error.
    TryEveryRow,
}

/// Checks a ring buffer size: a power of two and a multiple of the page size.
pub(crate) fn check_ring_bytes(bytes: u32) -> Result<u32, ProbeError> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    if bytes.is_power_of_two() && bytes >= page {
        Ok(bytes)
    } else {
        Err(ProbeError::RingSize { bytes, page })
    }
}

/// The embedded probe object (the fingerprint hashes it: `probe_object_sha256`).
pub(crate) fn probe_object() -> &'static [u8] {
    PROBE_OBJECT
}

/// Loads the object with `offsets`, the per-tenant event `budget` (and a ring buffer of
/// `ring_bytes`, default [`seam_common::EVENTS_RING_BYTES`]), then the table against `cgroup_root` ([`LoadMode::Run`]).
/// Fails only when a [`Capability::REQUIRED`] capability ends up with no live probe.
/// Probes named in `disabled` (by program name or attach point) are not loaded.
pub(crate) fn load(
    offsets: Option<KernelOffsets>,
    cgroup_root: &Path,
    ring_bytes: Option<u32>,
    budget: BudgetConfig,
    disabled: &[String],
) -> Result<Probes, ProbeError> {
    load_mode(
        offsets,
        cgroup_root,
        ring_bytes,
        budget,
        disabled,
        LoadMode::Run,
    )
}

/// [`load`] with a choice of [`LoadMode`].
pub(crate) fn load_mode(
    offsets: Option<KernelOffsets>,
    cgroup_root: &Path,
    ring_bytes: Option<u32>,
    budget: BudgetConfig,
    disabled: &[String],
    mode: LoadMode,
) -> Result<Probes, ProbeError> {
    let offsets = offsets.unwrap_or_default();
    let mut ebpf = load_object(&offsets, ring_bytes, budget)?;
    let btf = Btf::from_sys_fs().map_err(ProbeError::KernelBtf)?;
    let cgroup = File::open(cgroup_root).map_err(|source| ProbeError::CgroupRoot {
        path: cgroup_root.to_owned(),
        source,
    })?;
    let mut rows = Rows {
        ebpf: &mut ebpf,
        statuses: PROBES.iter().map(standby).collect(),
        offsets: &offsets,
        btf: &btf,
        cgroup: &cgroup,
        lsm_inactive: lsm_list::bpf_inactive_reason(&lsm_list::active()),
        disabled,
        mode,
    };
    for capability in Capability::ALL {
        rows.serve(capability);
    }
    let statuses = rows.statuses;
    if mode == LoadMode::Run {
        log_tiers(&statuses);
        for capability in Capability::REQUIRED {
            if !statuses
                .iter()
                .any(|s| s.capability == capability && s.state == ProbeState::Live)
            {
                return Err(ProbeError::Required {
                    capability,
                    failures: failures(&statuses, capability),
                });
            }
        }
    }
    Ok(Probes { ebpf, statuses })
}

/// The probe object with the kernel's `offsets`, the syscall numbers they allow, the event
/// `budget` and the ring buffer size set; its maps created, no program loaded yet.
fn load_object(
    offsets: &KernelOffsets,
    ring_bytes: Option<u32>,
    budget: BudgetConfig,
) -> Result<Ebpf, ProbeError> {
    let mut loader = EbpfLoader::new();
    loader.override_global(GLOBAL_OFFSETS, offsets, true);
    let syscalls = if offsets.regs_valid == 1 && cfg!(target_arch = "x86_64") {
        SyscallNumbers::X86_64
    } else {
        SyscallNumbers::NONE
    };
    loader.override_global(GLOBAL_SYSCALLS, &syscalls, true);
    loader.override_global(GLOBAL_BUDGET, &budget, true);
    if let Some(bytes) = ring_bytes {
        loader.map_max_entries(MAP_EVENTS, check_ring_bytes(bytes)?);
    }
    loader.load(PROBE_OBJECT).map_err(ProbeError::Object)
}

/// A row's status before anything is tried.
fn standby(spec: &ProbeSpec) -> ProbeStatus {
    ProbeStatus {
        program: spec.program,
        program_type: spec.hook.program_type(),
        attach_point: spec.attach_point(),
        capability: spec.capability,
        rank: spec.rank,
        state: ProbeState::Standby,
        loaded: false,
        attached: false,
        load_us: 0,
        error: None,
    }
}

/// The probe table being loaded: the object, each row's status (in table order) and what
/// loading a row needs.
struct Rows<'a> {
    ebpf: &'a mut Ebpf,
    statuses: Vec<ProbeStatus>,
    offsets: &'a KernelOffsets,
    btf: &'a Btf,
    cgroup: &'a File,
    /// Why BPF LSM programs cannot run on this kernel, if they cannot.
    lsm_inactive: Option<String>,
    disabled: &'a [String],
    mode: LoadMode,
}

impl Rows<'_> {
    /// Tries the tiers of `capability` in rank order: the first complete one goes live; in
    /// [`LoadMode::Run`] the worse ones are not tried.
    fn serve(&mut self, capability: Capability) {
        let mut ranks: Vec<u8> = PROBES
            .iter()
            .filter(|p| p.capability == capability)
            .map(|p| p.rank)
            .collect();
        ranks.sort_unstable();
        ranks.dedup();
        let mut served = false;
        for rank in ranks {
            if served && self.mode == LoadMode::Run {
                break;
            }
            let tier: Vec<usize> = (0..PROBES.len())
                .filter(|&i| PROBES[i].capability == capability && PROBES[i].rank == rank)
                .collect();
            let complete = self.try_tier(&tier);
            let chosen = complete && !served;
            self.settle_tier(&tier, chosen);
            served |= chosen;
        }
    }

    /// Loads and attaches every row of `tier` (but those disabled by option); whether the tier
    /// is complete: something attached, and every row that is not optional.
    fn try_tier(&mut self, tier: &[usize]) -> bool {
        let mut complete = true;
        let mut any = false;
        for &i in tier {
            let spec = &PROBES[i];
            let status = &mut self.statuses[i];
            if self
                .disabled
                .iter()
                .any(|d| d == spec.program || *d == status.attach_point)
            {
                tracing::info!(probe = spec.program, hook = %status.attach_point, "probe disabled by option");
                status.state = ProbeState::Disabled;
                continue;
            }
            if let (Hook::Lsm(_), Some(reason)) = (spec.hook, &self.lsm_inactive) {
                status.state = ProbeState::Failed;
                status.error = Some(reason.clone());
            } else {
                attach::try_row(self.ebpf, spec, status, self.offsets, self.btf, self.cgroup);
            }
            any |= status.attached;
            complete &= status.attached || spec.optional;
        }
        complete && any
    }

    /// The attached rows of `tier` go live when it is `chosen`; otherwise, in
    /// [`LoadMode::Run`], they are unloaded again.
    fn settle_tier(&mut self, tier: &[usize], chosen: bool) {
        for &i in tier {
            let status = &mut self.statuses[i];
            if status.state == ProbeState::Disabled || !status.attached {
                continue;
            }
            if chosen {
                status.state = ProbeState::Live;
                tracing::info!(probe = status.program, hook = %status.attach_point, "probe live");
            } else if self.mode == LoadMode::Run {
                // An incomplete tier would give a partial view next to a complete one.
                attach::unload(self.ebpf, &PROBES[i]);
                status.attached = false;
                status.error = Some("unloaded: its tier is incomplete on this kernel".into());
            }
        }
    }
}

/// Logs the tier serving each capability and what it does not see, so an operator reading the
/// start-up log learns the node's guarantees without running `seam fingerprint`.
fn log_tiers(statuses: &[ProbeStatus]) {
    for capability in Capability::ALL {
        let live = statuses
            .iter()
            .find(|s| s.capability == capability && s.state == ProbeState::Live);
        let tier = live.map(|s| (s.program_type, s.rank));
        let reductions = guarantee::reductions(capability, tier);
        let off = statuses
            .iter()
            .filter(|s| s.capability == capability)
            .all(|s| s.state == ProbeState::Disabled);
        match tier {
            None if off => tracing::info!(?capability, "capability off by option"),
            Some((program_type, rank)) if reductions.is_empty() => {
                tracing::info!(?capability, ?program_type, rank, "capability live");
            }
            _ => tracing::warn!(
                ?capability,
                ?tier,
                ?reductions,
                "capability reduced on this kernel (see `seam fingerprint`)"
            ),
        }
    }
}

/// Each probe of `capability` and why it is not live.
fn failures(statuses: &[ProbeStatus], capability: Capability) -> String {
    statuses
        .iter()
        .filter(|s| s.capability == capability)
        .map(|s| {
            format!(
                "probe {} ({}): {}",
                s.program,
                s.attach_point,
                s.error.as_deref().unwrap_or(match s.state {
                    ProbeState::Disabled => "disabled by --disable-probe",
                    _ => "not attempted",
                })
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Resolves every offset the probes need from BTF and tracefs; what cannot be resolved stays
/// zero and the probes depending on it are reported as not loaded.
pub(crate) fn resolve_offsets() -> Option<KernelOffsets> {
    let btf = match btf::BtfOffsets::open(std::path::Path::new(btf::VMLINUX_BTF)) {
        Ok(btf) => btf,
        Err(error) => {
            tracing::warn!(%error, "kernel BTF unavailable; probes that need offsets stay off");
            return None;
        }
    };
    let base = btf.kernel_offsets().unwrap_or_else(|error| {
        tracing::warn!(%error, "socket offsets unavailable; TCP state probes stay off");
        KernelOffsets::ZERO
    });
    let base = btf.tcp_counter_offsets(base).unwrap_or_else(|error| {
        tracing::warn!(%error, "tcp_sock counters unavailable; connections end without byte counts");
        base
    });
    let offsets = btf.file_offsets(base).unwrap_or_else(|error| {
        tracing::warn!(%error, "file offsets unavailable; file probes stay off");
        base
    });
    let mut offsets = btf.regs_offsets(offsets).unwrap_or_else(|error| {
        tracing::warn!(%error, "syscall registers unavailable; per-syscall file probes serve");
        offsets
    });
    if crate::kernel::preflight::ensure_tracefs().is_ok()
        && let Some((args, ret)) =
            tracefs::syscall_layout(std::path::Path::new(crate::kernel::preflight::TRACEFS))
    {
        offsets.syscall_args = args;
        offsets.syscall_ret = ret;
    } else {
        // Only the syscall tracepoint rows need the record layout (Needs::SyscallRecords).
        tracing::warn!("tracefs syscall formats unreadable; syscall file probes stay off");
    }
    Some(offsets)
}

#[cfg(test)]
mod tests;
