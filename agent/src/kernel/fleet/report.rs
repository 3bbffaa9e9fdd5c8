//! The text form of a fleet report: one row per node with the tier of each capability, then
//! every shortfall in words.
use std::fmt::{self, Write as _};

use super::{FleetReport, Shortfall, Tier};
use crate::kernel::probes::{Capability, ProgramType};

/// Column heading of a capability.
fn heading(capability: Capability) -> &'static str {
    match capability {
        Capability::ConnectIntent => "connect",
        Capability::UdpSend => "udp",
        Capability::TcpEnds => "tcp",
        Capability::TrafficIn => "in",
        Capability::TrafficOut => "out",
        Capability::ProcessExec => "exec",
        Capability::ProcessExit => "exit",
        Capability::FileAccess => "file",
    }
}

/// Cell text of a tier: its program type, and its rank when it is a stand-in (`skb:1`).
fn tier(tier: Option<Tier>) -> String {
    let Some(tier) = tier else {
        return "-".to_owned();
    };
    let name = match tier.program_type {
        ProgramType::CgroupSockAddr => "cgroup",
        ProgramType::CgroupSkb => "skb",
        ProgramType::TpBtf => "tp_btf",
        ProgramType::Tracepoint => "tracepoint",
        ProgramType::Lsm => "lsm",
        ProgramType::Fentry => "fentry",
        ProgramType::Fexit => "fexit",
        ProgramType::Kprobe => "kprobe",
    };
    if tier.rank == 0 {
        name.to_owned()
    } else {
        format!("{name}:{}", tier.rank)
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::WorseTier {
                capability,
                tier: current,
                best,
                reductions,
            } => {
                write!(
                    f,
                    "{capability:?} runs on {} where other nodes have {}",
                    tier(*current),
                    tier(Some(*best))
                )?;
                if !reductions.is_empty() {
                    let names: Vec<String> = reductions.iter().map(|r| format!("{r:?}")).collect();
                    write!(f, " (reduced: {})", names.join(", "))?;
                }
                Ok(())
            }
            Shortfall::MissingHooks {
                capability,
                missing,
            } => write!(
                f,
                "{capability:?} lacks hooks other nodes on its tier have: {}",
                missing.join(", ")
            ),
            Shortfall::MissingBtf => write!(
                f,
                "no kernel BTF: tp_btf, LSM, fentry and fexit probes and the BTF offsets are unavailable"
            ),
            Shortfall::KernelTooOld { release, minimum } => {
                write!(
                    f,
                    "kernel {release} is older than the policy minimum {minimum}"
                )
            }
            Shortfall::KernelNotAllowed { release } => {
                write!(f, "kernel {release} is not in the allowed kernels")
            }
            Shortfall::RulesDrift { hash, expected } => write!(
                f,
                "rules {} differ from the fleet's {}",
                hash.as_deref().map_or("(none)", short),
                expected.as_deref().map_or("(none)", short)
            ),
            Shortfall::ProbeObjectDrift { hash, expected } => write!(
                f,
                "probe object {} differs from the fleet's {} (another Seam build)",
                short(hash),
                short(expected)
            ),
        }
    }
}

/// Renders the report as a table followed by the shortfalls and a verdict line.
pub(crate) fn render_text(report: &FleetReport) -> String {
    let mut header = vec!["node".to_owned(), "kernel".to_owned()];
    header.extend(Capability::ALL.iter().map(|c| heading(*c).to_owned()));
    header.push("verdict".to_owned());
    let mut rows = vec![header];
    for node in &report.nodes {
        let mut row = vec![node.node.clone(), node.kernel.clone()];
        row.extend(
            Capability::ALL
                .iter()
                .map(|c| tier(node.tiers.get(c).copied().flatten())),
        );
        row.push(if node.shortfalls.is_empty() {
            "ok".to_owned()
        } else {
            format!("SHORT ({})", node.shortfalls.len())
        });
        rows.push(row);
    }
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    for node in &report.nodes {
        for shortfall in &node.shortfalls {
            let _ = writeln!(out, "{}: {shortfall}", node.node);
        }
    }
    let short = report
        .nodes
        .iter()
        .filter(|n| !n.shortfalls.is_empty())
        .count();
    let _ = writeln!(
        out,
        "(a cell is the live tier's program type; `:N` marks a stand-in of rank N, `-` none)"
    );
    let _ = if short == 0 {
        writeln!(
            out,
            "uniform: {} node(s) give the same guarantees",
            report.nodes.len()
        )
    } else {
        writeln!(
            out,
            "not uniform: {short} of {} node(s) fall short",
            report.nodes.len()
        )
    };
    out
}
