//! Grammar: what parses, what does not, and where errors point.
use crate::policy::lang::{
    CompileEnv, ExprError,
    ast::{CmpOp, Expr, Lit, Operand},
    compile, parse,
};

const TENANTS: &[&str] = &["a", "b"];

fn env() -> CompileEnv<'static> {
    CompileEnv {
        tenants: Some(TENANTS),
    }
}

/// The single error of `text` and the text it points at.
fn error(text: &str) -> (ExprError, &str) {
    match compile(text, &env()) {
        Ok(_) => panic!("{text}: expected an error"),
        Err(mut errs) => {
            assert_eq!(errs.len(), 1, "{text}: {errs:?}");
            let e = errs.remove(0);
            let at = &text[e.span()];
            (e, at)
        }
    }
}

#[test]
fn valid_expressions_parse_and_compile() {
    for text in [
        "trace.has(net.connect)",
        "trace.has(net.connect).where(peer.tenant != tenant)",
        "trace.has(net.*).where(tenant != null and peer.tenant != null and not peer.shared)",
        "trace.has(file.*).where(file.path starts_with \"/srv\" or file.path contains 'x')",
        "trace.has(net.flow).where(peer.port in [53, 5353] and net.protocol == \"udp\")",
        "trace.has(net.connect).where(peer.addr in [\"10.0.0.0/8\", \"::1\", null])",
        "trace.has(net.connect).where((peer.port >= 1 and peer.port <= 1024) or peer.port > 60000)",
        "trace.has(net.connect).where(not not peer.local) or trace.has(file.open)",
        "trace.has(*).where(process.uid == 0 and cgroup.path != null)",
        "trace.has(net.connect).where(tenant == 'a' and peer.tenant in [\"b\"])",
        "  trace.has( net.connect ) . where ( true )  ",
        "trace.has(net.connect).where(peer.port == -1 or peer.shared == false)",
    ] {
        if let Err(e) = compile(text, &env()) {
            panic!("{text}: {e:?}");
        }
    }
}

#[test]
fn precedence_and_associativity() {
    let e = parse("trace.has(*).where(true or false and not true)").unwrap();
    let Expr::Has {
        cond: Some(cond), ..
    } = e
    else {
        panic!("{e:?}")
    };
    // `or` binds loosest, `not` tightest.
    assert_eq!(cond.to_string(), "true or false and not true");
    assert!(matches!(*cond, Expr::Or(..)), "{cond:?}");
    let e = parse("trace.has(*).where(peer.port == 5)").unwrap();
    let Expr::Has {
        cond: Some(cond), ..
    } = e.without_spans()
    else {
        panic!()
    };
    assert_eq!(
        *cond,
        Expr::Cmp(
            Operand::Attr("peer.port".into(), 0..0),
            CmpOp::Eq,
            Operand::Lit(Lit::Int(5), 0..0)
        )
    );
}

#[test]
fn syntax_errors_point_at_the_offending_text() {
    let (e, at) = error("trace.has(net.connect).where(peer.tenant = tenant)");
    assert!(matches!(e, ExprError::Syntax { .. }), "{e:?}");
    assert_eq!((e.span().start, at), (41, "="));
    assert!(e.to_string().contains("a comparison"), "{e}");

    let (e, at) = error("trace.has(net.connect).where(peer.port == )");
    assert_eq!((e.span().start, at), (42, ")"));
    assert!(e.to_string().contains("a value"), "{e}");

    let (e, at) = error("trace.has(net.connect");
    assert_eq!((e.span().start, at), (21, ""));
    assert!(e.to_string().contains("`)`"), "{e}");
    assert!(
        e.to_string().contains("found the end of the expression"),
        "{e}"
    );

    let (e, at) = error("trace.has(net.connect).where(a and)");
    assert_eq!((e.span().start, at), (34, ")"));

    let (e, _) = error("trace.has(net.connect) extra");
    assert_eq!(e.span().start, 23);

    let (e, _) = error("trace.has(net.connect).where(x == \"unterminated)");
    assert!(matches!(e, ExprError::Syntax { .. }), "{e:?}");
    let (e, _) = error("");
    assert!(matches!(e, ExprError::Syntax { .. }), "{e:?}");
}

#[test]
fn compile_errors_name_the_problem_and_its_place() {
    let (e, at) = error("trace.has(net.connect).where(peer.tenat != tenant)");
    assert!(matches!(e, ExprError::UnknownAttr { .. }), "{e:?}");
    assert_eq!((e.span().start, at), (29, "peer.tenat"));
    assert!(e.hint().contains("peer.tenant"), "{}", e.hint());

    let (e, at) = error("trace.has(net.conect)");
    assert!(matches!(e, ExprError::UnknownSpan { .. }), "{e:?}");
    assert_eq!(at, "net.conect");

    let (e, at) = error("trace.has(net.connect).where(peer.port == \"80\")");
    assert!(matches!(e, ExprError::Type { .. }), "{e:?}");
    assert_eq!(at, "peer.port == \"80\"");

    let (e, at) = error("trace.has(file.open).where(peer.port == 80)");
    assert!(matches!(e, ExprError::NotOnSpan { .. }), "{e:?}");
    assert_eq!(at, "peer.port");

    let (e, at) = error("trace.has(net.*).where(file.path == \"/x\")");
    assert!(matches!(e, ExprError::NotOnSpan { .. }), "{e:?}");
    assert_eq!(at, "file.path");

    let (e, at) = error("peer.port == 80");
    assert!(matches!(e, ExprError::AttrOutsideWhere { .. }), "{e:?}");
    assert_eq!(at, "peer.port");

    let (e, _) = error("trace.has(net.connect).where(trace.has(file.open))");
    assert!(matches!(e, ExprError::NestedHas { .. }), "{e:?}");

    let (e, at) = error("trace.has(net.connect).where(net.protocol == \"sctp\")");
    assert!(matches!(e, ExprError::BadValue { .. }), "{e:?}");
    assert_eq!(at, "\"sctp\"");

    let (e, at) = error("trace.has(net.connect).where(tenant == \"zz\")");
    assert!(e.to_string().contains("no such tenant"), "{e}");
    assert_eq!(at, "\"zz\"");

    let (e, at) = error("trace.has(net.connect).where(peer.addr == \"nope\")");
    assert!(matches!(e, ExprError::BadValue { .. }), "{e:?}");
    assert_eq!(at, "\"nope\"");

    let (e, at) = error("trace.has(net.connect).where(peer.addr starts_with \"10.\")");
    assert!(matches!(e, ExprError::Type { .. }), "{e:?}");
    assert!(at.starts_with("peer.addr"));

    let (e, at) = error("trace.has(net.connect).where(tenant < 3)");
    assert!(matches!(e, ExprError::Type { .. }), "{e:?}");
    assert_eq!(at, "tenant < 3");

    let (e, at) = error("trace.has(net.connect).where(process.comm)");
    assert!(matches!(e, ExprError::NotBool { .. }), "{e:?}");
    assert_eq!(at, "process.comm");

    let (e, _) = error("trace.has(net.connect).where(peer.port == 99999999999999999999)");
    assert!(matches!(e, ExprError::IntRange { .. }), "{e:?}");

    let (e, at) = error("trace.has(net.connect).where(peer.port in [80, \"x\"])");
    assert!(matches!(e, ExprError::BadValue { .. }), "{e:?}");
    assert_eq!(at, "\"x\"");
}

#[test]
fn every_type_error_is_reported_not_only_the_first() {
    let errs = compile(
        "trace.has(net.connect).where(nope == 1 and peer.port == \"x\" or zilch)",
        &env(),
    )
    .unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn counting_and_application_attributes() {
    let m = compile(
        "trace.count(app.server).where(declared.tenant != null) > 5",
        &env(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(m.count.map(|c| c.max), Some(5));
    let ge = compile("trace.count(net.*) >= 5", &env()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(ge.count.map(|c| c.max), Some(4));
    assert!(compile("trace.has(net.*)", &env()).unwrap().count.is_none());
    let (e, at) = error("trace.count(net.*) < 5");
    assert!(matches!(e, ExprError::Count { .. }), "{e:?}");
    assert_eq!(at, "< 5");
    // A count is the whole expression.
    assert!(compile("trace.count(net.*) > 1 and trace.has(net.*)", &env()).is_err());
    // attr(...) is an application span's attribute.
    compile(
        "trace.has(app.client).where(attr(\"db.system\") == \"redis\")",
        &env(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let (e, at) = error("trace.has(net.*).where(attr(\"db.system\") == \"redis\")");
    assert!(matches!(e, ExprError::NotOnSpan { .. }), "{e:?}");
    assert_eq!(at, "attr(\"db.system\")");
    let (e, _) = error("trace.has(app.client).where(attr(\"x\") > 3)");
    assert!(matches!(e, ExprError::Type { .. }), "{e:?}");
    // Printing and parsing agree.
    let text = "trace.count(app.server).where(attr(\"k\") contains \"q\\\"x\") > 3";
    let parsed = parse(text).unwrap();
    assert_eq!(
        parse(&parsed.to_string()).unwrap().without_spans(),
        parsed.without_spans()
    );
}
