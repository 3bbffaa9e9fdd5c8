//! `docs/span-attributes.md`, generated from the catalogue. A unit test fails when the
//! checked-in file differs; `SEAM_BLESS=1 cargo test -p seam --lib span_attributes_doc`
//! rewrites it.

use std::fmt::Write as _;

use crate::model::catalogue::{Attr, Family, SpanName};

/// The Markdown reference of every span name and attribute.
pub(crate) fn span_attributes_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated from agent/src/model/catalogue.rs; do not edit. Regenerate with\n     \
         SEAM_BLESS=1 cargo test -p seam --lib span_attributes_doc -->\n\
         # Span names and attributes\n\n\
         Rules select spans with `trace.has(<span name>)` and test their attributes in\n\
         `.where(...)` (see [rules.md](rules.md#expressions)). `trace.has(net.*)`,\n\
         `trace.has(file.*)` and `trace.has(*)` select a family or every span; a condition\n\
         may then only use attributes every selected span carries. Any attribute may be\n\
         `null` when the span does not know it.\n\n\
         ## Span names\n\n\
         | Span | Family | What |\n|---|---|---|\n",
    );
    for s in SpanName::ALL {
        let _ = writeln!(out, "| `{s}` | {} | {} |", s.family().kind(), s.doc());
    }
    for (family, title) in [
        (
            Family::Common,
            "Common attributes (every span: the acting process)",
        ),
        (
            Family::Network,
            "Network attributes (`net.connect`, `net.flow`)",
        ),
        (Family::File, "File attributes (`file.*`)"),
        (Family::Process, "Process attributes (`process.exec`)"),
        (
            Family::App,
            "Application attributes (`app.*`; they also carry the `peer.*` attributes)",
        ),
    ] {
        let _ = write!(
            out,
            "\n## {title}\n\n| Attribute | Type | Meaning |\n|---|---|---|\n"
        );
        for a in Attr::ALL.iter().filter(|a| a.family() == family) {
            let _ = writeln!(out, "| `{a}` | {} | {} |", a.ty().describe(), a.doc());
        }
    }
    out.push_str(
        "\n## Comparisons\n\n\
         - `==` / `!=`: `null == null` holds, `null` equals nothing else, `!=` is the negation\n  \
           of `==` (so `peer.tenant != tenant` holds when exactly one of them is `null`:\n  \
           write `x != null and ...` to require both).\n\
         - `<`, `<=`, `>`, `>=`: ints only; false when a side is `null`.\n\
         - `in [...]`: equal to one of the values; for addresses, the list may hold CIDR\n  \
           networks (`peer.addr in [\"10.0.0.0/8\", \"fd00::/8\"]`).\n\
         - `starts_with`, `contains`: strings only; false when a side is `null`.\n\
         - A bool attribute alone is a condition (`not peer.shared`); `null` counts as false.\n\
         - Addresses compare as addresses: `\"::ffff:10.0.0.1\"` equals `\"10.0.0.1\"`.\n",
    );
    out
}
