//! `seam chaos --from A --to B`: breaks the boundary on purpose and checks that the running
//! agent saw every attempt. From inside a cgroup of tenant A it attempts every crossing Seam
//! claims to see (TCP and UDP over IPv4 and IPv6 to listeners it starts in B's cgroup,
//! connected and unconnected UDP, reads of B's files through absolute and relative paths, `..`,
//! a symlink and a bind mount, create, rename, unlink, truncate, and exec of B's binary), then
//! matches each attempt in the agent's feed by its process and target, prints a pass/fail table
//! (or JSON) and exits 1 when any attempt went unseen. Harmless by design: its own listeners and
//! marker files, made and removed from inside each tenant's own cgroup on every exit path.
//! `--schedule` repeats it and publishes the results as metrics (`seam_chaos_*`).
pub(crate) mod actor;
mod check;
mod plan;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use check::{Outcome, Report};
use plan::{Files, Target};

use crate::{attribution::CgroupRegistry, kernel::preflight, metrics::Metrics, policy::RuleSet};

/// Why a chaos run could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChaosError {
    /// The rules could not be loaded.
    #[error("invalid rules:\n{0}")]
    Rules(String),
    /// A tenant named on the command line is not in the rules.
    #[error("no tenant {0:?} in the rules; name a [[tenant]] of the rules directories given")]
    UnknownTenant(String),
    /// No cgroup of a tenant exists on this node.
    #[error(
        "no cgroup of tenant {0:?} exists on this node; start one of its workloads (or create a \
         cgroup matching its patterns) first"
    )]
    NoCgroup(String),
    /// Preparing the attempts failed.
    #[error("cannot prepare the attempts: {0}")]
    Setup(String),
    /// The node is not usable (root, cgroup v2).
    #[error(transparent)]
    Preflight(#[from] crate::kernel::preflight::PreflightError),
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// `seam chaos`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChaosArgs {
    /// The tenant the attempts come from.
    #[arg(long)]
    from: String,
    /// The tenant whose resources the attempts aim at.
    #[arg(long)]
    to: String,
    /// The rules directories the agent runs with (tenants' cgroups and paths).
    #[arg(long, required = true)]
    rules: Vec<PathBuf>,
    /// A TCP listener of the target tenant to connect to as well (repeatable); chaos always
    /// starts its own listeners in the target's cgroup too.
    #[arg(long, value_name = "ADDR")]
    target: Vec<SocketAddr>,
    /// The running agent's feed file (`seam run --feed-file`): where the attempts must show.
    #[arg(long)]
    feed: PathBuf,
    /// How long to wait for the agent to report the attempts, in seconds.
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run again every SECS seconds, publishing the results as metrics on --listen.
    #[arg(long, value_name = "SECS")]
    schedule: Option<u64>,
    /// Serve the results as Prometheus metrics here (with --schedule).
    #[arg(long, value_name = "ADDR", requires = "schedule")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    listen_security: crate::serve::ListenArgs,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM stop the run between steps, so the cleanup always happens.
fn catch_signals() {
    let handler = nix::sys::signal::SigHandler::Handler(on_signal);
    for sig in [nix::sys::signal::SIGINT, nix::sys::signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { nix::sys::signal::signal(sig, handler) };
    }
}

/// Runs the command; the exit code says whether every attempt was seen.
#[allow(clippy::print_stdout)]
pub(crate) fn run(args: ChaosArgs) -> Result<ExitCode, ChaosError> {
    preflight::require_root()?;
    catch_signals();
    let rules = RuleSet::load_dirs(&args.rules).map_err(|e| ChaosError::Rules(e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let security = crate::serve::ListenSecurity::load(&args.listen_security)
        .map_err(|e| ChaosError::Setup(e.to_string()))?;
    if let (Some(addr), Some(_)) = (args.listen, args.schedule) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ChaosError::Io {
                what: "cannot start the metrics listener".to_owned(),
                source,
            })?;
        let metrics = metrics.clone();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                match crate::serve::metrics::spawn(addr, metrics.clone(), security).await {
                    Ok(_) => {
                        metrics.health.set_ready();
                        std::future::pending::<()>().await;
                    }
                    Err(error) => tracing::error!(%error, "chaos metrics listener"),
                }
            });
        });
    }
    loop {
        let report = once(&args, &rules)?;
        metrics.chaos.record(
            &report
                .outcomes
                .iter()
                .map(|o| (o.attempt.id.as_str(), o.passed()))
                .collect::<Vec<_>>(),
            report.passed,
        );
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        } else {
            print!("{}", check::render(&report));
        }
        let Some(every) = args.schedule else {
            return Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        };
        let until = Instant::now() + Duration::from_secs(every.max(1));
        while Instant::now() < until {
            if STOP.load(Ordering::SeqCst) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The first existing directory among a tenant's paths.
fn tenant_dir(rules: &RuleSet, tenant: &str) -> Option<PathBuf> {
    rules
        .tenant_by_name(tenant)?
        .paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
}

/// One run: prepare, attempt, wait for the agent, clean up.
fn once(args: &ChaosArgs, rules: &RuleSet) -> Result<Report, ChaosError> {
    for name in [&args.from, &args.to] {
        if rules.tenant_by_name(name).is_none() {
            return Err(ChaosError::UnknownTenant(name.clone()));
        }
    }
    let mut registry = CgroupRegistry::new(preflight::cgroup2_mount()?);
    registry.scan(rules);
    let from = registry
        .first_of(&args.from)
        .ok_or_else(|| ChaosError::NoCgroup(args.from.clone()))?;
    let to = registry
        .first_of(&args.to)
        .ok_or_else(|| ChaosError::NoCgroup(args.to.clone()))?;
    let scratch = std::env::temp_dir().join(format!("seam-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|source| ChaosError::Io {
        what: format!("cannot create {}", scratch.display()),
        source,
    })?;
    let mut skipped = Vec::new();
    let result = (|| {
        let mut target = Target::listen(&to, &scratch)?;
        let mut attempts = target.attempts();
        attempts.extend(plan::given(&args.target));
        let mut files = match tenant_dir(rules, &args.to) {
            Some(dir) => {
                let source = tenant_dir(rules, &args.from);
                if source.is_none() {
                    skipped.push(format!(
                        "relative, `..` and symlink reads: tenant {} declares no existing path",
                        args.from
                    ));
                }
                let files = Files::prepare(
                    &to,
                    &dir,
                    source.as_deref().map(|p| (from.as_str(), p)),
                    &scratch,
                )?;
                attempts.extend(files.attempts());
                Some(files)
            }
            None => {
                skipped.push(format!(
                    "file attempts: tenant {} declares no existing path",
                    args.to
                ));
                None
            }
        };
        let outcomes = attempt(
            &from,
            attempts,
            &args.feed,
            Duration::from_secs(args.timeout),
        );
        target.stop();
        if let Some(files) = &mut files {
            files.remove(&to, Some(&from));
        }
        Ok::<_, ChaosError>(outcomes)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    let outcomes = result?;
    let seen = outcomes.iter().filter(|o| o.passed()).count();
    Ok(Report {
        from: args.from.clone(),
        to: args.to.clone(),
        attempts: outcomes.len(),
        seen,
        passed: seen == outcomes.len() && !outcomes.is_empty(),
        outcomes,
        skipped,
    })
}

/// Makes every attempt from `cgroup`, then waits up to `timeout` for the feed to report them.
fn attempt(
    cgroup: &str,
    attempts: Vec<plan::Attempt>,
    feed: &Path,
    timeout: Duration,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(attempts.len());
    for (n, attempt) in attempts.into_iter().enumerate() {
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        let comm = format!("chaos-{n:02}");
        let (pid, error) = match plan::actor(cgroup, &comm, &attempt.action).and_then(|mut cmd| {
            cmd.spawn().map_err(|source| ChaosError::Io {
                what: format!("cannot run attempt {}", attempt.id),
                source,
            })
        }) {
            Ok(mut child) => {
                let pid = child.id();
                match child.wait() {
                    Ok(status) if status.success() => (pid, None),
                    Ok(status) => (pid, Some(format!("exited with {status}"))),
                    Err(e) => (pid, Some(e.to_string())),
                }
            }
            Err(e) => (0, Some(e.to_string())),
        };
        outcomes.push(Outcome {
            attempt,
            pid,
            error,
            seen_by: None,
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        let seen = check::match_feed(feed, &mut outcomes);
        if seen == outcomes.len() || Instant::now() >= deadline || STOP.load(Ordering::SeqCst) {
            return outcomes;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
