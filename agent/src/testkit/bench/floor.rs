//! `seam workload bench floor --hook H...`: attaches the floor object's empty programs
//! (ebpf/src/floor.rs) on the given hooks and holds them until SIGINT/SIGTERM. The benchmark
//! runs it on the hooks Seam has live: what any program on those hooks costs, measured in the
//! same run as Seam itself.
use std::{fs::File, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock,
        CgroupSockAddr, TracePoint,
    },
};

use crate::kernel::preflight;

#[derive(Debug, clap::Args)]
pub(crate) struct FloorArgs {
    /// Attach point, as Seam reports it (`cgroup/connect4`, `cgroup_skb/ingress`,
    /// `tp_btf/inet_sock_set_state`, `tracepoint/syscalls/sys_enter_openat`, ...).
    #[arg(long = "hook", required = true)]
    hooks: Vec<String>,
    /// Written once every hook is attached.
    #[arg(long)]
    ready_file: PathBuf,
}

/// The floor's object (ebpf/src/floor.rs, built beside the production object by
/// agent/build.rs): only testkit builds embed it.
static FLOOR_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/seam-floor"));

/// The empty programs, loaded: each tp_btf target needs its own copy of the empty program,
/// hence its own load of the object.
fn floor_object() -> Result<Ebpf> {
    EbpfLoader::new()
        .load(FLOOR_OBJECT)
        .context("cannot load the floor's object")
}

/// The empty program for a cgroup hook's attach type.
fn cgroup_program(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "connect4" => "seam_floor_connect4",
        "connect6" => "seam_floor_connect6",
        "sendmsg4" => "seam_floor_sendmsg4",
        "sendmsg6" => "seam_floor_sendmsg6",
        "recvmsg4" => "seam_floor_recvmsg4",
        "recvmsg6" => "seam_floor_recvmsg6",
        "post_bind4" => "seam_floor_post_bind4",
        "post_bind6" => "seam_floor_post_bind6",
        _ => return None,
    })
}

/// Attaches the empty programs and waits for SIGINT or SIGTERM.
pub(crate) fn run(args: &FloorArgs) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().context("cannot block SIGINT/SIGTERM")?;

    let root = preflight::cgroup2_mount()?;
    let cgroup = File::open(&root).with_context(|| format!("open {}", root.display()))?;
    let btf = Btf::from_sys_fs().context("kernel BTF")?;
    // Kept alive (attached) until the end.
    let mut objects = vec![floor_object()?];
    let mut tracepoint_loaded = false;
    for hook in &args.hooks {
        let (kind, rest) = hook.split_once('/').unwrap_or((hook.as_str(), ""));
        match kind {
            "cgroup" if rest.starts_with("post_bind") => {
                let name = cgroup_program(rest).context("unknown cgroup hook")?;
                let program: &mut CgroupSock = program(&mut objects[0], name)?;
                program.load()?;
                program.attach(&cgroup, CgroupAttachMode::Single)?;
            }
            "cgroup" => {
                let name =
                    cgroup_program(rest).with_context(|| format!("no empty program for {hook}"))?;
                let program: &mut CgroupSockAddr = program(&mut objects[0], name)?;
                program.load()?;
                program.attach(&cgroup, CgroupAttachMode::Single)?;
            }
            "cgroup_skb" => {
                let (name, direction) = match rest {
                    "ingress" => ("seam_floor_skb_ingress", CgroupSkbAttachType::Ingress),
                    "egress" => ("seam_floor_skb_egress", CgroupSkbAttachType::Egress),
                    _ => bail!("unknown cgroup_skb hook {hook}"),
                };
                let program: &mut CgroupSkb = program(&mut objects[0], name)?;
                if program.fd().is_err() {
                    program.load()?;
                    program.attach(&cgroup, direction, CgroupAttachMode::Single)?;
                }
            }
            "tp_btf" => {
                let mut object = floor_object()?;
                let program: &mut BtfTracePoint = program(&mut object, "seam_floor_tp_btf")?;
                program.load(rest, &btf)?;
                program.attach()?;
                objects.push(object);
            }
            "tracepoint" => {
                preflight::ensure_tracefs()?;
                let (category, name) = rest.split_once('/').context("tracepoint/CAT/NAME")?;
                let program: &mut TracePoint = program(&mut objects[0], "seam_floor_tracepoint")?;
                if !tracepoint_loaded {
                    program.load()?;
                    tracepoint_loaded = true;
                }
                program.attach(category, name)?;
            }
            _ => bail!("no empty program for hook {hook} on this build"),
        }
        tracing::info!(%hook, "empty program attached");
    }
    std::fs::write(&args.ready_file, args.hooks.join("\n"))
        .with_context(|| format!("write {}", args.ready_file.display()))?;
    mask.wait().context("waiting for SIGINT/SIGTERM")?;
    drop(objects);
    Ok(())
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("{name} is not in the floor's object"))?;
    Ok(program.try_into()?)
}
