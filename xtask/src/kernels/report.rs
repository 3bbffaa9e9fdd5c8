//! docs/KERNELS.md from a matrix run: per kernel, the live tier of each capability, the rows
//! that did not load and why (the verifier's last word), what each run flagged and not, and the
//! times (boot, start-up to ready, scenario).
use std::fmt::Write as _;

use serde_json::Value;

use super::{KernelOutcome, Matrix, results::ms};

/// The useful part of a probe error: aya's summary and the verifier's last meaningful line.
pub fn summarize_error(error: &str) -> String {
    let (head, log) = match error.split_once("Verifier output:") {
        Some((head, log)) => (head.trim().trim_end_matches('.'), log),
        None => (error.trim(), ""),
    };
    let last = log
        .lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty()
                && !l.starts_with("verification time")
                && !l.starts_with("processed ")
                && !l.starts_with("stack depth")
                && !l.starts_with(':')
        })
        .unwrap_or("");
    let mut text = head.replace("the BPF_PROG_LOAD syscall returned", "BPF_PROG_LOAD:");
    if !last.is_empty() {
        text.push_str(" — verifier: ");
        text.push_str(last);
    }
    text.replace('|', "\\|").chars().take(220).collect()
}

fn flagged(ok: bool) -> &'static str {
    if ok { "flagged" } else { "**missed**" }
}

fn kernel_section(out: &mut String, k: &KernelOutcome) {
    let fp = k.fingerprint.as_ref().unwrap_or(&Value::Null);
    let _ = writeln!(out, "## {}\n\n{}\n", k.name, k.description);
    let release = fp["kernel"]["release"].as_str().unwrap_or("?");
    let lsms = fp["lsm"]["active"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        out,
        "- kernel `{release}` ({}), BTF {}, cgroup {}, LSMs `{lsms}`",
        if k.source.is_empty() { "?" } else { &k.source },
        if fp["btf"]["present"] == true {
            "present"
        } else {
            "missing"
        },
        fp["cgroup"]["mode"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "- boot to `/init`: {}, whole target (boot, fingerprint, runs): {:.1} s, \
         fingerprint (load and attach every row): {} ms\n",
        k.boot.map_or("n/a (native)".to_owned(), |b| format!(
            "{:.1} s",
            b.as_secs_f64()
        )),
        k.wall.as_secs_f64(),
        fp["load_ms"].as_u64().map_or("?".into(), |v| v.to_string()),
    );
    if let Some(caps) = fp["capabilities"].as_object() {
        let _ = writeln!(
            out,
            "| capability | live tier | hooks | reduced guarantee |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for (capability, live) in caps {
            let hooks: Vec<&str> = live["hooks"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let shown = if hooks.len() > 4 {
                format!("{} (+{} more)", hooks[..4].join(", "), hooks.len() - 4)
            } else {
                hooks.join(", ")
            };
            let reductions: Vec<&str> = live["reductions"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {capability} | {} (rank {}) | {shown} | {} |",
                live["program_type"].as_str().unwrap_or("**none**"),
                live["rank"].as_u64().map_or("-".into(), |r| r.to_string()),
                if reductions.is_empty() {
                    "-".into()
                } else {
                    reductions.join(", ")
                },
            );
        }
        out.push('\n');
    }
    if let Some(rows) = fp["rows"].as_array() {
        let failed: Vec<&Value> = rows.iter().filter(|r| r["state"] == "failed").collect();
        if !failed.is_empty() {
            let _ = writeln!(out, "Rows that do not load or attach here:\n");
            let _ = writeln!(out, "| row | attach point | loaded | error |");
            let _ = writeln!(out, "|---|---|---|---|");
            for r in failed {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    r["program"].as_str().unwrap_or("?"),
                    r["attach_point"].as_str().unwrap_or("?"),
                    if r["loaded"] == true { "yes" } else { "no" },
                    summarize_error(r["error"].as_str().unwrap_or("")),
                );
            }
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "| run | probes disabled | start-up to ready | scenario | file on | connect on | \
         TCP A→B | UDP A→B | B's files (ops flagged) | failed open under B (ENOENT) | \
         read of B's file Landlock refused | same-tenant A→A, own file |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (run, disabled) in &k.runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} ms | {} ms | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.name,
            if disabled.is_empty() {
                "-".to_owned()
            } else {
                format!("{} rows", disabled.len())
            },
            run.ready_ms.map_or("?".into(), |v| v.to_string()),
            run.scenario_ms.map_or("?".into(), |v| v.to_string()),
            run.file_tier().unwrap_or_else(|| "none".into()),
            run.connect_tier().unwrap_or_else(|| "none".into()),
            flagged(run.tcp_crossing),
            flagged(run.udp_crossing),
            if run.b_ops.is_empty() {
                "**missed**".to_owned()
            } else {
                run.b_ops.iter().cloned().collect::<Vec<_>>().join(", ")
            },
            if run.failed_attempt_flagged {
                "flagged"
            } else {
                "unseen"
            },
            run.refused_outcome
                .as_deref()
                .map_or("unseen".to_owned(), |o| format!("flagged, outcome {o}")),
            if run.same_tenant_flagged.is_empty() {
                "not flagged"
            } else {
                "**flagged**"
            },
        );
    }
    out.push('\n');
    if !k.failures.is_empty() {
        let _ = writeln!(out, "**Failures:**\n");
        for f in &k.failures {
            let first = f.lines().next().unwrap_or("");
            let _ = writeln!(out, "- {first}");
        }
        out.push('\n');
    }
}

/// The whole document; `fleet` is `seam fleet-check`'s table of the matrix's fingerprints.
pub fn markdown(matrix: &Matrix, fleet: &str) -> String {
    let mut out = String::from(
        "# Kernel matrix\n\n\
         Written by `cargo xtask kernels` (do not edit by hand). Each Debian kernel boots under \
         QEMU/TCG into an initramfs with busybox and `seam`; the host's kernel runs the same \
         scenario natively. Each target runs `seam fingerprint` (every probe row loaded and \
         attached), then `seam run` once per run: the best tiers (`default`) and, where they \
         exist, each stand-in forced by disabling the tiers above it (`fexit`: no LSM file rows \
         and no cgroup connect hooks; `kprobe`: no LSM or fexit file rows, no cgroup or LSM \
         connect). Every run must flag the TCP and UDP crossings A→B and A's read, truncate, \
         rename and unlink of B's files, and must not flag A→A or A's own file. A failed open under B's path (ENOENT) must be \
         flagged on syscall tracepoints and is unseen on the security hooks: their reduced \
         guarantee, observed. A read of B's file that Landlock refuses must be reported denied \
         on tracepoints and fexit, as an access (outcome ok) on kprobes, and is unseen on BPF \
         LSM, which the kernel calls after Landlock. Times under QEMU are TCG (emulated) times.\n\n",
    );
    let _ = writeln!(
        out,
        "| kernel | result | file access | connect intent | traffic out | boot | start-up to ready (default run) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for k in &matrix.kernels {
        let fp = k.fingerprint.as_ref().unwrap_or(&Value::Null);
        let tier = |c: &str| {
            fp["capabilities"][c]["program_type"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        };
        let default = k.runs.iter().find(|(r, _)| r.name == "default");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            k.name,
            if k.failures.is_empty() {
                "pass"
            } else {
                "**FAIL**"
            },
            tier("file_access"),
            tier("connect_intent"),
            tier("traffic_out")
                + if fp["capabilities"]["traffic_out"]["rank"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0
                {
                    " (compat)"
                } else {
                    ""
                },
            k.boot
                .map_or("native".to_owned(), |b| format!("{:.1} s", b.as_secs_f64())),
            default
                .and_then(|(r, _)| r.ready_ms)
                .map_or("?".into(), |v| format!("{v} ms")),
        );
    }
    let _ = writeln!(
        out,
        "\nWhole matrix: {:.0} s ({} ms).\n",
        matrix.total.as_secs_f64(),
        ms(matrix.total)
    );
    if !fleet.trim().is_empty() {
        let _ = writeln!(
            out,
            "`seam fleet-check target/kernels/fingerprints` (each kernel as a node):\n\n```text\n{}```\n",
            fleet
        );
    }
    for k in &matrix.kernels {
        kernel_section(&mut out, k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_errors_are_summarized_to_their_last_word() {
        let error = "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier \
                     output: 0: R1=ctx() R10=fp0\n561: (85) call bpf_get_current_uid_gid#15\n\
                     program of this type cannot use helper bpf_get_current_uid_gid#15\n\
                     verification time 26842 usec\nstack depth 264+0\n\
                     processed 753 insns (limit 1000000)\n: Invalid argument (os error 22)";
        assert_eq!(
            summarize_error(error),
            "BPF_PROG_LOAD: Invalid argument (os error 22) — verifier: program of this type \
             cannot use helper bpf_get_current_uid_gid#15"
        );
        assert_eq!(summarize_error("plain | error"), "plain \\| error");
    }
}
