//! Rules reload: on SIGHUP and when a file in the rules directories changes (polled), load
//! the rules again and hand them to the pipeline; invalid rules are rejected and the last
//! good ones stay in force.
use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use tokio::{signal::unix::Signal, sync::mpsc, task::JoinHandle};

use crate::policy::RuleSet;

/// How often the rules directories are checked for changes.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// What identifies the directories' content: every entry's path, size and modification time.
pub(crate) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The directories' content as of now. Taken before the rules are loaded, so a change made
/// while the agent starts is seen as a change (not taken for the state the rules came from).
pub(crate) fn fingerprint(dirs: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            out.push((dir.clone(), 0, None));
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // `metadata` follows symlinks (ConfigMap volumes swap a symlink).
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            out.push((path, len, meta.and_then(|m| m.modified().ok())));
        }
    }
    out.sort();
    out
}

/// Loads `dirs`; sends the rules to the pipeline, or logs why they were rejected.
async fn reload(dirs: &[PathBuf], tx: &mpsc::Sender<Box<RuleSet>>, why: &str) -> bool {
    match RuleSet::load_dirs(dirs) {
        Ok(rules) => {
            tracing::info!(trigger = why, "rules loaded; handing them to the pipeline");
            tx.send(Box::new(rules)).await.is_ok()
        }
        Err(errors) => {
            tracing::error!(
                trigger = why,
                "rules reload rejected: {} errors; keeping the last good rules\n{errors}",
                errors.0.len()
            );
            true
        }
    }
}

/// Watches `dirs` (every `poll`) and `hangup` (SIGHUP, registered by the caller before the
/// agent starts so that an early SIGHUP does not kill it) until the pipeline stops; `loaded`
/// is the [`fingerprint`] taken before the rules in force were loaded.
pub(crate) fn spawn(
    dirs: Vec<PathBuf>,
    loaded: Fingerprint,
    mut hangup: Signal,
    tx: mpsc::Sender<Box<RuleSet>>,
    poll: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = loaded;
        let mut interval = tokio::time::interval(poll);
        loop {
            let why = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                _ = interval.tick() => {
                    let now = fingerprint(&dirs);
                    if now == last {
                        continue;
                    }
                    last = now;
                    "file change"
                }
            };
            if why == "SIGHUP" {
                last = fingerprint(&dirs);
            }
            if !reload(&dirs, &tx, why).await {
                return;
            }
        }
    })
}
