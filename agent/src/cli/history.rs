//! The sealed history on the command line: `--store` for `seam run` and `seam demo`, and
//! `seam replay` and `seam validate`, which read it back (`seam report` is in [`super::report`]).
use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::USAGE_ERROR;
use crate::{
    cli::keys::parse_time,
    evidence::{
        history::{
            HistoryConfig,
            breach::{Breach, BreachScope, Limits, Stream},
            record::RunEntry,
            replay,
            replay::{ReplaySpec, Replayed, Visit},
        },
        keys::{Actor, ActorKind, Keyring, MasterKey, MasterKeySource, Scope, keyring_dir},
        store::{IssueKind, Retention, StoreOptions, SyncPolicy},
    },
    policy::RuleSet,
};

/// When history frames are made durable.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum Fsync {
    /// After every sealed frame.
    EveryFrame,
    /// At most --store-fsync-interval after a frame (and at every flush, about every second).
    Interval,
    /// Left to the kernel.
    Never,
}

/// `--store` and its options (`seam run`, `seam demo`).
#[derive(Debug, clap::Args)]
pub(super) struct StoreRunArgs {
    /// Keep every ended span, loss record and run mark in a sealed per-tenant history in DIR
    /// (docs/store.md); keys in DIR/keys, created on first use.
    #[arg(long, env = "SEAM_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// File holding the master key (base64, mode 0600); without it, SEAM_MASTER_KEY is used.
    #[arg(long, value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
    /// When sealed frames are fsynced.
    #[arg(long, value_enum, default_value = "interval")]
    store_fsync: Fsync,
    /// With --store-fsync interval: at most this long after a frame (e.g. 1s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    store_fsync_interval: Duration,
    /// Remove closed segments last written longer ago than this (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    store_max_age: Option<Duration>,
    /// Remove the oldest closed segments while the store is larger than this (e.g. 10G, 500M).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    store_max_bytes: Option<u64>,
    /// Segments are closed at the end of time windows this long (e.g. 1h, 10m).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    store_window: Duration,
    /// Records queued for the history's thread at most; more are dropped and counted
    /// (`seam_lost_total{source="store",probe="queue_full"}`).
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    store_queue: u64,
}

impl StoreRunArgs {
    /// The history's configuration (None without --store); the master key is loaded here.
    pub(super) fn into_config(self) -> anyhow::Result<Option<HistoryConfig>> {
        let Some(dir) = self.store else {
            return Ok(None);
        };
        let master = load_master(self.master_key_file, &dir)?;
        Ok(Some(HistoryConfig {
            dir,
            master,
            options: StoreOptions {
                sync: match self.store_fsync {
                    Fsync::EveryFrame => SyncPolicy::EveryFrame,
                    Fsync::Interval => SyncPolicy::Interval(self.store_fsync_interval),
                    Fsync::Never => SyncPolicy::Never,
                },
                retention: Retention {
                    max_age: self.store_max_age,
                    max_bytes: self.store_max_bytes,
                },
                window: self.store_window,
                ..StoreOptions::default()
            },
            queue: usize::try_from(self.store_queue).unwrap_or(usize::MAX),
        }))
    }
}

/// The master key from `file` or `SEAM_MASTER_KEY`, with what to do when there is none.
pub(super) fn load_master(file: Option<PathBuf>, store: &Path) -> anyhow::Result<MasterKey> {
    let Some(source) = MasterKeySource::choose(file.clone()) else {
        bail!(
            "the store needs a master key: pass --master-key-file PATH or set SEAM_MASTER_KEY \
             (create one with `seam keys --store {} --master-key-file PATH init`)",
            store.display()
        );
    };
    if let Some(path) = file
        && !path.exists()
    {
        bail!(
            "no master key file at {}: create it with `seam keys --store {} --master-key-file {} init`",
            path.display(),
            store.display(),
            path.display()
        );
    }
    Ok(MasterKey::load(&source)?)
}

/// `5s`, `500ms`, `30m`, `12h`, `90d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 30s, 5m, 12h, 30d"))?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration"))?;
    let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    }
    .filter(|d| !d.is_zero())
    .ok_or_else(|| format!("{text:?} is not a duration: write e.g. 500ms, 30s, 5m, 12h, 30d"))
}

/// `1048576`, `512K`, `500M`, `10G`, `1T` (powers of 1024).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (n, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 0),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size: write e.g. 500M, 10G"))
}

/// Which history to read and the rules to judge it by (`seam replay`, `report`, `validate`).
#[derive(Debug, clap::Args)]
pub(super) struct ReadArgs {
    /// The store directory (keys in DIR/keys).
    #[arg(long, env = "SEAM_STORE", value_name = "DIR")]
    pub store: PathBuf,
    /// File holding the master key (base64, mode 0600); without it, SEAM_MASTER_KEY is used.
    #[arg(long, value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
    /// Rules directories to evaluate the history with (loaded together, as `seam run`
    /// loads them; new rules apply to old history too).
    #[arg(long, required = true)]
    pub rules: Vec<PathBuf>,
    /// Only what happened at or after this time (RFC 3339, or a date: 2026-05-05).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only what happened before this time (RFC 3339, or a date).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u64>,
    /// Only this tenant's history (repeatable); the node's losses and run marks are read too.
    #[arg(long, value_name = "NAME")]
    pub tenant: Vec<String>,
    /// Reader threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// An opened history: rules, keys and the scopes asked for.
pub(super) struct Opened {
    pub rules: RuleSet,
    pub keyring: Keyring,
    pub tenants: Option<BTreeSet<Scope>>,
}

impl ReadArgs {
    /// Loads the rules and opens the keyring; errors say what to fix.
    pub(super) fn open(&self) -> anyhow::Result<Opened> {
        let rules = RuleSet::load_dirs(&self.rules)
            .map_err(|errors| anyhow::anyhow!("{errors}\ninvalid rules"))?;
        if !self.store.is_dir() {
            bail!(
                "no store at {}: check the path (it is the directory given to `seam run --store`)",
                self.store.display()
            );
        }
        let master = load_master(self.master_key_file.clone(), &self.store)?;
        let keyring = Keyring::open(
            &keyring_dir(&self.store),
            master,
            Actor::current(ActorKind::Cli),
        )?;
        let tenants = if self.tenant.is_empty() {
            None
        } else {
            Some(
                self.tenant
                    .iter()
                    .map(|t| Scope::tenant(t))
                    .collect::<Result<_, _>>()?,
            )
        };
        Ok(Opened {
            rules,
            keyring,
            tenants,
        })
    }

    /// Replays the history with a visitor per thread.
    pub(super) fn replay<V: Visit>(
        &self,
        opened: &Opened,
        visitor: impl Fn(&[RunEntry]) -> V,
    ) -> anyhow::Result<(V, Replayed)> {
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let spec = ReplaySpec {
            store: &self.store,
            keyring: &opened.keyring,
            rules: &opened.rules,
            tenants: opened.tenants.clone(),
            from_ns: self.since.unwrap_or(0),
            until_ns: self.until.unwrap_or(u64::MAX),
            threads,
        };
        Ok(replay::replay(&spec, visitor)?)
    }
}

/// `seam replay`.
#[derive(Debug, clap::Args)]
pub(super) struct ReplayArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// Violations listed in full; past it, the output holds the earliest N as a sample
    /// (`violations_complete: false`) and the count.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_violations: usize,
    /// Also write every violation to this file as JSON lines, as it is found.
    #[arg(long, value_name = "PATH")]
    violations_file: Option<PathBuf>,
    /// Write the breach scope here instead of stdout.
    #[arg(long, short, value_name = "PATH")]
    output: Option<PathBuf>,
}

/// Runs `seam replay`: prints the breach scope as JSON.
pub(super) fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let opened = args.read.open()?;
    let stream = match &args.violations_file {
        Some(path) => Some(Arc::new(Mutex::new(Stream::JsonLines(Box::new(
            std::io::BufWriter::new(
                fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
        ))))),
        None => None,
    };
    let limits = Limits {
        violations: args.max_violations,
        ..Limits::default()
    };
    let started = Instant::now();
    let (breach, replayed) = args
        .read
        .replay(&opened, |_| Breach::new(limits, stream.clone()))?;
    if let Some(stream) = stream
        && let Stream::JsonLines(out) | Stream::Text(out) =
            &mut *stream.lock().expect("stream lock")
    {
        out.flush().context("cannot write the violations file")?;
    }
    let scope = BreachScope::new(breach, replayed, started.elapsed().as_secs_f64());
    let text = serde_json::to_string_pretty(&scope)?;
    match &args.output {
        Some(path) => fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            #[allow(clippy::print_stdout)]
            {
                println!("{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Read issues that mean part of the history could not be judged (a torn tail or a segment
/// never closed is what a crash or a running agent leaves, and everything before it is read).
fn loses_evidence(kind: &IssueKind) -> bool {
    !matches!(
        kind,
        IssueKind::TornTail { .. }
            | IssueKind::NotClosed
            | IssueKind::HeaderCopyDamaged
            | IssueKind::TrailingData { .. }
            | IssueKind::FrameOutOfOrder { .. }
            | IssueKind::FrameDuplicate { .. }
    )
}

/// Runs `seam validate`: exit 0 with "N operations validated, 0 violations", 1 listing the
/// violations, 2 when the history cannot be read (keys, store, damage).
#[allow(clippy::print_stdout)]
pub(super) fn validate(args: &ReadArgs) -> anyhow::Result<ExitCode> {
    let opened = match args.open() {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!("seam: error: {error:#}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let stream = Arc::new(Mutex::new(Stream::Text(Box::new(std::io::stdout()))));
    let (breach, replayed) = match args.replay(&opened, |_| {
        Breach::new(Limits::default(), Some(Arc::clone(&stream)))
    }) {
        Ok(done) => done,
        Err(error) => {
            eprintln!("seam: error: {error:#}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let unreadable: Vec<_> = replayed
        .read
        .issues
        .iter()
        .filter(|i| loses_evidence(&i.kind))
        .collect();
    for issue in &unreadable {
        eprintln!("seam: error: {issue}");
    }
    for sample in &replayed.undecodable_samples {
        eprintln!("seam: error: {sample}");
    }
    println!(
        "{} operations validated, {} violations",
        breach.operations, breach.violations.count
    );
    if !unreadable.is_empty() || replayed.undecodable > 0 {
        eprintln!(
            "seam: error: {} part(s) of the history could not be read (above): the verdict \
             covers only what was read",
            unreadable.len() + usize::try_from(replayed.undecodable).unwrap_or(usize::MAX)
        );
        return Ok(ExitCode::from(USAGE_ERROR));
    }
    Ok(if breach.violations.count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5w").is_err());
        assert_eq!(parse_bytes("10G"), Ok(10 << 30));
        assert_eq!(parse_bytes("1234"), Ok(1234));
        assert!(parse_bytes("x").is_err());
    }
}
