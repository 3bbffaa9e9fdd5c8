//! Hostile segment files (proptest, bounded case counts): a real segment with random edits
//! (flipped bytes, cuts, inserted garbage, zeroed runs, length fields overwritten) and files of
//! arbitrary bytes. The reader never panics, delivers only authentic records, each once and in
//! order, and never loses one without reporting an issue.
use std::{fs, path::Path, sync::Arc};

use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestRunner},
};

use super::{read, setup, small, tenant};
use crate::evidence::{
    keys::Keyring,
    store::{Query, Scope, Store, segments},
};

/// One edit to a segment file.
#[derive(Clone, Debug)]
enum Edit {
    /// XOR the byte at `at` with `mask` (non-zero).
    Flip { at: Index, mask: u8 },
    /// Cut the file at `at`.
    Truncate { at: Index },
    /// Insert `bytes` before `at`.
    Insert { at: Index, bytes: Vec<u8> },
    /// Zero `len` bytes from `at`.
    Zero { at: Index, len: usize },
    /// Overwrite 4 bytes at `at` with `value` (little-endian): lengths, counts, sequence numbers.
    Word { at: Index, value: u32 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), 1..=255u8).prop_map(|(at, mask)| Edit::Flip { at, mask }),
        2 => any::<Index>().prop_map(|at| Edit::Truncate { at }),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        1 => (any::<Index>(), 1..256usize).prop_map(|(at, len)| Edit::Zero { at, len }),
        2 => (any::<Index>(), any::<u32>()).prop_map(|(at, value)| Edit::Word { at, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    match edit {
        Edit::Flip { at, mask } => {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        Edit::Truncate { at } => bytes.truncate(at.index(bytes.len())),
        Edit::Insert { at, bytes: more } => {
            let at = at.index(bytes.len());
            bytes.splice(at..at, more.iter().copied());
        }
        Edit::Zero { at, len } => {
            let at = at.index(bytes.len());
            let end = (at + len).min(bytes.len());
            bytes[at..end].fill(0);
        }
        Edit::Word { at, value } => {
            let at = at.index(bytes.len());
            for (i, b) in value.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = b;
                }
            }
        }
    }
}

/// One closed segment of `scope` with 40 records of varied sizes (several frames).
fn one_segment(dir: &Path, keyring: &Arc<Keyring>, scope: &Scope) -> std::path::PathBuf {
    let mut store = Store::open(dir, Arc::clone(keyring), small()).unwrap();
    for i in 0..40u64 {
        let mut data = format!("{i:04}").into_bytes();
        data.resize(20 + (i as usize * 13) % 150, b'.');
        store.append(scope, i, &data).unwrap();
    }
    store.close().unwrap();
    segments(dir, &Query::scopes([scope.clone()]))
        .unwrap()
        .pop()
        .unwrap()
        .path
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn edited_segments_never_panic_and_never_lose_a_record_silently() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let path = one_segment(tmp.path(), &keyring, &a);
    let original = fs::read(&path).unwrap();
    let (all, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(all.len(), 40);
    assert!(report.issues.is_empty(), "{:?}", report.issues);
    let strategy = prop::collection::vec(edit(), 1..6);
    runner(400)
        .run(&strategy, |edits| {
            let mut bytes = original.clone();
            for edit in &edits {
                apply(&mut bytes, edit);
            }
            fs::write(&path, &bytes).unwrap();
            let (records, report) = read(tmp.path(), &keyring, &Query::all());
            // Only authentic records, each at most once, in the order written.
            for r in &records {
                prop_assert!(all.contains(r), "a record never written: {r:?}");
            }
            prop_assert!(
                records.windows(2).all(|w| w[0].1 < w[1].1),
                "duplicated or out of order: {:?}",
                records.iter().map(|r| r.1).collect::<Vec<_>>()
            );
            prop_assert_eq!(report.records, records.len() as u64);
            if records.len() < all.len() {
                prop_assert!(
                    !report.issues.is_empty(),
                    "{} of {} records read and no issue reported",
                    records.len(),
                    all.len()
                );
            }
            if bytes == original {
                prop_assert_eq!(&records, &all);
            }
            for issue in &report.issues {
                prop_assert_eq!(&issue.path, &path);
                prop_assert!(issue.offset <= bytes.len() as u64, "{issue}");
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_as_a_segment_are_an_issue_never_a_record() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let path = one_segment(tmp.path(), &keyring, &a);
    let original = fs::read(&path).unwrap();
    // Random files, and random files behind the real segment header (so the frames are parsed).
    let strategy = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..4096));
    runner(300)
        .run(&strategy, |(keep_header, tail)| {
            let mut bytes = if keep_header {
                original[..original.len().min(256)].to_vec()
            } else {
                Vec::new()
            };
            bytes.extend(&tail);
            fs::write(&path, &bytes).unwrap();
            let (records, report) = read(tmp.path(), &keyring, &Query::all());
            prop_assert!(
                records.iter().all(|r| r.1 < 40),
                "a record never written: {records:?}"
            );
            prop_assert!(!report.issues.is_empty(), "garbage read without an issue");
            Ok(())
        })
        .unwrap();
}
