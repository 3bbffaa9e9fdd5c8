//! The report as Markdown: the same sections as the HTML page, as tables.
use std::fmt::Write as _;

use super::Report;
use crate::evidence::history::breach::tenant_label;

/// `|` and newlines would break a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn opt_time(t: Option<crate::model::clock::UnixNanos>) -> String {
    t.map_or_else(|| "—".to_owned(), |t| t.rfc3339())
}

/// Renders `report` as Markdown.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    let v = &report.violations;
    let _ = writeln!(out, "# Seam isolation report\n");
    let _ = writeln!(
        out,
        "Period **{}** to **{}**, store `{}`, rules `{}`, generated {}.\n",
        report.period.from,
        report.period.until,
        cell(&report.store),
        report.rules_sha256.as_deref().unwrap_or("(unhashed)"),
        report.generated
    );
    let _ = writeln!(
        out,
        "**{} operations validated, {} violations** ({} tenant pair(s); first {}, last {}).\n",
        report.operations,
        v.violations_total,
        v.tenant_pairs.len(),
        opt_time(v.first),
        opt_time(v.last)
    );

    let _ = writeln!(out, "## Operations per tenant history and tier\n");
    let _ = writeln!(out, "A crossing is counted in both tenants' histories.\n");
    let _ = writeln!(out, "| History | Total | By tier |\n|---|---:|---|");
    for ops in &report.operations_by_history {
        let tiers: Vec<String> = ops
            .by_tier
            .iter()
            .map(|(t, n)| format!("{t}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            cell(&ops.history),
            ops.total,
            tiers.join(", ")
        );
    }

    let _ = writeln!(out, "\n## Violations\n");
    if v.violations_total == 0 {
        let _ = writeln!(out, "None.");
    } else {
        let _ = writeln!(
            out,
            "| From | To | Count | First | Last | By rule |\n|---|---|---:|---|---|---|"
        );
        for p in &v.tenant_pairs {
            let rules: Vec<String> = p.by_rule.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&p.from),
                cell(&p.to),
                p.count,
                opt_time(p.first),
                opt_time(p.last),
                rules.join(", ")
            );
        }
        let tiers: Vec<String> = v.by_tier.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        let _ = writeln!(out, "\nBy tier: {}.\n", tiers.join(", "));
        let listed = if v.violations_complete {
            "Every violation".to_owned()
        } else {
            format!(
                "The earliest {} of {} violations",
                v.violations.len(),
                v.violations_total
            )
        };
        let _ = writeln!(out, "{listed}:\n");
        let _ = writeln!(
            out,
            "| Time | Rule | Severity | From | To | Tier | Trace | What |\n|---|---|---|---|---|---|---|---|"
        );
        for x in &v.violations {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | `{}` | {} |",
                x.time,
                cell(&x.rule_id),
                x.severity,
                cell(&tenant_label(x.intended_tenant.as_ref())),
                cell(&tenant_label(x.actual_tenant.as_ref())),
                crate::evidence::history::breach::tier_label(x.tier),
                x.trace_id,
                cell(&x.message)
            );
        }
    }

    let _ = writeln!(out, "\n## Agent runs and hooks\n");
    let _ = writeln!(
        out,
        "| Node | Version | Started | Stopped | Last seen | Hooks live | Rules |\n|---|---|---|---|---|---:|---|"
    );
    for r in &report.runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.node),
            cell(&r.version),
            r.started,
            r.stopped
                .map_or_else(|| "no stop mark".to_owned(), |t| t.rfc3339()),
            r.last_seen,
            r.live_hooks.len(),
            r.rules_sha256
                .iter()
                .map(|h| h.get(..12).unwrap_or(h))
                .collect::<Vec<_>>()
                .join(" → ")
        );
    }
    let _ = writeln!(out, "\nHooks live: {}.", report.hooks_live.join(", "));

    let _ = writeln!(out, "\n## Key epochs used\n");
    let _ = writeln!(out, "| History | Epoch | Key state now |\n|---|---:|---|");
    for e in &report.key_epochs {
        let _ = writeln!(out, "| {} | {} | {} |", cell(&e.history), e.epoch, e.state);
    }

    let g = &report.gaps;
    let _ = writeln!(out, "\n## Gaps in the evidence\n");
    let nothing = g.downtime.is_empty()
        && g.losses.is_empty()
        && g.store_gaps.is_empty()
        && g.read_issues.is_empty()
        && g.undecodable_records == 0;
    if nothing {
        let _ = writeln!(
            out,
            "None: the agent observed the whole period and every record was kept and read."
        );
    }
    for d in &g.downtime {
        let _ = writeln!(
            out,
            "- **Agent downtime** {} to {} ({:.0} s): {}.",
            d.from, d.until, d.seconds, d.reason
        );
    }
    for l in &g.losses {
        let _ = writeln!(
            out,
            "- **Lost** at {}: {} ({}, {}): {}",
            l.time,
            l.lost,
            l.source,
            cell(&l.probe),
            cell(&l.message)
        );
    }
    for s in &g.store_gaps {
        let _ = writeln!(
            out,
            "- **Store gap** in {}'s history: {} record(s) not written ({}) between {} and {}.",
            s.tenant.as_deref().unwrap_or("the node"),
            s.records,
            s.reason.as_str(),
            crate::model::clock::UnixNanos::from_u64(s.from_ns),
            crate::model::clock::UnixNanos::from_u64(s.to_ns)
        );
    }
    for i in &g.read_issues {
        let _ = writeln!(out, "- **Read issue**: {}", cell(&i.to_string()));
    }
    if g.undecodable_records > 0 {
        let _ = writeln!(out, "- **Undecodable records**: {}", g.undecodable_records);
    }
    if g.omitted > 0 {
        let _ = writeln!(
            out,
            "- {} more loss and gap records (see the JSON report).",
            g.omitted
        );
    }
    out
}
