//! Damage and tampering: a flipped byte anywhere in a segment, frames moved between tenants,
//! reordered, duplicated, cut off. Each is reported with its file and offset, and every other
//! frame is still read.
use std::{fs, path::Path, sync::Arc};

use super::{frames, read, setup, small, tenant};
use crate::evidence::{
    keys::Keyring,
    store::{IssueKind, Query, ReadReport, Scope, Store, segments},
};

/// One closed segment of `scope` with `n` records of 100 bytes (several per frame).
fn one_segment(dir: &Path, keyring: &Arc<Keyring>, scope: &Scope, n: u64) -> std::path::PathBuf {
    let mut store = Store::open(dir, Arc::clone(keyring), small()).unwrap();
    for i in 0..n {
        let mut data = format!("{i:04}").into_bytes();
        data.resize(100, b'.');
        store.append(scope, i, &data).unwrap();
    }
    store.close().unwrap();
    segments(dir, &Query::scopes([scope.clone()]))
        .unwrap()
        .pop()
        .unwrap()
        .path
}

fn times(records: &[(Scope, u64, Vec<u8>)]) -> Vec<u64> {
    records.iter().map(|r| r.1).collect()
}

fn offsets(report: &ReadReport) -> Vec<u64> {
    report.issues.iter().map(|i| i.offset).collect()
}

#[test]
fn every_flipped_byte_is_reported_where_it_is_and_nothing_else_is_lost() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let path = one_segment(tmp.path(), &keyring, &a, 12);
    let (_, header_len, frames) = frames(&path);
    assert!(frames.len() >= 4, "{frames:?}");
    let original = fs::read(&path).unwrap();
    // Which records each frame carries: frames hold consecutive times.
    let (all, _) = read(tmp.path(), &keyring, &Query::all());
    let all = times(&all);
    let mut frame_times = Vec::new();
    let mut next = 0;
    for (_, h) in &frames {
        frame_times.push(all[next..next + h.records as usize].to_vec());
        next += h.records as usize;
    }
    for i in 0..original.len() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (records, report) = read(tmp.path(), &keyring, &Query::all());
        let got = times(&records);
        if i < 2 * header_len {
            // Either header copy: the other one is used, every record is read.
            let copy = if i < header_len { 0 } else { header_len as u64 };
            assert_eq!(got, all, "flip at {i}");
            assert_eq!(
                offsets(&report),
                [copy],
                "flip at {i}: {:#?}",
                report.issues
            );
            assert_eq!(report.issues[0].kind, IssueKind::HeaderCopyDamaged);
            continue;
        }
        let k = frames.iter().rposition(|(start, _)| *start <= i).unwrap();
        let start = frames[k].0 as u64;
        assert!(
            offsets(&report).contains(&start),
            "flip at {i} (frame {k} at {start}) not reported: {:#?}",
            report.issues
        );
        assert!(report.issues.iter().all(|x| x.path == path));
        let want: Vec<u64> = frame_times
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, t)| t.clone())
            .collect();
        assert_eq!(got, want, "flip at {i} (frame {k})");
    }
}

/// Replaces the bytes of frame `k` of `to` by frame `k` of `from` (same length).
fn transplant(from: &Path, to: &Path, k: usize) -> u64 {
    let (_, _, src_frames) = frames(from);
    let (_, _, dst_frames) = frames(to);
    let src = fs::read(from).unwrap();
    let mut dst = fs::read(to).unwrap();
    let (s, sh) = src_frames[k];
    let (d, dh) = dst_frames[k];
    assert_eq!(sh.ct_len, dh.ct_len);
    let len = super::FRAME_HEADER_LEN + sh.ct_len as usize;
    dst[d..d + len].copy_from_slice(&src[s..s + len]);
    fs::write(to, dst).unwrap();
    d as u64
}

#[test]
fn a_frame_moved_between_tenants_is_rejected() {
    let (tmp, keyring) = setup();
    let (a, b) = (tenant("a"), tenant("b"));
    let path_a = one_segment(tmp.path(), &keyring, &a, 12);
    let path_b = one_segment(tmp.path(), &keyring, &b, 12);
    let at = transplant(&path_a, &path_b, 1);
    let (records, report) = read(tmp.path(), &keyring, &Query::scopes([b.clone()]));
    assert!(records.iter().all(|r| r.0 == b));
    assert_eq!(records.len(), 12 - frames(&path_a).2[1].1.records as usize);
    assert!(
        report
            .issues
            .iter()
            .any(|i| i.offset == at && matches!(i.kind, IssueKind::FrameDamaged { .. })),
        "{:#?}",
        report.issues
    );

    // A whole segment moved into another tenant's directory is refused as misplaced.
    let moved = path_b
        .parent()
        .unwrap()
        .join("00000000000000000000-0-moved.seg");
    fs::copy(&path_a, &moved).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::scopes([b.clone()]));
    assert!(records.iter().all(|r| r.0 == b));
    assert!(
        report
            .issues
            .iter()
            .any(|i| i.path == moved && i.kind == IssueKind::Misplaced { found: a.clone() }),
        "{:#?}",
        report.issues
    );
}

#[test]
fn reordered_and_duplicated_frames_are_detected() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let path = one_segment(tmp.path(), &keyring, &a, 12);
    let (_, _, frames_before) = frames(&path);
    let original = fs::read(&path).unwrap();
    let (all, _) = read(tmp.path(), &keyring, &Query::all());

    // Swap frames 1 and 2 (equal lengths).
    let (s1, h1) = frames_before[1];
    let (s2, h2) = frames_before[2];
    assert_eq!(h1.ct_len, h2.ct_len);
    let len = super::FRAME_HEADER_LEN + h1.ct_len as usize;
    let mut swapped = original.clone();
    swapped[s1..s1 + len].copy_from_slice(&original[s2..s2 + len]);
    swapped[s2..s2 + len].copy_from_slice(&original[s1..s1 + len]);
    fs::write(&path, &swapped).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(
        records.len(),
        all.len(),
        "authentic frames are still delivered"
    );
    assert!(
        report.issues.iter().any(|i| i.offset == s2 as u64
            && matches!(i.kind, IssueKind::FrameOutOfOrder { seq: 1, .. })),
        "{:#?}",
        report.issues
    );

    // Frame 1 copied over frame 2: delivered once, the copy reported.
    let mut duplicated = original.clone();
    duplicated[s2..s2 + len].copy_from_slice(&original[s1..s1 + len]);
    fs::write(&path, &duplicated).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(records.len(), all.len() - h2.records as usize);
    let mut seen = times(&records);
    seen.dedup();
    assert_eq!(seen.len(), records.len(), "no record delivered twice");
    assert!(
        report
            .issues
            .iter()
            .any(|i| i.offset == s2 as u64 && i.kind == IssueKind::FrameDuplicate { seq: 1 }),
        "{:#?}",
        report.issues
    );
    // A frame removed: the sequence jumps.
    let mut removed = original[..s1].to_vec();
    removed.extend_from_slice(&original[s2..]);
    fs::write(&path, &removed).unwrap();
    let (_, report) = read(tmp.path(), &keyring, &Query::all());
    assert!(
        report.issues.iter().any(|i| i.kind
            == IssueKind::FramesMissing {
                expected: 1,
                found: 2
            }),
        "{:#?}",
        report.issues
    );
}

#[test]
fn truncation_is_reported_and_earlier_records_survive() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let path = one_segment(tmp.path(), &keyring, &a, 12);
    let (_, _, frames) = frames(&path);
    let original = fs::read(&path).unwrap();
    let (all, _) = read(tmp.path(), &keyring, &Query::all());
    let (last_start, _) = *frames.last().unwrap();
    let (third, third_header) = frames[2];
    let before_third: usize = frames[..2].iter().map(|(_, h)| h.records as usize).sum();

    // Cut at a frame boundary: the last frame is gone, the segment reads as never closed.
    fs::write(&path, &original[..last_start]).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(records.len(), all.len());
    assert_eq!(report.issues.len(), 1, "{:#?}", report.issues);
    assert_eq!(report.issues[0].kind, IssueKind::NotClosed);
    assert_eq!(report.issues[0].offset, last_start as u64);

    // Cut inside the third frame: a torn tail there, the first two frames intact.
    let cut = third + super::FRAME_HEADER_LEN + third_header.ct_len as usize / 2;
    fs::write(&path, &original[..cut]).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(times(&records), times(&all[..before_third]));
    let kinds: Vec<_> = report
        .issues
        .iter()
        .map(|i| (i.offset, i.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                third as u64,
                IssueKind::TornTail {
                    bytes: (cut - third) as u64
                }
            ),
            (third as u64, IssueKind::NotClosed)
        ]
    );

    // Bytes appended after the last frame are reported, not read.
    let mut longer = original.clone();
    longer.extend_from_slice(b"junk");
    fs::write(&path, &longer).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(records.len(), all.len());
    assert_eq!(report.issues[0].kind, IssueKind::TrailingData { bytes: 4 });
}
