//! The report as one self-contained HTML page: inline CSS and SVG charts (violations and
//! operations over time per tenant pair), no script, no network; it opens offline.
use std::fmt::Write as _;

use super::{Report, Series, Timeline};
use crate::evidence::history::breach::{tenant_label, tier_label};

const COLOURS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 760.0;
const H: f64 = 220.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 34.0;
const PAD_T: f64 = 12.0;

/// Escapes text for HTML and SVG.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A line chart of one count per tenant pair over the timeline, with axes and a legend.
fn chart(title: &str, timeline: &Timeline, pick: fn(&Series) -> &Vec<u64>) -> String {
    let series: Vec<(&String, &Vec<u64>)> = timeline
        .pairs
        .iter()
        .map(|(pair, s)| (pair, pick(s)))
        .filter(|(_, v)| v.iter().any(|&n| n > 0))
        .collect();
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let buckets = timeline
        .pairs
        .values()
        .next()
        .map_or(1, |s| s.operations.len())
        .max(2);
    let (plot_w, plot_h) = (W - PAD_L - 10.0, H - PAD_T - PAD_B);
    let x = |i: usize| PAD_L + plot_w * i as f64 / (buckets - 1) as f64;
    let y = |n: u64| PAD_T + plot_h * (1.0 - n as f64 / max as f64);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" viewBox="0 0 {W} {}" role="img" aria-label="{}">"##,
        esc(title),
        H + 22.0 * series.len().div_ceil(3) as f64,
        H + 22.0 * series.len().div_ceil(3) as f64,
        esc(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>"##
    );
    for k in 0..=4u64 {
        let value = max * k / 4;
        let _ = write!(
            svg,
            r##"<line x1="{PAD_L}" x2="{}" y1="{y}" y2="{y}" stroke="#e4e4e4"/><text x="{}" y="{}" font-size="11" text-anchor="end">{value}</text>"##,
            W - 10.0,
            PAD_L - 6.0,
            y(value) + 4.0,
            y = y(value)
        );
    }
    let end = timeline.start.0 + (timeline.bucket_s * 1e9 * buckets as f64) as i64;
    for (label, at, anchor) in [
        (timeline.start.rfc3339(), PAD_L, "start"),
        (
            crate::model::clock::UnixNanos(end).rfc3339(),
            W - 10.0,
            "end",
        ),
    ] {
        let _ = write!(
            svg,
            r##"<text x="{at}" y="{}" font-size="11" text-anchor="{anchor}">{}</text>"##,
            H - PAD_B + 16.0,
            esc(label.get(..19).unwrap_or(&label))
        );
    }
    if series.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="14" text-anchor="middle" fill="#666">none in this period</text>"##,
            PAD_L + plot_w / 2.0,
            PAD_T + plot_h / 2.0
        );
    }
    for (n, (pair, values)) in series.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let (lx, ly) = (
            PAD_L + 240.0 * (n % 3) as f64,
            H + 4.0 + 22.0 * (n / 3) as f64,
        );
        let total: u64 = values.iter().sum();
        let _ = write!(
            svg,
            r##"<rect x="{lx}" y="{ly}" width="14" height="14" fill="{colour}"/><text x="{}" y="{}" font-size="12">{} ({total})</text>"##,
            lx + 20.0,
            ly + 12.0,
            esc(pair)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn row(cells: &[String]) -> String {
    let mut out = String::from("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>");
    out
}

fn table(head: &[&str], rows: &[String]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table>");
    out
}

/// Renders `report` as a self-contained HTML page.
pub(crate) fn render(report: &Report) -> String {
    let v = &report.violations;
    let mut body = String::new();
    let verdict = if v.violations_total == 0 { "ok" } else { "bad" };
    let _ = write!(
        body,
        r#"<h1>Seam isolation report</h1><p class="meta">{} to {} · store <code>{}</code> · rules <code>{}</code> · generated {}</p><p class="verdict {verdict}"><b>{}</b> operations validated, <b>{}</b> violations across <b>{}</b> tenant pair(s)</p>"#,
        esc(&report.period.from.rfc3339()),
        esc(&report.period.until.rfc3339()),
        esc(&report.store),
        esc(report.rules_sha256.as_deref().unwrap_or("(unhashed)")),
        esc(&report.generated.rfc3339()),
        report.operations,
        v.violations_total,
        v.tenant_pairs.len()
    );
    body.push_str(&chart(
        "Violations over time per tenant pair",
        &report.timeline,
        |s| &s.violations,
    ));
    body.push_str(&chart(
        "Operations over time per tenant pair",
        &report.timeline,
        |s| &s.operations,
    ));

    body.push_str("<h2>Operations per tenant history and tier</h2>");
    let rows: Vec<String> = report
        .operations_by_history
        .iter()
        .map(|o| {
            let tiers: Vec<String> = o.by_tier.iter().map(|(t, n)| format!("{t}: {n}")).collect();
            row(&[esc(&o.history), o.total.to_string(), esc(&tiers.join(", "))])
        })
        .collect();
    body.push_str(&table(&["History", "Operations", "By tier"], &rows));

    body.push_str("<h2>Violations</h2>");
    let rows: Vec<String> = v
        .tenant_pairs
        .iter()
        .map(|p| {
            let rules: Vec<String> = p.by_rule.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            row(&[
                esc(&p.from),
                esc(&p.to),
                p.count.to_string(),
                p.first.map(|t| t.rfc3339()).unwrap_or_default(),
                p.last.map(|t| t.rfc3339()).unwrap_or_default(),
                esc(&rules.join(", ")),
            ])
        })
        .collect();
    body.push_str(&table(
        &["From", "To", "Count", "First", "Last", "By rule"],
        &rows,
    ));
    let tiers: Vec<String> = v.by_tier.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    let _ = write!(body, "<p>By tier: {}</p>", esc(&tiers.join(", ")));
    if !v.violations_complete {
        let _ = write!(
            body,
            "<p>The earliest {} of {} violations:</p>",
            v.violations.len(),
            v.violations_total
        );
    }
    let rows: Vec<String> = v
        .violations
        .iter()
        .map(|x| {
            row(&[
                esc(&x.time.rfc3339()),
                esc(&x.rule_id),
                x.severity.to_string(),
                esc(&tenant_label(x.intended_tenant.as_ref())),
                esc(&tenant_label(x.actual_tenant.as_ref())),
                tier_label(x.tier).to_owned(),
                format!("<code>{}</code>", x.trace_id),
                esc(&x.message),
            ])
        })
        .collect();
    body.push_str(&table(
        &[
            "Time", "Rule", "Severity", "From", "To", "Tier", "Trace", "What",
        ],
        &rows,
    ));

    body.push_str("<h2>Agent runs and hooks</h2>");
    let rows: Vec<String> = report
        .runs
        .iter()
        .map(|r| {
            row(&[
                esc(&r.node),
                esc(&r.version),
                esc(&r.started.rfc3339()),
                r.stopped
                    .map_or_else(|| "no stop mark".to_owned(), |t| esc(&t.rfc3339())),
                esc(&r.last_seen.rfc3339()),
                esc(&r.live_hooks.join(", ")),
            ])
        })
        .collect();
    body.push_str(&table(
        &[
            "Node",
            "Version",
            "Started",
            "Stopped",
            "Last seen",
            "Hooks live",
        ],
        &rows,
    ));

    body.push_str("<h2>Key epochs used</h2>");
    let rows: Vec<String> = report
        .key_epochs
        .iter()
        .map(|e| row(&[esc(&e.history), e.epoch.to_string(), esc(&e.state)]))
        .collect();
    body.push_str(&table(&["History", "Epoch", "Key state now"], &rows));

    body.push_str("<h2>Gaps in the evidence</h2><ul>");
    let g = &report.gaps;
    for d in &g.downtime {
        let _ = write!(
            body,
            "<li><b>Agent downtime</b> {} to {} ({:.0} s): {}</li>",
            esc(&d.from.rfc3339()),
            esc(&d.until.rfc3339()),
            d.seconds,
            esc(d.reason)
        );
    }
    for l in &g.losses {
        let _ = write!(
            body,
            "<li><b>Lost</b> {}: {}</li>",
            esc(&l.time.rfc3339()),
            esc(&l.message)
        );
    }
    for s in &g.store_gaps {
        let _ = write!(
            body,
            "<li><b>Store gap</b> in {}'s history: {} record(s) not written ({})</li>",
            esc(s.tenant.as_deref().unwrap_or("the node")),
            s.records,
            s.reason.as_str()
        );
    }
    for i in &g.read_issues {
        let _ = write!(body, "<li><b>Read issue</b> {}</li>", esc(&i.to_string()));
    }
    if g.downtime.is_empty()
        && g.losses.is_empty()
        && g.store_gaps.is_empty()
        && g.read_issues.is_empty()
    {
        body.push_str("<li>None: the agent observed the whole period and every record was kept and read.</li>");
    }
    body.push_str("</ul>");
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Seam isolation report</title><style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}}
h1{{margin:0 0 4px}} .meta{{color:#555;margin:0 0 12px}} code{{font-size:12px}}
.verdict{{font-size:18px;padding:8px 12px;border-radius:6px}} .ok{{background:#e6f4ea}} .bad{{background:#fde8e8}}
figure{{margin:16px 0}} figcaption{{font-weight:600;margin-bottom:4px}}
table{{border-collapse:collapse;margin:8px 0 16px;font-size:13px}} th,td{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}} th{{background:#f3f3f3}}
</style></head><body>{body}</body></html>
"#
    )
}
