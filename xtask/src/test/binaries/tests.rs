use super::*;

fn run_of(transcript: &str, cargo_ok: bool) -> Run {
    let mut run = Run::default();
    for line in transcript.lines() {
        run.line(line);
    }
    run.finish(cargo_ok, "exit status: 101");
    run
}

/// cargo 1.95's merged output of `cargo test --no-fail-fast` over a passing, a failing and an
/// aborting test binary, and doc-tests (trimmed).
const MIXED: &str = "\
   Compiling nff v0.1.0 (/tmp/nff)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 1.19s
     Running unittests src/lib.rs (target/debug/deps/nff-682c7c66d8d3d6c3)

running 1 test
test ok ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/a_fail.rs (target/debug/deps/a_fail-e97138762b995b23)

running 2 tests
test ok2 ... ok
test fails ... FAILED

failures:
    fails

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: test failed, to rerun pass `--test a_fail`
     Running tests/b_abort.rs (target/debug/deps/b_abort-89ef96c53e0b7089)

running 1 test
error: test failed, to rerun pass `--test b_abort`

Caused by:
  process didn't exit successfully: `/tmp/nff/target/debug/deps/b_abort-89ef96c53e0b7089` (signal: 6, SIGABRT: process abort signal)
     Running tests/c_ok.rs (target/debug/deps/c_ok-f8ff3adafbda59d9)

running 1 test
test ok3 ... \u{1b}[32mok\u{1b}[0m

test result: \u{1b}[32mok\u{1b}[0m. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests nff

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: 2 targets failed:
    `--test a_fail`
    `--test b_abort`
";

#[test]
fn every_binary_is_counted_and_an_aborted_one_is_a_failure() {
    let run = run_of(MIXED, false);
    let fates: Vec<(&str, &Fate)> = run
        .binaries
        .iter()
        .map(|b| (b.name.as_str(), &b.fate))
        .collect();
    assert_eq!(
        fates,
        [
            ("nff (unittests src/lib.rs)", &Fate::Passed),
            ("a_fail (tests/a_fail.rs)", &Fate::Failed),
            (
                "b_abort (tests/b_abort.rs)",
                &Fate::Aborted("(signal: 6, SIGABRT: process abort signal)".into())
            ),
            ("c_ok (tests/c_ok.rs)", &Fate::Passed),
            ("doc-tests nff", &Fate::Passed),
        ]
    );
    assert_eq!(
        run.tally(),
        Tally {
            passed: 3,
            failed: 2
        },
        "the abort counts as one failure"
    );
}

#[test]
fn a_binary_that_does_not_compile_is_a_failure() {
    let run = run_of(
        "   Compiling nff v0.1.0 (/tmp/nff)\n\
         error[E0308]: mismatched types\n\
         error: could not compile `nff` (test \"d_broken\") due to 1 previous error\n",
        false,
    );
    assert_eq!(run.binaries.len(), 1);
    assert_eq!(run.binaries[0].name, "nff (test \"d_broken\")");
    assert!(matches!(run.binaries[0].fate, Fate::NotBuilt(_)));
    assert_eq!(
        run.tally(),
        Tally {
            passed: 0,
            failed: 1
        }
    );
}

#[test]
fn a_binary_cut_short_without_a_result_line_is_a_failure() {
    let run = run_of(
        "     Running tests/flood.rs (target/release/deps/flood-0123456789abcdef)\n\
         running 3 tests\n\
         test one ... ok\n",
        false,
    );
    assert!(matches!(run.binaries[0].fate, Fate::Aborted(_)));
    assert_eq!(run.tally().failed, 1);
}

#[test]
fn a_failed_cargo_that_blames_no_binary_still_fails() {
    let run = run_of("error: failed to download `foo v1.0.0`\n", false);
    assert_eq!(run.tally().failed, 1);
    assert_eq!(run.binaries[0].name, "cargo test");
    let clean = run_of(
        MIXED.split("     Running tests/a_fail").next().unwrap(),
        true,
    );
    assert_eq!(
        clean.tally(),
        Tally {
            passed: 1,
            failed: 0
        }
    );
}

#[test]
fn parses_result_lines() {
    assert_eq!(
        parse_result_line(
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
             finished in 0.01s\n"
        ),
        Some(Tally {
            passed: 5,
            failed: 0
        })
    );
    assert_eq!(
        parse_result_line("test result: \u{1b}[31mFAILED\u{1b}[0m. 3 passed; 2 failed; 0 ignored"),
        Some(Tally {
            passed: 3,
            failed: 2
        })
    );
    assert_eq!(parse_result_line("running 3 tests"), None);
}
