//! Property tests: printing and parsing round-trip; compiled evaluation agrees with a
//! reference evaluator written directly over the syntax tree.
use proptest::prelude::*;

use super::fixtures::{Owned, tcp};
use crate::policy::lang::{
    Attr, CompileEnv,
    ast::{CmpOp, Expr, Lit, Operand},
    compile, parse,
};

fn lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        Just(Lit::Null),
        any::<bool>().prop_map(Lit::Bool),
        any::<i64>().prop_map(Lit::Int),
        "[a-z\"\\\\ ]{0,6}".prop_map(Lit::Str),
    ]
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        lit().prop_map(|l| Operand::Lit(l, 0..0)),
        "[a-z]{1,4}(\\.[a-z]{1,4}){0,2}"
            .prop_filter("keyword", |s| {
                ![
                    "and", "or", "not", "in", "null", "true", "false", "contains",
                ]
                .contains(&s.as_str())
                    && !s.starts_with("in.")
            })
            .prop_map(|a| Operand::Attr(a, 0..0)),
    ]
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
    ]
}

fn cond() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (operand(), cmp_op(), operand()).prop_map(|(a, o, b)| Expr::Cmp(a, o, b)),
        (operand(), prop::collection::vec(lit(), 0..3)).prop_map(|(a, l)| Expr::In(
            a,
            l.into_iter().map(|l| (l, 0..0)).collect(),
            0..0
        )),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Expr::Not(Box::new(a), 0..0)),
        ]
    })
}

proptest! {
    #[test]
    fn print_then_parse_gives_the_same_tree(c in cond()) {
        let e = Expr::Has { name: "net.connect".into(), span: 0..0, cond: Some(Box::new(c)) };
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(back.without_spans(), e, "{}", text);
    }
}

/// Boolean attributes and int attributes of a fixture span, for random conditions.
const BOOLS: [Attr; 2] = [Attr::PeerShared, Attr::PeerLocal];
const INTS: [Attr; 2] = [Attr::PeerPort, Attr::ProcessPid];

#[derive(Debug, Clone)]
enum Cond {
    Bool(usize),
    Cmp(usize, CmpOp, i64),
    IsNull(usize),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

impl Cond {
    fn text(&self) -> String {
        match self {
            Cond::Bool(i) => BOOLS[*i].name().to_owned(),
            Cond::Cmp(i, op, n) => format!("{} {} {n}", INTS[*i].name(), op.as_str()),
            Cond::IsNull(i) => format!("{} == null", INTS[*i].name()),
            Cond::Not(a) => format!("not ({})", a.text()),
            Cond::And(a, b) => format!("({}) and ({})", a.text(), b.text()),
            Cond::Or(a, b) => format!("({}) or ({})", a.text(), b.text()),
        }
    }

    /// The reference: plain Rust over the attribute values.
    fn eval(&self, bools: [bool; 2], ints: [Option<i64>; 2]) -> bool {
        match self {
            Cond::Bool(i) => bools[*i],
            Cond::Cmp(i, op, n) => match (ints[*i], op) {
                (Some(v), CmpOp::Eq) => v == *n,
                (None, CmpOp::Eq) => false,
                (Some(v), CmpOp::Ne) => v != *n,
                (None, CmpOp::Ne) => true,
                (None, _) => false,
                (Some(v), CmpOp::Lt) => v < *n,
                (Some(v), CmpOp::Le) => v <= *n,
                (Some(v), CmpOp::Gt) => v > *n,
                (Some(v), CmpOp::Ge) => v >= *n,
            },
            Cond::IsNull(i) => ints[*i].is_none(),
            Cond::Not(a) => !a.eval(bools, ints),
            Cond::And(a, b) => a.eval(bools, ints) && b.eval(bools, ints),
            Cond::Or(a, b) => a.eval(bools, ints) || b.eval(bools, ints),
        }
    }
}

fn bool_cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![
        (0usize..2).prop_map(Cond::Bool),
        (0usize..2, cmp_op(), 0i64..70000).prop_map(|(i, o, n)| Cond::Cmp(i, o, n)),
        (0usize..2).prop_map(Cond::IsNull),
    ];
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| Cond::Not(Box::new(a))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #[test]
    fn compiled_evaluation_agrees_with_the_reference(
        c in bool_cond(),
        port in 1u16..65535,
        shared in any::<bool>(),
        known_pid in any::<bool>(),
    ) {
        let mut span = tcp(Some("a"), Some("b"), shared, port);
        if !known_pid {
            span.attrs.remove(&Attr::ProcessPid);
        }
        let bools = [shared, true];
        let ints = [Some(i64::from(port)), known_pid.then_some(42)];
        let text = format!("trace.has(net.connect).where({})", c.text());
        let m = compile(&text, &CompileEnv { tenants: None })
            .map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
        prop_assert_eq!(m.matches(&span), c.eval(bools, ints), "{}", text);
        // A bool attribute stored as such reads back the same.
        prop_assert!(matches!(span.attrs.get(&Attr::PeerShared), Some(Owned::Bool(_))));
    }
}
