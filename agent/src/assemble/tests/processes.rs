//! Process executions: the root span of their trace, from exec (once the executable is known)
//! to exit.

use super::{
    CG_A, EndReason, ExitStatus, FileEvent, FilePath, KernelEvent, KernelEventKind, MS,
    PathConfidence, SpanBody, SpanUpdate, World, header,
};

#[test]
fn a_process_execution_is_the_root_of_its_trace() {
    let mut w = World::new(100);
    let exec = KernelEvent {
        header: header(CG_A, 30, "app", MS),
        kind: KernelEventKind::Exec { ppid: 1 },
    };
    let exe = KernelEvent {
        header: header(CG_A, 30, "app", MS),
        kind: KernelEventKind::File(FileEvent {
            op: seam_common::FileSyscall::Exec,
            ret: 0,
            flags: 0,
            f_mode: 0,
            paths: vec![FilePath {
                path: "/usr/bin/app".into(),
                confidence: PathConfidence::Full,
                truncated: false,
            }],
            dir: None,
        }),
    };
    let updates = w.feed(&[exec, exe]);
    let root = updates
        .iter()
        .find_map(|u| match u {
            SpanUpdate::Started(s) if matches!(s.body, SpanBody::Process(_)) => Some(s.clone()),
            _ => None,
        })
        .expect("the process span starts once its executable is known");
    let SpanBody::Process(run) = &root.body else {
        unreachable!()
    };
    assert_eq!(run.process.exe.as_deref(), Some("/usr/bin/app"));
    assert_eq!(run.ppid, Some(1));
    assert!(run.exec_seen);
    assert_eq!(root.parent_span_id, None);
    // The exec'd file is a child span of the process.
    let file = updates
        .iter()
        .find_map(|u| match u {
            SpanUpdate::Whole(s) if matches!(s.body, SpanBody::File(_)) => Some(s.clone()),
            _ => None,
        })
        .expect("a file.exec span");
    assert_eq!(
        (file.trace_id, file.parent_span_id),
        (root.trace_id, Some(root.span_id))
    );
    let exit = KernelEvent {
        header: header(CG_A, 30, "app", 9 * MS),
        kind: KernelEventKind::Exit { exit_code: 3 << 8 },
    };
    let updates = w.feed(&[exit]);
    let [SpanUpdate::Ended(end)] = updates.as_slice() else {
        panic!("{updates:#?}");
    };
    assert_eq!(end.span_id, root.span_id);
    assert_eq!(end.end_reason, Some(EndReason::Exited));
    let SpanBody::Process(run) = &end.body else {
        unreachable!()
    };
    assert_eq!(
        run.exit,
        Some(ExitStatus {
            code: Some(3),
            signal: None
        })
    );
}
