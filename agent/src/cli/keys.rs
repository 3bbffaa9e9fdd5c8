//! `seam keys ...`: the command line of the key layer. Every operation is audited as done by
//! the CLI; output never holds key material (except `escrow recover` without `--out`, which
//! prints the rebuilt master key for a secret store, as asked).
use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::Subcommand;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    evidence::keys::{
        Actor, ActorKind, AuditAction, AuditError, Keyring, KeyringError, MasterKey,
        MasterKeyError, MasterKeySource, Scope, ScopeError, audit, audit::AuditSubject, escrow,
        escrow::EscrowError, keyring, keyring::ScopeInfo, keyring_dir,
    },
    model::clock::UnixNanos,
};

/// `seam keys`: keys of a store.
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    /// Store directory; its keys are in <store>/keys.
    #[arg(long, env = "SEAM_STORE", global = true)]
    pub store: Option<PathBuf>,
    /// File holding the master key (base64, mode 0600); without it, SEAM_MASTER_KEY is used.
    #[arg(long, global = true, value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// A key operation.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create the keyring and the node key; creates --master-key-file if it does not exist.
    Init,
    /// Start a new key epoch for TENANT (--node: the node key; neither: every key). Older
    /// epochs stay readable until retired.
    Rotate {
        #[arg(conflicts_with = "node")]
        tenant: Option<String>,
        #[arg(long)]
        node: bool,
    },
    /// Destroy the key of one epoch (not the active one): TENANT EPOCH, or --node EPOCH.
    Retire {
        #[arg(long)]
        node: bool,
        #[arg(value_name = "TENANT EPOCH", num_args = 1..=2, required = true)]
        target: Vec<String>,
    },
    /// List scopes, epochs, key ids, created and retired times (never key material).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Destroy every epoch of TENANT's keys: its history becomes unreadable (offboarding).
    Shred {
        tenant: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Split the master key into Shamir shares, or rebuild it from them.
    Escrow {
        #[command(subcommand)]
        command: EscrowCommand,
    },
    /// Show the key audit log (who did what to which key, when); --verify checks its chain.
    Audit {
        #[arg(long)]
        verify: bool,
        /// Only entries at or after this time (RFC 3339, or a date: 2026-05-05).
        #[arg(long, value_parser = parse_time)]
        since: Option<u64>,
        /// Only entries before this time (RFC 3339, or a date).
        #[arg(long, value_parser = parse_time)]
        until: Option<u64>,
        /// Only entries about this tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `seam keys escrow ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum EscrowCommand {
    /// Write --shares share files to --out, any --threshold of which rebuild the master key.
    Split {
        #[arg(long, default_value_t = 3)]
        shares: u8,
        #[arg(long, default_value_t = 2)]
        threshold: u8,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Rebuild the master key from share files, verified against its key check value (and the
    /// keyring's, with --store); written to --out (a new 0600 file) or printed as base64.
    Recover {
        #[arg(required = true, value_name = "SHARE")]
        shares: Vec<PathBuf>,
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

/// Why a `seam keys` command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyCliError {
    /// The command needs the store directory.
    #[error("no store: pass --store DIR or set SEAM_STORE")]
    NoStore,
    /// The arguments do not name a key.
    #[error("{0}")]
    Usage(&'static str),
    /// A tenant name is unusable.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The master key is missing or unusable.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// A keyring operation failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Escrow failed.
    #[error(transparent)]
    Escrow(#[from] EscrowError),
    /// The audit log could not be read or written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit log's chain is broken.
    #[error(
        "the key audit log failed verification ({problems} problem(s) above): it was edited; compare it with a backup"
    )]
    AuditBroken { problems: usize },
    /// The recovered key is not this keyring's.
    #[error(
        "the rebuilt master key (check value {found}) is not the keyring's ({expected}); use shares of this keyring's master key"
    )]
    RecoveredOther { expected: String, found: String },
    /// Standard output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

pub(crate) fn parse_time(text: &str) -> Result<u64, String> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).or_else(|_| {
        let format = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]")
            .map_err(|e| e.to_string())?;
        time::Date::parse(text, &format)
            .map(|d| d.midnight().assume_utc())
            .map_err(|e| e.to_string())
    });
    let time = parsed.map_err(|e| format!("{text:?} is not RFC 3339 or YYYY-MM-DD ({e})"))?;
    u64::try_from(time.unix_timestamp_nanos()).map_err(|_| format!("{text:?} is before 1970"))
}

fn store_dir(args: &KeysArgs) -> Result<PathBuf, KeyCliError> {
    args.store.clone().ok_or(KeyCliError::NoStore)
}

fn load_master(args: &KeysArgs) -> Result<MasterKey, KeyCliError> {
    let source =
        MasterKeySource::choose(args.master_key_file.clone()).ok_or(MasterKeyError::Missing)?;
    Ok(MasterKey::load(&source)?)
}

fn open(args: &KeysArgs) -> Result<Keyring, KeyCliError> {
    let dir = keyring_dir(&store_dir(args)?);
    Ok(Keyring::open(
        &dir,
        load_master(args)?,
        Actor::current(ActorKind::Cli),
    )?)
}

/// Runs a `seam keys` command, writing its output to `out`.
pub(crate) fn run(args: &KeysArgs, out: &mut dyn Write) -> Result<ExitCode, KeyCliError> {
    match &args.command {
        KeysCommand::Init => {
            let dir = keyring_dir(&store_dir(args)?);
            let master = match &args.master_key_file {
                Some(path) if !path.exists() => {
                    let key = MasterKey::generate()?;
                    key.write_new_file(path)?;
                    writeln!(out, "created master key file {}", path.display())?;
                    key
                }
                _ => load_master(args)?,
            };
            let keyring = Keyring::init(&dir, master, Actor::current(ActorKind::Cli))?;
            writeln!(
                out,
                "created keyring {} (master key check value {})",
                keyring.dir().display(),
                keyring.master().check_value()
            )?;
        }
        KeysCommand::Rotate { tenant, node } => {
            let keyring = open(args)?;
            let scopes = match (tenant, node) {
                (Some(name), _) => vec![Scope::tenant(name)?],
                (None, true) => vec![Scope::Node],
                (None, false) => keyring::list(keyring.dir())?
                    .into_iter()
                    .map(|s| s.scope)
                    .collect(),
            };
            for scope in scopes {
                let key = keyring.rotate(&scope)?;
                writeln!(out, "{scope}: epoch {} (key id {})", key.epoch, key.key_id)?;
            }
        }
        KeysCommand::Retire { node, target } => {
            let (scope, epoch) = match (node, target.as_slice()) {
                (false, [tenant, epoch]) => (Scope::tenant(tenant)?, epoch),
                (true, [epoch]) => (Scope::Node, epoch),
                _ => return Err(KeyCliError::Usage("give TENANT EPOCH, or --node EPOCH")),
            };
            let epoch = epoch
                .parse()
                .map_err(|_| KeyCliError::Usage("EPOCH must be a number (see `seam keys list`)"))?;
            let retired = open(args)?.retire(&scope, epoch)?;
            writeln!(
                out,
                "{scope}: epoch {epoch} retired (key id {})",
                retired.key_id
            )?;
        }
        KeysCommand::List { json } => {
            let dir = keyring_dir(&store_dir(args)?);
            print_list(&keyring::list(&dir)?, *json, out)?;
        }
        KeysCommand::Shred { tenant, yes } => {
            if !yes {
                return Err(KeyCliError::Usage(
                    "shred destroys every key of the tenant and cannot be undone: add --yes",
                ));
            }
            let scope = Scope::tenant(tenant)?;
            let destroyed = open(args)?.shred(&scope)?;
            writeln!(
                out,
                "{scope}: {destroyed} key(s) destroyed; its history is unreadable"
            )?;
        }
        KeysCommand::Escrow { command } => escrow_command(args, command, out)?,
        KeysCommand::Audit {
            verify,
            since,
            until,
            tenant,
            json,
        } => {
            return audit_command(
                args,
                *verify,
                (*since, *until),
                tenant.as_deref(),
                *json,
                out,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(scopes: &[ScopeInfo], json: bool, out: &mut dyn Write) -> Result<(), KeyCliError> {
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(scopes).expect("listing serializes")
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>5}  {:<9} {:<16}  {:<30}  RETIRED",
        "SCOPE", "EPOCH", "STATE", "KEY ID", "CREATED"
    )?;
    for scope in scopes {
        for epoch in &scope.epochs {
            let state = serde_json::to_value(epoch.state).expect("states serialize");
            writeln!(
                out,
                "{:<24} {:>5}  {:<9} {:<16}  {:<30}  {}",
                scope.scope.to_string(),
                epoch.epoch,
                state.as_str().unwrap_or_default(),
                epoch.key_id,
                UnixNanos::from_u64(epoch.created_ns).rfc3339(),
                epoch
                    .retired_ns
                    .map_or_else(|| "-".to_owned(), |t| UnixNanos::from_u64(t).rfc3339()),
            )?;
        }
    }
    Ok(())
}

fn escrow_command(
    args: &KeysArgs,
    command: &EscrowCommand,
    out: &mut dyn Write,
) -> Result<(), KeyCliError> {
    match command {
        EscrowCommand::Split {
            shares,
            threshold,
            out: dir,
        } => {
            let keyring = args.store.as_ref().map(|_| open(args)).transpose()?;
            let loaded;
            let master = match &keyring {
                Some(keyring) => keyring.master(),
                None => {
                    loaded = load_master(args)?;
                    &loaded
                }
            };
            let split = escrow::split(master, *shares, *threshold)?;
            let paths = escrow::write_shares(dir, &split)?;
            if let Some(keyring) = &keyring {
                keyring.audit(
                    AuditAction::EscrowSplit,
                    AuditSubject {
                        detail: Some(format!(
                            "{shares} shares, threshold {threshold}, written to {}",
                            dir.display()
                        )),
                        ..AuditSubject::default()
                    },
                )?;
            }
            for path in paths {
                writeln!(out, "wrote {}", path.display())?;
            }
            writeln!(
                out,
                "any {threshold} of {shares} shares rebuild the master key (check value {}); keep them apart",
                master.check_value()
            )?;
        }
        EscrowCommand::Recover { shares, out: path } => {
            let read: Vec<_> = shares
                .iter()
                .map(|p| escrow::read_share(p))
                .collect::<Result<_, _>>()?;
            let master = escrow::recover(&read)?;
            let kcv = master.check_value().to_string();
            if let Some(store) = &args.store {
                let dir = keyring_dir(store);
                let expected = Keyring::check_value(&dir)?;
                if expected != kcv {
                    return Err(KeyCliError::RecoveredOther {
                        expected,
                        found: kcv,
                    });
                }
                let subject = AuditSubject {
                    detail: Some(format!("from {} share(s)", shares.len())),
                    ..AuditSubject::default()
                };
                audit::append(
                    &dir,
                    &master,
                    &Actor::current(ActorKind::Cli),
                    AuditAction::EscrowRecover,
                    subject,
                )?;
            }
            match path {
                Some(path) => {
                    master.write_new_file(path)?;
                    writeln!(
                        out,
                        "rebuilt the master key (check value {kcv}) into {}",
                        path.display()
                    )?;
                }
                None => writeln!(out, "{}", master.to_base64().as_str())?,
            }
        }
    }
    Ok(())
}

fn audit_command(
    args: &KeysArgs,
    verify: bool,
    (since, until): (Option<u64>, Option<u64>),
    tenant: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, KeyCliError> {
    let dir = keyring_dir(&store_dir(args)?);
    if verify {
        // The head's HMAC is checked when the master key is at hand.
        let master = MasterKeySource::choose(args.master_key_file.clone())
            .map(|s| MasterKey::load(&s))
            .transpose()?;
        let report = audit::verify(&dir, master.as_ref())?;
        for problem in &report.problems {
            writeln!(out, "line {}: {}", problem.line, problem.what)?;
        }
        if !report.problems.is_empty() {
            return Err(KeyCliError::AuditBroken {
                problems: report.problems.len(),
            });
        }
        writeln!(
            out,
            "audit log intact: {} entries, chain verified, head {}",
            report.entries,
            if report.head_authenticated {
                "authenticated with the master key"
            } else {
                "not authenticated (no master key given)"
            }
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let scope = tenant.map(Scope::tenant).transpose()?;
    for entry in audit::read(&dir)? {
        if since.is_some_and(|t| entry.time_ns < t)
            || until.is_some_and(|t| entry.time_ns >= t)
            || scope
                .as_ref()
                .is_some_and(|s| entry.scope.as_ref() != Some(s))
        {
            continue;
        }
        if json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&entry).expect("entries serialize")
            )?;
            continue;
        }
        let who = &entry.actor;
        let action = serde_json::to_value(entry.action).expect("actions serialize");
        write!(
            out,
            "{} {:<14}",
            entry.time,
            action.as_str().unwrap_or_default()
        )?;
        if let Some(scope) = &entry.scope {
            write!(out, " {scope}")?;
        }
        if let Some(epoch) = entry.epoch {
            write!(out, " epoch {epoch}")?;
        }
        if let Some(key_id) = &entry.key_id {
            write!(out, " key {key_id}")?;
        }
        let user = who.user.as_deref().unwrap_or("?");
        write!(out, " by {user} (uid {})", who.uid)?;
        if let Some(sudo) = &who.sudo_user {
            write!(out, " via sudo from {sudo}")?;
        }
        write!(out, " on {} pid {} ({:?})", who.host, who.pid, who.kind)?;
        if let Some(detail) = &entry.detail {
            write!(out, ": {detail}")?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}
