//! Store tests: round trips, restarts and nonces, epochs, shred, retention, modes, gaps.
//! Tampering, reordering and truncation are in [`tamper`]; random edits and garbage in [`fuzz`].
mod fuzz;
mod tamper;

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    format::{FRAME_HEADER_LEN, FrameHeader, SegmentHeader},
    *,
};
use crate::evidence::keys::{Actor, ActorKind, Keyring, MasterKey};

type Record = (Scope, u64, Vec<u8>);

pub(super) fn setup() -> (tempfile::TempDir, Arc<Keyring>) {
    let tmp = tempfile::tempdir().unwrap();
    let keyring = Keyring::init(
        &crate::evidence::keys::keyring_dir(tmp.path()),
        MasterKey::generate().unwrap(),
        Actor::current(ActorKind::Agent),
    )
    .unwrap();
    (tmp, Arc::new(keyring))
}

pub(super) fn small() -> StoreOptions {
    StoreOptions {
        frame_bytes: 200,
        sync: SyncPolicy::Never,
        ..StoreOptions::default()
    }
}

pub(super) fn tenant(name: &str) -> Scope {
    Scope::tenant(name).unwrap()
}

pub(super) fn read(dir: &Path, keyring: &Keyring, query: &Query) -> (Vec<Record>, ReadReport) {
    let records = Mutex::new(Vec::new());
    let report = replay(dir, keyring, query, 1, &|r| {
        records
            .lock()
            .unwrap()
            .push((r.scope.clone(), r.time_ns, r.data.to_vec()))
    })
    .unwrap();
    (records.into_inner().unwrap(), report)
}

/// Every frame of a segment file: (offset, header), walking lengths (the file must be intact).
pub(super) fn frames(path: &Path) -> (SegmentHeader, usize, Vec<(usize, FrameHeader)>) {
    let bytes = fs::read(path).unwrap();
    let (header, n) = SegmentHeader::decode(&bytes).unwrap();
    let mut pos = 2 * n;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let h =
            FrameHeader::decode(bytes[pos..pos + FRAME_HEADER_LEN].try_into().unwrap()).unwrap();
        out.push((pos, h));
        pos += FRAME_HEADER_LEN + h.ct_len as usize;
    }
    (header, n, out)
}

fn record(scope: &str, i: u64) -> Vec<u8> {
    let len = (i * 37 % 300) as usize;
    let mut data = format!("{scope}:{i}:").into_bytes();
    data.resize(data.len() + len, b'x');
    data
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn records_round_trip_per_scope_in_order() {
    let (tmp, keyring) = setup();
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    let scopes = [Scope::Node, tenant("a"), tenant("b c")];
    let mut expected: BTreeMap<Scope, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for i in 0..600u64 {
        let scope = &scopes[(i % 3) as usize];
        let data = if i == 300 {
            vec![7u8; 5000]
        } else {
            record(&scope.stem(), i)
        };
        store.append(scope, 1_000 + i, &data).unwrap();
        expected
            .entry(scope.clone())
            .or_default()
            .push((1_000 + i, data));
    }
    let stats = store.close().unwrap();
    assert_eq!(stats.records_sealed, 600);
    assert_eq!(stats.records_dropped, 0);
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    assert_eq!(report.segments, 3);
    assert_eq!(report.segments_closed, 3);
    let mut got: BTreeMap<Scope, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for (scope, time, data) in records {
        got.entry(scope).or_default().push((time, data));
    }
    assert_eq!(got, expected);

    // One scope, a time range: frames outside it are skipped undecrypted.
    let query = Query::scopes([tenant("a")]).between(1_100, 1_200);
    let (records, report) = read(tmp.path(), &keyring, &query);
    assert!(report.frames_skipped > 0);
    let want: Vec<_> = expected[&tenant("a")]
        .iter()
        .filter(|(t, _)| (1_100..1_200).contains(t))
        .cloned()
        .collect();
    let got: Vec<_> = records.into_iter().map(|(_, t, d)| (t, d)).collect();
    assert_eq!(got, want);
}

#[test]
fn plaintext_never_reaches_the_disk_and_modes_are_private() {
    let (tmp, keyring) = setup();
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    for i in 0..50 {
        store
            .append(&tenant("a"), i, b"SECRET-SPAN-PAYLOAD of tenant a")
            .unwrap();
    }
    store.flush().unwrap();
    // An unclosed segment too (open while we look).
    let paths = walk(tmp.path());
    assert!(
        paths
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "seg"))
    );
    for path in paths {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode,
            if path.is_dir() { 0o700 } else { 0o600 },
            "{}",
            path.display()
        );
        if path.is_file() {
            let bytes = fs::read(&path).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"SECRET-SPAN"),
                "{}",
                path.display()
            );
        }
    }
    store.close().unwrap();
}

#[test]
fn nonces_never_repeat_across_restarts_and_rotations() {
    let (tmp, keyring) = setup();
    let mut pairs = HashSet::new();
    let mut frames_total = 0;
    for round in 0..40u64 {
        let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
        for i in 0..30 {
            store
                .append(&tenant("a"), round * 100 + i, &[round as u8; 50])
                .unwrap();
            store
                .append(&Scope::Node, round * 100 + i, &[1; 20])
                .unwrap();
        }
        if round % 3 == 0 {
            // A crash: no close, no last frame; what was flushed stays.
            store.flush().unwrap();
            std::mem::forget(store);
        } else {
            store.close().unwrap();
        }
        if round % 10 == 9 {
            keyring.rotate(&tenant("a")).unwrap();
        }
    }
    for segment in segments(tmp.path(), &Query::all()).unwrap() {
        let (header, _, frames) = frames(&segment.path);
        let key = keyring.key(&header.scope, header.epoch).unwrap();
        let subkey = seal::segment_key_bytes(&key, &header);
        for (_, frame) in frames {
            frames_total += 1;
            assert!(
                pairs.insert((subkey, seal::nonce_bytes(frame.seq))),
                "(key, nonce) repeated in {}",
                segment.path.display()
            );
        }
    }
    assert!(frames_total > 400, "{frames_total}");
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(records.len(), 40 * 60);
    let unclosed = report
        .issues
        .iter()
        .filter(|i| i.kind == IssueKind::NotClosed)
        .count();
    assert_eq!(
        unclosed,
        14 * 2,
        "crashed rounds leave unclosed segments: {:#?}",
        report.issues
    );
}

#[test]
fn rotation_keeps_old_history_readable_until_the_epoch_is_retired() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    store.append(&a, 1, b"epoch one").unwrap();
    store.close().unwrap();
    keyring.rotate(&a).unwrap();
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    store.append(&a, 2, b"epoch two").unwrap();
    store.close().unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert!(report.issues.is_empty(), "{:#?}", report.issues);
    let data: Vec<_> = records.iter().map(|r| r.2.as_slice()).collect();
    assert_eq!(data, [&b"epoch one"[..], b"epoch two"]);
    let epochs: Vec<_> = segments(tmp.path(), &Query::all())
        .unwrap()
        .iter()
        .map(|s| frames(&s.path).0.epoch)
        .collect();
    assert_eq!(epochs, [1, 2]);

    keyring.retire(&a, 1).unwrap();
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].2, b"epoch two");
    assert!(matches!(
        report.issues.as_slice(),
        [ReadIssue {
            kind: IssueKind::KeyUnavailable { epoch: 1, .. },
            ..
        }]
    ));
}

#[test]
fn shred_makes_one_tenants_history_unreadable() {
    let (tmp, keyring) = setup();
    let (a, b) = (tenant("a"), tenant("b"));
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    for i in 0..100 {
        store.append(&a, i, b"tenant a span").unwrap();
        store.append(&b, i, b"tenant b span").unwrap();
    }
    store.close().unwrap();
    keyring.rotate(&a).unwrap();
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    store.append(&a, 200, b"tenant a later").unwrap();
    store.close().unwrap();

    keyring.shred(&a).unwrap();
    // Shredding drops cached keys too: nothing of a is readable, all of b is.
    let (records, report) = read(tmp.path(), &keyring, &Query::all());
    assert!(
        records.iter().all(|r| r.0 == b),
        "a's records still readable"
    );
    assert_eq!(records.len(), 100);
    let unavailable = report
        .issues
        .iter()
        .filter(|i| matches!(i.kind, IssueKind::KeyUnavailable { .. }))
        .count();
    assert_eq!(unavailable, 2, "{:#?}", report.issues);
}

#[test]
fn retention_removes_by_age_then_by_size_never_open_segments() {
    let (tmp, keyring) = setup();
    for round in 0..4u64 {
        let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
        for i in 0..40 {
            store
                .append(&tenant("a"), round * 100 + i, &[0u8; 100])
                .unwrap();
        }
        store.close().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = segments(tmp.path(), &Query::all()).unwrap();
    assert_eq!(before.len(), 4);
    let one = before[0].len;

    // By size: keep about two segments' worth; the oldest go first.
    let options = StoreOptions {
        retention: Retention {
            max_age: None,
            max_bytes: Some(2 * one + one / 2),
        },
        ..small()
    };
    let store = Store::open(tmp.path(), Arc::clone(&keyring), options).unwrap();
    assert_eq!(store.stats().segments_removed, 2);
    drop(store);
    let after = segments(tmp.path(), &Query::all()).unwrap();
    assert_eq!(after, before[2..]);

    // By age: an open segment survives even when everything is "old".
    let options = StoreOptions {
        retention: Retention {
            max_age: Some(Duration::from_secs(60)),
            max_bytes: None,
        },
        ..small()
    };
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), options).unwrap();
    store.append(&tenant("a"), 1, b"open").unwrap();
    store.flush().unwrap();
    assert_eq!(store.apply_retention(now_ns()).unwrap().segments_removed, 0);
    let report = store.apply_retention(now_ns() + 3_600_000_000_000).unwrap();
    assert_eq!(report.segments_removed, 2);
    assert_eq!(segments(tmp.path(), &Query::all()).unwrap().len(), 1);
    store.close().unwrap();
}

#[test]
fn a_missing_key_is_a_counted_gap_and_appends_recover() {
    let (tmp, keyring) = setup();
    let a = tenant("a");
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    store.append(&a, 1, b"first").unwrap();
    store.close().unwrap();
    // Break a's key file: the next segment cannot get a key.
    let key_file = keyring.dir().join("scopes/t-a.json");
    let good = fs::read(&key_file).unwrap();
    fs::write(&key_file, b"{").unwrap();
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    let mut errors = 0;
    for i in 10..20 {
        if let Err(error) = store.append(&a, i, &[1u8; 100]) {
            assert!(matches!(error, StoreError::Key { .. }), "{error}");
            errors += 1;
        }
    }
    assert!(errors > 0);
    let _ = store.flush();
    let gaps = store.take_gaps();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert_eq!(gaps[0].reason, GapReason::NoKey);
    assert_eq!(gaps[0].records, 10);
    assert_eq!((gaps[0].from_ns, gaps[0].to_ns), (10, 19));
    fs::write(&key_file, good).unwrap();
    store.append(&a, 30, b"after").unwrap();
    let stats = store.close().unwrap();
    assert_eq!(stats.records_dropped, 10);
    assert_eq!(
        stats.records_sealed + stats.records_dropped,
        stats.records_appended
    );
    let (records, _) = read(tmp.path(), &keyring, &Query::all());
    let data: Vec<_> = records.iter().map(|r| r.2.as_slice()).collect();
    assert_eq!(data, [&b"first"[..], b"after"]);
}

#[test]
fn sync_policies_and_oversized_records() {
    let (tmp, keyring) = setup();
    for (policy, synced) in [
        (SyncPolicy::EveryFrame, true),
        (SyncPolicy::Never, false),
        (SyncPolicy::Interval(Duration::from_secs(3600)), true),
    ] {
        let options = StoreOptions {
            sync: policy,
            ..small()
        };
        let mut store = Store::open(tmp.path(), Arc::clone(&keyring), options).unwrap();
        for i in 0..20 {
            store.append(&Scope::Node, i, &[0; 100]).unwrap();
        }
        let big = vec![0u8; format::MAX_RECORD_LEN + 1];
        assert!(matches!(
            store.append(&Scope::Node, 0, &big),
            Err(StoreError::RecordTooLarge { .. })
        ));
        let stats = store.close().unwrap();
        assert_eq!(stats.records_rejected, 1);
        assert_eq!(stats.syncs > 0, synced, "{policy:?}: {stats:?}");
        if let SyncPolicy::EveryFrame = policy {
            assert!(stats.syncs >= stats.frames_written);
        }
    }
}

#[test]
fn parallel_replay_reads_the_same_records() {
    let (tmp, keyring) = setup();
    let mut store = Store::open(tmp.path(), Arc::clone(&keyring), small()).unwrap();
    for i in 0..2000u64 {
        store
            .append(&tenant(&format!("t{}", i % 7)), i, &i.to_le_bytes())
            .unwrap();
    }
    store.close().unwrap();
    let (mut one, _) = read(tmp.path(), &keyring, &Query::all());
    let many = Mutex::new(Vec::new());
    let report = replay(tmp.path(), &keyring, &Query::all(), 4, &|r| {
        many.lock()
            .unwrap()
            .push((r.scope.clone(), r.time_ns, r.data.to_vec()))
    })
    .unwrap();
    assert_eq!(report.segments, 7);
    let mut many = many.into_inner().unwrap();
    one.sort();
    many.sort();
    assert_eq!(one, many);
}
