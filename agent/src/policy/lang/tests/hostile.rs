//! Hostile rule text: arbitrary input, deep nesting and huge expressions give an error or a
//! rule, never a panic or a stack overflow.
use proptest::prelude::*;

use crate::policy::lang::{ExprError, parse};

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for depth in [100, 10_000, 100_000] {
        let parens = format!(
            "trace.has(net.connect).where({}tenant == null{})",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let err = parse(&parens).unwrap_err();
        assert!(
            matches!(err, ExprError::TooComplex { .. }),
            "depth {depth}: {err}"
        );
        let nots = format!(
            "trace.has(net.connect).where({}tenant == null)",
            "not ".repeat(depth)
        );
        let err = parse(&nots).unwrap_err();
        assert!(
            matches!(err, ExprError::TooComplex { .. }),
            "depth {depth}: {err}"
        );
    }
}

#[test]
fn huge_flat_expressions_are_refused() {
    let terms = vec!["tenant == null"; 600].join(" or ");
    let err = parse(&format!("trace.has(net.connect).where({terms})")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the expression has 513 and/or terms; at most 512 are allowed"
    );
    let long = format!(
        "trace.has(net.connect).where(tenant == \"{}\")",
        "x".repeat(20_000)
    );
    assert!(matches!(
        parse(&long),
        Err(ExprError::TooComplex { what: "bytes", .. })
    ));
    // Words that merely contain `or`, `and` or `not`, and strings holding them, do not count.
    let words = vec!["process.comm == \"(not and or [\""; 40].join(" or ");
    parse(&format!("trace.has(*).where({words})")).unwrap();
}

#[test]
fn moderate_nesting_still_parses() {
    let parens = format!(
        "trace.has(net.connect).where({}tenant == null{})",
        "(".repeat(16),
        ")".repeat(16)
    );
    parse(&parens).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = parse(&text);
    }

    /// Text built from the language's own tokens reaches deeper into the parser.
    #[test]
    fn arbitrary_token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(vec![
        "trace.has(", "net.connect", "file.*", ")", ".where(", "(", "and", "or", "not", "==",
        "!=", "<", ">=", "in", "[", "]", ",", "\"x\"", "1", "-9223372036854775809", "null",
        "true", "tenant", "peer.port", "attr(\"k\")", "starts_with", "contains", "matches",
        "trace.count(", "> 3", ".window(\"1m\")", ".group_by(tenant)", "\"", "\\",
    ]), 0..40)) {
        let _ = parse(&tokens.join(" "));
    }
}
