//! Helpers behind `seam workload store-append | store-read | store-bench`: a real process that
//! appends continuously (for kill-during-write and disk-full tests), a reader that prints what
//! it finds as JSON lines, and a benchmark of sealing against ring's raw AEAD.
use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ring::aead;
use serde_json::json;

use crate::evidence::{
    keys::{
        Actor, ActorKind, Keyring, KeyringError, MasterKey, MasterKeyError, MasterKeySource,
        ScopeError, keyring_dir,
    },
    store::{
        Query, ReadReport, Scope, Store, StoreError, StoreOptions, SyncPolicy, format,
        format::{FRAME_OVERHEAD, RECORD_HEADER_LEN},
        now_ns, replay, seal,
    },
};

/// Why a store workload failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkloadError {
    /// The master key is missing or unusable.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// The keyring could not be opened.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The store could not be opened or closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tenant name is unusable.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// Output or the benchmark's scratch directory failed.
    #[error("store workload I/O: {0}")]
    Io(#[from] io::Error),
}

/// When the appender syncs.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum SyncArg {
    EveryFrame,
    Interval,
    Never,
}

/// Which store and key.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    #[arg(long)]
    pub store: PathBuf,
    /// Master key file (default: SEAM_MASTER_KEY).
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
}

impl StoreArgs {
    fn keyring(&self) -> Result<Arc<Keyring>, WorkloadError> {
        let source =
            MasterKeySource::choose(self.master_key_file.clone()).ok_or(MasterKeyError::Missing)?;
        let master = MasterKey::load(&source)?;
        let actor = Actor::current(ActorKind::Workload);
        Ok(Arc::new(Keyring::open(
            &keyring_dir(&self.store),
            master,
            actor,
        )?))
    }
}

/// `store-append`.
#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Tenants to append to, in turn.
    #[arg(long, value_delimiter = ',', default_value = "a")]
    pub tenants: Vec<String>,
    /// Records to append (0: until --stop-file exists).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Stop (closing the store) once this file exists.
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 64 << 10)]
    pub frame_bytes: usize,
    #[arg(long, value_enum, default_value = "every-frame")]
    pub sync: SyncArg,
    /// Print a progress line (JSON) every N records, after sealing everything buffered.
    #[arg(long, default_value_t = 1000)]
    pub progress_every: u64,
    /// Sleep this long after each progress line.
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
}

/// `store-read`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only these tenants (default: every scope).
    #[arg(long)]
    pub tenant: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print every record (`{"record":...}`) before the report.
    #[arg(long)]
    pub records: bool,
}

/// `store-bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Each phase runs this many times, interleaved; the best run counts (the machine may be
    /// shared).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    #[arg(long, default_value_t = 256)]
    pub record_bytes: usize,
    #[arg(long, default_value_t = 64 << 10)]
    pub frame_bytes: usize,
    /// Scratch directory (default: a new one under the temp dir, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn line(out: &mut impl Write, value: &serde_json::Value) -> io::Result<()> {
    writeln!(out, "{value}")?;
    out.flush()
}

fn fill(record: &mut Vec<u8>, scope: &Scope, i: u64, len: usize) {
    record.clear();
    record.extend_from_slice(format!("{}:{i:010}:", scope.stem()).as_bytes());
    record.resize(len.max(record.len()), b'.');
}

/// Appends records round-robin over the tenants, printing progress; errors (disk full) are
/// reported and counted, never fatal. Prints a final line with the stats and every gap.
pub(crate) fn append(args: &AppendArgs) -> Result<(), WorkloadError> {
    let scopes: Vec<Scope> = args
        .tenants
        .iter()
        .map(|t| Scope::tenant(t))
        .collect::<Result<_, _>>()?;
    let options = StoreOptions {
        frame_bytes: args.frame_bytes,
        sync: match args.sync {
            SyncArg::EveryFrame => SyncPolicy::EveryFrame,
            SyncArg::Interval => SyncPolicy::Interval(Duration::from_millis(100)),
            SyncArg::Never => SyncPolicy::Never,
        },
        ..StoreOptions::default()
    };
    let mut store = Store::open(&args.store.store, args.store.keyring()?, options)?;
    let mut out = io::stdout().lock();
    let mut gaps = Vec::new();
    let mut errors = 0u64;
    let mut record = Vec::with_capacity(args.record_bytes + 32);
    let mut i = 0u64;
    let done = |i: u64| match &args.stop_file {
        Some(stop) => stop.exists(),
        None => args.count > 0 && i >= args.count,
    };
    while !done(i) {
        let scope = &scopes[(i % scopes.len() as u64) as usize];
        fill(&mut record, scope, i, args.record_bytes);
        if let Err(error) = store.append(scope, now_ns(), &record) {
            errors += 1;
            tracing::debug!(%error, "append failed");
        }
        i += 1;
        if args.progress_every > 0 && i.is_multiple_of(args.progress_every) {
            if let Err(error) = store.flush() {
                errors += 1;
                tracing::debug!(%error, "flush failed");
            }
            gaps.extend(store.take_gaps());
            line(
                &mut out,
                &json!({"progress": store.stats(), "errors": errors, "gaps": gaps}),
            )?;
            std::thread::sleep(Duration::from_millis(args.pause_ms));
        }
    }
    if let Err(error) = store.flush() {
        errors += 1;
        tracing::warn!(%error, "final flush failed");
    }
    gaps.extend(store.take_gaps());
    let stats = store.close()?;
    line(
        &mut out,
        &json!({"done": stats, "errors": errors, "gaps": gaps}),
    )?;
    Ok(())
}

/// Reads the store back: optionally every record, then the report (issues with offsets).
pub(crate) fn read(args: &ReadArgs) -> Result<(), WorkloadError> {
    let keyring = args.store.keyring()?;
    let query = if args.tenant.is_empty() {
        Query::all()
    } else {
        Query::scopes(
            args.tenant
                .iter()
                .map(|t| Scope::tenant(t))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let out = std::sync::Mutex::new(io::BufWriter::new(io::stdout()));
    let report = replay(&args.store.store, &keyring, &query, args.threads, &|r| {
        if args.records {
            let value = json!({"record": {
                "scope": r.scope, "time_ns": r.time_ns, "data": String::from_utf8_lossy(r.data)
            }});
            let mut out = out.lock().expect("stdout lock");
            let _ = writeln!(out, "{value}");
        }
    })?;
    let mut out = out.into_inner().expect("stdout lock");
    line(&mut out, &json!({ "report": report }))?;
    out.flush()?;
    Ok(())
}

/// Seal throughput of the store against ring's raw AEAD on the same frame buffers, read
/// throughput, and overhead; prints one JSON object.
pub(crate) fn bench(args: &BenchArgs) -> Result<(), WorkloadError> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "seam-store-bench-{}-{}",
            std::process::id(),
            now_ns()
        ))
    });
    let result = bench_in(&dir, args);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let value = result?;
    line(&mut io::stdout().lock(), &value)?;
    Ok(())
}

fn bench_in(dir: &Path, args: &BenchArgs) -> Result<serde_json::Value, WorkloadError> {
    let keyring = Arc::new(Keyring::init(
        &keyring_dir(dir),
        MasterKey::generate()?,
        Actor::current(ActorKind::Workload),
    )?);
    let scope = Scope::tenant("bench")?;
    // Records as the agent hands them over: freshly serialized, so in cache. A small pool of
    // distinct records, cycled.
    let pool: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let mut r = Vec::new();
            fill(&mut r, &scope, i, args.record_bytes);
            r
        })
        .collect();
    let records = || (0u64..).zip(pool.iter().cycle().take(args.records));
    // The frames the store will seal: the same record encoding, cut at the same size.
    let mut frames = vec![Vec::with_capacity(args.frame_bytes + 4096)];
    for (i, record) in records() {
        let frame = frames.last_mut().expect("one frame at least");
        format::push_record(frame, i, record);
        if frame.len() >= args.frame_bytes {
            frames.push(Vec::with_capacity(args.frame_bytes + 4096));
        }
    }
    let plaintext: u64 = frames.iter().map(|f| f.len() as u64).sum();

    // Raw AEAD on those buffers: seal each frame in place under one key, a new nonce each;
    // then ring's best case, one cache-resident frame sealed over and over.
    let data_key = keyring.active_key(&scope)?;
    let raw_key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, data_key.bytes()).expect("32-byte key"),
    );
    let raw_seal = |seq: usize, frame: &mut Vec<u8>| {
        let tag = raw_key
            .seal_in_place_separate_tag(seal::nonce(seq as u64), aead::Aad::from(&[0u8; 64]), frame)
            .expect("AES-GCM seals a frame");
        let _ = std::hint::black_box(tag);
    };
    let raw = |frames: &mut Vec<Vec<u8>>| {
        let start = Instant::now();
        for (seq, frame) in frames.iter_mut().enumerate() {
            raw_seal(seq, frame);
        }
        start.elapsed().as_secs_f64()
    };
    let mut hot = frames[0].clone();
    let count = frames.len();
    let mut hot_run = || {
        let start = Instant::now();
        for seq in 0..count {
            raw_seal(seq, &mut hot);
        }
        start.elapsed().as_secs_f64() * plaintext as f64 / (hot.len() * count) as f64
    };

    // The store's sealing path (append, batch, seal, frame) without the write, then the whole
    // store writing to its directory (page cache; no fsync).
    let run =
        |discard_frames: bool| -> Result<(crate::evidence::store::StoreStats, f64), WorkloadError> {
            let options = StoreOptions {
                frame_bytes: args.frame_bytes,
                max_segment_bytes: u64::MAX,
                sync: SyncPolicy::Never,
                discard_frames,
                ..StoreOptions::default()
            };
            let mut store = Store::open(dir, Arc::clone(&keyring), options)?;
            let start = Instant::now();
            for (i, record) in records() {
                store.append(&scope, i, record)?;
            }
            let stats = store.close()?;
            Ok((stats, start.elapsed().as_secs_f64()))
        };
    let clear = || -> Result<(), WorkloadError> {
        for segment in crate::evidence::store::segments(dir, &Query::all())? {
            std::fs::remove_file(segment.path)?;
        }
        Ok(())
    };
    // Rounds interleave the phases, so a busy neighbour on a shared machine slows them alike;
    // the best time of each phase counts.
    let (mut raw_s, mut hot_s, mut seal_s, mut store_s) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let mut last = None;
    for _ in 0..args.rounds.max(1) {
        raw_s = raw_s.min(raw(&mut frames));
        hot_s = hot_s.min(hot_run());
        seal_s = seal_s.min(run(true)?.1);
        clear()?;
        let (stats, secs) = run(false)?;
        store_s = store_s.min(secs);
        last = Some(stats);
    }
    // The last run's segments are read back below.
    let stats = last.unwrap_or_default();

    // Read back on all threads.
    let count = AtomicU64::new(0);
    let start = Instant::now();
    let report: ReadReport = replay(dir, &keyring, &Query::all(), args.threads, &|r| {
        std::hint::black_box(r.data);
        count.fetch_add(1, Ordering::Relaxed);
    })?;
    let read_s = start.elapsed().as_secs_f64();
    let mb = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs.max(1e-9);
    Ok(json!({
        "seal_mb_s": mb(stats.bytes_plaintext, seal_s),
        "raw_mb_s": mb(plaintext, raw_s),
        "ratio": mb(stats.bytes_plaintext, seal_s) / mb(plaintext, raw_s),
        "raw_hot_mb_s": mb(plaintext, hot_s),
        "ratio_hot": mb(stats.bytes_plaintext, seal_s) / mb(plaintext, hot_s),
        "store_mb_s": mb(stats.bytes_plaintext, store_s),
        "read_records_s": count.load(Ordering::Relaxed) as f64 / read_s.max(1e-9),
        "read_mb_s": mb(stats.bytes_plaintext, read_s),
        "records": args.records,
        "record_bytes": args.record_bytes,
        "frame_bytes": args.frame_bytes,
        "frames": stats.frames_written,
        "frame_overhead_bytes": FRAME_OVERHEAD,
        "record_overhead_bytes": RECORD_HEADER_LEN,
        "bytes_plaintext": stats.bytes_plaintext,
        "bytes_written": stats.bytes_written,
        "read_issues": report.issues.len(),
    }))
}
