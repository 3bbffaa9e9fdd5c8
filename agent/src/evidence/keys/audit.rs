//! The key audit log: every key operation, who did it (uid, user, sudo user, host, pid,
//! agent or CLI) and when, as JSON lines in `audit.log`. Each line holds the SHA-256 of the
//! line before it (`prev`; 64 zeros for the first), so editing, removing or inserting a line
//! breaks the chain. `audit.head` holds the number of lines and the last line's hash, with an
//! HMAC under a key derived from the master key, so cutting lines off the end, or rewriting the
//! whole chain and the head, is detected by whoever holds the master key.
use std::{
    fs, io,
    io::Write as _,
    path::{Path, PathBuf},
};

use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

use super::{MasterKey, Scope, files, hex};

/// Audit log file name in the key directory.
pub(crate) const AUDIT_LOG: &str = "audit.log";
/// Audit head file name in the key directory.
pub(crate) const AUDIT_HEAD: &str = "audit.head";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the audit log cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    /// The log or its head could not be read or written.
    #[error("cannot {action} {path}: {source}; check the key directory is writable and has space")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The head file is not valid JSON of the expected shape.
    #[error(
        "audit head {path} is unreadable ({reason}); run `seam keys audit --verify` to check the log"
    )]
    Head { path: PathBuf, reason: String },
}

/// Who runs a key operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ActorKind {
    /// The `seam keys` command line.
    Cli,
    /// The agent (keys created on demand).
    Agent,
    /// Tests and benchmarks (`seam workload`).
    Workload,
}

/// The person and process behind an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Actor {
    pub kind: ActorKind,
    pub uid: u32,
    pub user: Option<String>,
    /// `SUDO_USER`, when the command ran under sudo.
    pub sudo_user: Option<String>,
    pub host: String,
    pub pid: u32,
}

impl Actor {
    /// This process.
    pub(crate) fn current(kind: ActorKind) -> Self {
        let uid = nix::unistd::getuid();
        Self {
            kind,
            uid: uid.as_raw(),
            user: nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name),
            sudo_user: std::env::var("SUDO_USER").ok(),
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".into()),
            pid: std::process::id(),
        }
    }
}

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuditAction {
    /// The key directory was created.
    Init,
    /// A scope's first key was created (on demand, by the agent, or by rotate).
    Create,
    /// A new epoch was started.
    Rotate,
    /// One epoch's key was destroyed.
    Retire,
    /// Every epoch of a scope's keys was destroyed.
    Shred,
    /// The master key was split into escrow shares.
    EscrowSplit,
    /// The master key was rebuilt from escrow shares.
    EscrowRecover,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditEntry {
    pub seq: u64,
    pub time_ns: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub actor: Actor,
    pub action: AuditAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// SHA-256 (hex) of the previous line.
    pub prev: String,
}

/// What an audit operation is about (the entry without its chain fields).
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditSubject {
    pub scope: Option<Scope>,
    pub epoch: Option<u32>,
    pub key_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Head {
    entries: u64,
    last: String,
    mac: String,
}

fn head_mac(key: &hmac::Key, entries: u64, last: &str) -> String {
    hex(hmac::sign(
        key,
        format!("seam/v1/audit-head {entries} {last}").as_bytes(),
    )
    .as_ref())
}

fn line_hash(line: &str) -> String {
    hex(digest::digest(&digest::SHA256, line.as_bytes()).as_ref())
}

fn read_head(dir: &Path) -> Result<Option<Head>, AuditError> {
    let path = dir.join(AUDIT_HEAD);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AuditError::Head {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// Appends one entry; the caller holds the key directory lock.
pub(crate) fn append(
    dir: &Path,
    master: &MasterKey,
    actor: &Actor,
    action: AuditAction,
    subject: AuditSubject,
) -> Result<AuditEntry, AuditError> {
    let (seq, prev) = match read_head(dir)? {
        Some(head) => (head.entries, head.last),
        None => (0, GENESIS.to_owned()),
    };
    let time_ns = super::now_ns();
    let entry = AuditEntry {
        seq,
        time_ns,
        time: crate::model::clock::UnixNanos::from_u64(time_ns).rfc3339(),
        actor: actor.clone(),
        action,
        scope: subject.scope,
        epoch: subject.epoch,
        key_id: subject.key_id,
        detail: subject.detail,
        prev,
    };
    let line = serde_json::to_string(&entry).expect("audit entries serialize");
    let log = dir.join(AUDIT_LOG);
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = files::open_append(&log).map_err(io("open", &log))?;
    file.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(io("append to", &log))?;
    let last = line_hash(&line);
    let head = Head {
        entries: seq + 1,
        mac: head_mac(&master.audit_key(), seq + 1, &last),
        last,
    };
    let head_path = dir.join(AUDIT_HEAD);
    files::write_atomic(
        &head_path,
        serde_json::to_string(&head)
            .expect("audit head serializes")
            .as_bytes(),
    )
    .map_err(io("write", &head_path))?;
    Ok(entry)
}

/// One break in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct AuditProblem {
    /// 1-based line number (0: the head file).
    pub line: u64,
    pub what: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Default, Serialize)]
pub(crate) struct AuditReport {
    pub entries: u64,
    /// Whether the head's HMAC was checked (needs the master key).
    pub head_authenticated: bool,
    pub problems: Vec<AuditProblem>,
}

/// Reads every entry (lines that do not parse are skipped; [`verify`] reports them).
pub(crate) fn read(dir: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    Ok(read_lines(dir)?
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

fn read_lines(dir: &Path) -> Result<Vec<String>, AuditError> {
    let path = dir.join(AUDIT_LOG);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AuditError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// Checks the chain line by line, then the head (and its HMAC when `master` is given).
pub(crate) fn verify(dir: &Path, master: Option<&MasterKey>) -> Result<AuditReport, AuditError> {
    let lines = read_lines(dir)?;
    let mut report = AuditReport {
        entries: lines.len() as u64,
        ..AuditReport::default()
    };
    let mut problem = |line: u64, what: String| report.problems.push(AuditProblem { line, what });
    let mut prev = GENESIS.to_owned();
    for (index, line) in lines.iter().enumerate() {
        let number = index as u64 + 1;
        match serde_json::from_str::<AuditEntry>(line) {
            Ok(entry) => {
                if entry.prev != prev {
                    problem(
                        number,
                        format!(
                            "chain broken: line {} was changed, removed or inserted (prev {} \
                             expected {prev})",
                            number.saturating_sub(1),
                            entry.prev
                        ),
                    );
                }
                if entry.seq != index as u64 {
                    problem(
                        number,
                        format!("sequence {} where {index} was expected", entry.seq),
                    );
                }
            }
            Err(e) => problem(number, format!("not an audit entry: {e}")),
        }
        prev = line_hash(line);
    }
    match read_head(dir) {
        Ok(Some(head)) => {
            if head.entries != report.entries || head.last != prev {
                problem(
                    0,
                    format!(
                        "head says {} entries ending in {}, the log has {} ending in {prev}: \
                         lines were cut off, appended or changed at the end",
                        head.entries, head.last, report.entries
                    ),
                );
            }
            if let Some(master) = master {
                if head_mac(&master.audit_key(), head.entries, &head.last) != head.mac {
                    problem(0, "head HMAC does not match: the head was rewritten".into());
                }
                report.head_authenticated = true;
            }
        }
        Ok(None) if report.entries > 0 => problem(0, "audit head is missing".into()),
        Ok(None) => {}
        Err(error) => problem(0, error.to_string()),
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, MasterKey) {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let actor = Actor::current(ActorKind::Cli);
        for i in 0..n {
            let subject = AuditSubject {
                scope: Some(Scope::tenant("a").unwrap()),
                epoch: Some(i as u32 + 1),
                ..AuditSubject::default()
            };
            append(tmp.path(), &master, &actor, AuditAction::Rotate, subject).unwrap();
        }
        (tmp, master)
    }

    fn edit(dir: &Path, f: impl FnOnce(&mut Vec<String>)) {
        let mut lines = read_lines(dir).unwrap();
        f(&mut lines);
        fs::write(dir.join(AUDIT_LOG), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_intact_log_verifies() {
        let (tmp, master) = log_with(4);
        let report = verify(tmp.path(), Some(&master)).unwrap();
        assert_eq!(report.entries, 4);
        assert!(report.head_authenticated);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let entries = read(tmp.path()).unwrap();
        assert_eq!(entries[3].epoch, Some(4));
        assert_eq!(entries[3].actor.pid, std::process::id());
    }

    #[test]
    fn edits_anywhere_are_detected() {
        // A changed middle line, the last line, a removed line, a cut tail.
        let cases: [fn(&mut Vec<String>); 4] = [
            |l| l[1] = l[1].replace("\"epoch\":2", "\"epoch\":9"),
            |l| l[3] = l[3].replace("rotate", "retire"),
            |l| {
                l.remove(2);
            },
            |l| l.truncate(2),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let (tmp, master) = log_with(4);
            edit(tmp.path(), case);
            let report = verify(tmp.path(), Some(&master)).unwrap();
            assert!(!report.problems.is_empty(), "case {i} undetected");
        }
    }

    #[test]
    fn a_rewritten_chain_and_head_fail_the_hmac() {
        let (tmp, master) = log_with(2);
        let forger = MasterKey::generate().unwrap();
        fs::remove_file(tmp.path().join(AUDIT_LOG)).unwrap();
        fs::remove_file(tmp.path().join(AUDIT_HEAD)).unwrap();
        let actor = Actor::current(ActorKind::Cli);
        append(
            tmp.path(),
            &forger,
            &actor,
            AuditAction::Init,
            AuditSubject::default(),
        )
        .unwrap();
        assert!(verify(tmp.path(), None).unwrap().problems.is_empty());
        let report = verify(tmp.path(), Some(&master)).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    }
}
