//! Loading and attaching one row of the probe table, unloading it again, and what to say when
//! the kernel refuses it (the verifier log, the kernel version the hook needs).
use std::{fs::File, time::Instant};

use aya::{
    Btf, Ebpf,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, FEntry,
        FExit, KProbe, Lsm, TracePoint,
    },
};
use seam_common::KernelOffsets;

use super::{Hook, Needs, ProbeError, ProbeSpec, ProbeState, ProbeStatus};

/// Loads and attaches one row, recording the outcome in `status`.
pub(super) fn try_row(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    status: &mut ProbeStatus,
    offsets: &KernelOffsets,
    btf: &Btf,
    cgroup: &File,
) {
    let missing_offsets = match spec.needs {
        Needs::Nothing => false,
        Needs::SocketOffsets => offsets.valid != 1,
        Needs::FileOffsets => offsets.files_valid != 1,
        Needs::SocketSk => offsets.valid != 1 || offsets.socket_sk == 0,
        Needs::SyscallRecords => offsets.files_valid != 1 || offsets.syscall_ret == 0,
        Needs::SyscallRegisters => offsets.files_valid != 1 || offsets.regs_valid != 1,
    };
    if missing_offsets {
        status.state = ProbeState::Failed;
        status.error = Some("kernel struct offsets could not be resolved from BTF".to_owned());
        return;
    }
    let started = Instant::now();
    let result = attach(ebpf, spec, btf, cgroup, &mut status.loaded);
    status.load_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    match result {
        Ok(()) => status.attached = true,
        Err(error) => {
            let mut error = error_text(error.as_ref());
            if let Some(running) = kernel_version()
                && running < spec.min_kernel
            {
                let (major, minor) = spec.min_kernel;
                error.push_str(&format!(
                    " (the hook needs Linux {major}.{minor} or later; this kernel is {}.{})",
                    running.0, running.1
                ));
            }
            tracing::warn!(probe = spec.program, hook = %status.attach_point, %error, "probe not loaded");
            status.state = ProbeState::Failed;
            status.error = Some(error);
        }
    }
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

/// Loads and attaches one program; `loaded` is set once the verifier accepted it.
fn attach(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: &Btf,
    cgroup: &File,
    loaded: &mut bool,
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
            *loaded = true;
            // Link-based cgroup attachment (kernel >= 5.7) must pass no flags; links always coexist
            // with other programs on the same cgroup.
            program.attach(cgroup, CgroupAttachMode::Single)?;
        }
        Hook::CgroupSkb { ingress } => {
            let program: &mut CgroupSkb = program.try_into()?;
            program.load()?;
            *loaded = true;
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
            *loaded = true;
            program.attach()?;
        }
        Hook::TracePoint(category, name) => {
            crate::kernel::preflight::ensure_tracefs()?;
            let program: &mut TracePoint = program.try_into()?;
            program.load()?;
            *loaded = true;
            program.attach(category, name)?;
        }
        Hook::Lsm(name) => {
            let program: &mut Lsm = program.try_into()?;
            program.load(name, btf)?;
            *loaded = true;
            program.attach()?;
        }
        Hook::FEntry(function) => {
            let program: &mut FEntry = program.try_into()?;
            program.load(function, btf)?;
            *loaded = true;
            program.attach()?;
        }
        Hook::FExit(function) => {
            let program: &mut FExit = program.try_into()?;
            program.load(function, btf)?;
            *loaded = true;
            program.attach()?;
        }
        Hook::KProbe(function) => {
            let program: &mut KProbe = program.try_into()?;
            program.load()?;
            *loaded = true;
            program.attach(function, 0)?;
        }
    }
    Ok(())
}

/// Detaches and unloads one program (a member of an incomplete tier).
pub(super) fn unload(ebpf: &mut Ebpf, spec: &ProbeSpec) {
    let Some(program) = ebpf.program_mut(spec.program) else {
        return;
    };
    let result = match spec.hook {
        Hook::CgroupSockAddr => <&mut CgroupSockAddr>::try_from(program).map(|p| p.unload()),
        Hook::CgroupSkb { .. } => <&mut CgroupSkb>::try_from(program).map(|p| p.unload()),
        Hook::TpBtf(_) => <&mut BtfTracePoint>::try_from(program).map(|p| p.unload()),
        Hook::TracePoint(..) => <&mut TracePoint>::try_from(program).map(|p| p.unload()),
        Hook::Lsm(_) => <&mut Lsm>::try_from(program).map(|p| p.unload()),
        Hook::FEntry(_) => <&mut FEntry>::try_from(program).map(|p| p.unload()),
        Hook::FExit(_) => <&mut FExit>::try_from(program).map(|p| p.unload()),
        Hook::KProbe(_) => <&mut KProbe>::try_from(program).map(|p| p.unload()),
    };
    if let Err(error) | Ok(Err(error)) = result {
        tracing::warn!(probe = spec.program, %error, "cannot unload probe of an incomplete tier");
    }
}
