//! Keyring tests: creation on demand, epochs, retire, shred, wrong master key, moved key
//! files, listing without key material, modes, and that every operation is audited.
use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use super::{listing::EpochState, *};

fn keyring(dir: &Path) -> (Keyring, String) {
    let master = MasterKey::generate().unwrap();
    let b64 = master.to_base64().to_string();
    let keyring = Keyring::init(dir, master, Actor::current(ActorKind::Agent)).unwrap();
    (keyring, b64)
}

fn tenant(name: &str) -> Scope {
    Scope::tenant(name).unwrap()
}

#[test]
fn keys_are_created_on_demand_and_audited_as_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let (ring, _) = keyring(tmp.path());
    let a = ring.active_key(&tenant("a")).unwrap();
    assert_eq!(a.epoch, 1);
    // Asking again returns the same key, not a new one.
    let again = ring.active_key(&tenant("a")).unwrap();
    assert_eq!(again.key_id, a.key_id);
    assert_eq!(again.bytes(), a.bytes());
    let b = ring.active_key(&tenant("b")).unwrap();
    assert_ne!(a.bytes(), b.bytes());
    let entries = audit::read(tmp.path()).unwrap();
    let actions: Vec<_> = entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Init,
            AuditAction::Create,
            AuditAction::Create,
            AuditAction::Create
        ]
    );
    assert_eq!(entries[2].scope, Some(tenant("a")));
    assert_eq!(entries[2].actor.kind, ActorKind::Agent);
    assert_eq!(entries[2].key_id, Some(a.key_id.to_string()));
}

#[test]
fn rotation_keeps_old_epochs_until_retired() {
    let tmp = tempfile::tempdir().unwrap();
    let (ring, _) = keyring(tmp.path());
    let a = tenant("a");
    let first = ring.active_key(&a).unwrap();
    let second = ring.rotate(&a).unwrap();
    assert_eq!(second.epoch, 2);
    assert_eq!(ring.active_key(&a).unwrap().key_id, second.key_id);
    assert_eq!(ring.key(&a, 1).unwrap().bytes(), first.bytes());
    assert!(matches!(
        ring.retire(&a, 2),
        Err(KeyringError::ActiveEpoch { epoch: 2, .. })
    ));
    ring.retire(&a, 1).unwrap();
    assert!(matches!(
        ring.key(&a, 1),
        Err(KeyringError::Retired { epoch: 1, .. })
    ));
    assert!(matches!(
        ring.retire(&a, 1),
        Err(KeyringError::Retired { .. })
    ));
    assert!(matches!(
        ring.retire(&a, 7),
        Err(KeyringError::UnknownEpoch { .. })
    ));
    assert!(ring.key(&a, 2).is_ok());
    // The destroyed key is gone from the file, not just marked.
    let text = fs::read_to_string(tmp.path().join("scopes/t-a.json")).unwrap();
    assert_eq!(text.matches("wrapped").count(), 1, "{text}");
}

#[test]
fn shred_destroys_every_epoch_of_one_tenant_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (ring, _) = keyring(tmp.path());
    let (a, b) = (tenant("a"), tenant("b"));
    ring.active_key(&a).unwrap();
    ring.rotate(&a).unwrap();
    ring.active_key(&b).unwrap();
    assert_eq!(ring.shred(&a).unwrap(), 2);
    for epoch in [1, 2] {
        assert!(matches!(
            ring.key(&a, epoch),
            Err(KeyringError::Shredded { .. })
        ));
    }
    assert!(ring.key(&b, 1).is_ok());
    let listed = keyring::list(tmp.path()).unwrap();
    let info = listed.iter().find(|s| s.scope == a).unwrap();
    assert!(info.epochs.iter().all(|e| e.state == EpochState::Shredded));
    // A returning tenant gets a new epoch; the old ones stay destroyed.
    assert_eq!(ring.active_key(&a).unwrap().epoch, 3);
    assert!(ring.key(&a, 1).is_err());
    let shreds = audit::read(tmp.path())
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::Shred)
        .count();
    assert_eq!(shreds, 1);
}

#[test]
fn a_wrong_master_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    keyring(tmp.path());
    let error = Keyring::open(
        tmp.path(),
        MasterKey::generate().unwrap(),
        Actor::current(ActorKind::Cli),
    )
    .unwrap_err();
    assert!(
        matches!(error, KeyringError::WrongMasterKey { .. }),
        "{error}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Keyring::open(
            empty.path(),
            MasterKey::generate().unwrap(),
            Actor::current(ActorKind::Cli)
        ),
        Err(KeyringError::NotInitialized { .. })
    ));
    assert!(matches!(
        Keyring::init(
            tmp.path(),
            MasterKey::generate().unwrap(),
            Actor::current(ActorKind::Cli)
        ),
        Err(KeyringError::AlreadyInitialized { .. })
    ));
}

#[test]
fn a_key_file_moved_to_another_tenant_does_not_unwrap() {
    let tmp = tempfile::tempdir().unwrap();
    let (ring, _) = keyring(tmp.path());
    ring.active_key(&tenant("a")).unwrap();
    ring.active_key(&tenant("b")).unwrap();
    // Move a's wrapped key into b's file (scope field kept as b).
    let path_a = tmp.path().join("scopes/t-a.json");
    let path_b = tmp.path().join("scopes/t-b.json");
    let a: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path_a).unwrap()).unwrap();
    let mut b: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path_b).unwrap()).unwrap();
    b["epochs"] = a["epochs"].clone();
    fs::write(&path_b, b.to_string()).unwrap();
    assert!(matches!(
        ring.key(&tenant("b"), 1),
        Err(KeyringError::Unwrap { .. })
    ));
    // A whole file moved under another name is caught by its scope field.
    fs::copy(&path_a, &path_b).unwrap();
    assert!(matches!(
        ring.key(&tenant("b"), 1),
        Err(KeyringError::Corrupt { .. })
    ));
}

#[test]
fn listing_shows_no_key_material_and_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let (ring, b64) = keyring(tmp.path());
    let key = ring.active_key(&tenant("a")).unwrap();
    let listed = serde_json::to_string(&keyring::list(tmp.path()).unwrap()).unwrap();
    assert!(!listed.contains("wrapped"), "{listed}");
    assert!(listed.contains(&key.key_id.to_string()));
    assert!(!listed.contains(&b64));
    let mut seen = 0;
    for entry in walk(tmp.path()) {
        let mode = fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", entry.display());
        let text = fs::read(&entry).unwrap_or_default();
        assert!(
            !text.windows(b64.len()).any(|w| w == b64.as_bytes()),
            "master key in {}",
            entry.display()
        );
        seen += 1;
    }
    assert!(seen >= 6, "{seen}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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
