//! Loading the probes: BTF offsets in, programs loaded in table order with fallbacks, attached,
//! and a report of which hooks are live (the node's fingerprint).
pub(crate) mod btf;
pub(crate) mod maps;
pub(crate) mod table;
pub(crate) mod tracefs;

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, TracePoint,
    },
};
use seam_common::{GLOBAL_OFFSETS, KernelOffsets, MAP_EVENTS};
pub(crate) use table::{Capability, Hook, Needs, PROBES, ProbeSpec};

use crate::vocab::ProbeState;

/// The probes, compiled for bpfel-unknown-none by agent/build.rs.
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
    pub attach_point: String,
    pub capability: Capability,
    pub state: ProbeState,
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

/// Loads the object with `offsets` (and a ring buffer of `ring_bytes`, default
/// [`seam_common::EVENTS_RING_BYTES`]), then every probe of the table against `cgroup_root`.
/// Fails only when a [`Capability::REQUIRED`] capability ends up with no live probe.
/// Probes named in `disabled` (by program name or attach point) are not loaded.
pub(crate) fn load(
    offsets: Option<KernelOffsets>,
    cgroup_root: &Path,
    ring_bytes: Option<u32>,
    disabled: &[String],
) -> Result<Probes, ProbeError> {
    let offsets = offsets.unwrap_or_default();
    let mut loader = EbpfLoader::new();
    loader.override_global(GLOBAL_OFFSETS, &offsets, true);
    if let Some(bytes) = ring_bytes {
        loader.map_max_entries(MAP_EVENTS, check_ring_bytes(bytes)?);
    }
    let mut ebpf = loader.load(PROBE_OBJECT).map_err(ProbeError::Object)?;
    let btf = Btf::from_sys_fs().map_err(ProbeError::KernelBtf)?;
    let cgroup = File::open(cgroup_root).map_err(|source| ProbeError::CgroupRoot {
        path: cgroup_root.to_owned(),
        source,
    })?;
    let kernel = kernel_version();
    let mut live: BTreeMap<Capability, usize> = BTreeMap::new();
    let mut statuses = Vec::with_capacity(PROBES.len());
    for spec in PROBES {
        let attach_point = spec.attach_point();
        // A fallback is only tried when no better probe gave this capability (except for
        // capabilities served by several programs at once, like connect4 + connect6).
        if disabled
            .iter()
            .any(|d| d == spec.program || *d == attach_point)
        {
            tracing::info!(probe = spec.program, hook = %attach_point, "probe disabled by option");
            statuses.push(ProbeStatus {
                program: spec.program,
                attach_point,
                capability: spec.capability,
                state: ProbeState::Disabled,
                error: None,
            });
            continue;
        }
        if spec.fallback && live.contains_key(&spec.capability) {
            statuses.push(ProbeStatus {
                program: spec.program,
                attach_point,
                capability: spec.capability,
                state: ProbeState::Standby,
                error: None,
            });
            continue;
        }
        let missing_offsets = match spec.needs {
            Needs::Nothing => false,
            Needs::SocketOffsets => offsets.valid != 1,
            Needs::FileOffsets => offsets.files_valid != 1,
        };
        let result = if missing_offsets {
            Err("kernel struct offsets could not be resolved from BTF".to_owned())
        } else {
            attach(&mut ebpf, spec, &btf, &cgroup).map_err(|e| {
                let mut text = error_text(e.as_ref());
                if let Some(running) = kernel
                    && running < spec.min_kernel
                {
                    let (major, minor) = spec.min_kernel;
                    text.push_str(&format!(
                        " (the hook needs Linux {major}.{minor} or later; this kernel is {}.{})",
                        running.0, running.1
                    ));
                }
                text
            })
        };
        let (state, error) = match result {
            Ok(()) => {
                *live.entry(spec.capability).or_default() += 1;
                tracing::info!(probe = spec.program, hook = %attach_point, "probe live");
                (ProbeState::Live, None)
            }
            Err(error) => {
                tracing::warn!(probe = spec.program, hook = %attach_point, %error, "probe not loaded");
                (ProbeState::Failed, Some(error))
            }
        };
        statuses.push(ProbeStatus {
            program: spec.program,
            attach_point,
            capability: spec.capability,
            state,
            error,
        });
    }
    for capability in Capability::REQUIRED {
        if !live.contains_key(&capability) {
            let failures = statuses
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
                .join("; ");
            return Err(ProbeError::Required {
                capability,
                failures,
            });
        }
    }
    Ok(Probes { ebpf, statuses })
}

/// The running kernel's (major, minor), from uname.
fn kernel_version() -> Option<(u32, u32)> {
    let release = nix::sys::utsname::uname().ok()?;
    let release = release.release().to_str()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Full text of an error chain; aya's load errors carry the verifier log.
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn attach(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: &Btf,
    cgroup: &File,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let program = ebpf
        .program_mut(spec.program)
        .ok_or(ProbeError::MissingProgram {
            program: spec.program,
        })?;
    match spec.hook {
        Hook::CgroupSockAddr => {
            let program: &mut CgroupSockAddr = program.try_into()?;
            program.load()?;
            // Link-based cgroup attachment (kernel >= 5.7) must pass no flags; links always coexist
            // with other programs on the same cgroup.
            program.attach(cgroup, CgroupAttachMode::Single)?;
        }
        Hook::CgroupSkb { ingress } => {
            let program: &mut CgroupSkb = program.try_into()?;
            program.load()?;
            let direction = if ingress {
                CgroupSkbAttachType::Ingress
            } else {
                CgroupSkbAttachType::Egress
            };
            program.attach(cgroup, direction, CgroupAttachMode::Single)?;
        }
        Hook::TpBtf(name) => {
            let program: &mut BtfTracePoint = program.try_into()?;
            program.load(name, btf)?;
            program.attach()?;
        }
        Hook::TracePoint(category, name) => {
            crate::preflight::ensure_tracefs()?;
            let program: &mut TracePoint = program.try_into()?;
            program.load()?;
            program.attach(category, name)?;
        }
    }
    Ok(())
}
