//! docs/span-attributes.md must be what the catalogue generates.
use std::path::Path;

use crate::policy::lang::doc::span_attributes_markdown;

#[test]
fn span_attributes_doc_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/span-attributes.md");
    let generated = span_attributes_markdown();
    if std::env::var_os("SEAM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from the span catalogue (agent/src/model/catalogue.rs); regenerate it with\n  \
         SEAM_BLESS=1 cargo test --release -p seam --lib span_attributes_doc",
        path.display()
    );
}
