//! `seam workload history-fill`: writes a synthetic history of realistic spans (Kubernetes-like
//! cgroup paths, executables, crossings between tenants) through the history's encoding,
//! routing and the sealed store, for the replay benchmark and the store's bytes per span.
use std::{path::PathBuf, sync::Arc, time::Instant};

use serde_json::json;

use crate::{
    evidence::{
        history::{record, route},
        keys::{
            Actor, ActorKind, Keyring, KeyringError, MasterKey, MasterKeyError, MasterKeySource,
            Scope, ScopeError, keyring_dir,
        },
        store::{Store, StoreError, StoreOptions, SyncPolicy},
    },
    model::{
        clock::UnixNanos,
        spans::{
            Connection, ConnectionEnd, FileAccess, ProcessRef, Span, SpanBody, SpanId, SpanRef,
            TenantName, TenantRef, TraceId, Traffic,
        },
        vocab::{EndReason, FileOp, Outcome, PathConfidence, Tier, Transport},
    },
    policy::RuleSet,
};

/// Why the fill failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FillError {
    /// The master key is missing or unusable.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// The keyring could not be opened or created.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tenant name is unusable.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The demo rules did not load (a build problem).
    #[error("the embedded demo rules do not load: {0}")]
    Rules(String),
}

/// `history-fill`.
#[derive(Debug, clap::Args)]
pub(crate) struct FillArgs {
    /// Store directory (created, with its keyring, if need be).
    #[arg(long)]
    pub store: PathBuf,
    /// Master key file (default: SEAM_MASTER_KEY).
    #[arg(long)]
    pub master_key_file: Option<PathBuf>,
    /// Spans to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub spans: u64,
    /// Tenants (tenant-0, tenant-1, ...).
    #[arg(long, default_value_t = 4)]
    pub tenants: usize,
    /// One span in N is a crossing into the next tenant.
    #[arg(long, default_value_t = 20)]
    pub cross_every: u64,
}

fn process(tenant: &TenantRef, pid: u32, trace: TraceId) -> ProcessRef {
    ProcessRef {
        pid: Some(pid),
        comm: format!("worker-{}", pid % 97).into(),
        exe: Some("/usr/local/bin/python3.11".into()),
        uid: Some(1000 + pid % 7),
        cgroup_id: 10_000 + u64::from(pid % 512),
        cgroup_path: format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}_{}.slice/cri-containerd-{:016x}.scope",
            tenant.name,
            pid % 512,
            u64::from(pid) * 0x9e37_79b9
        )
        .into(),
        tenant: Some(tenant.clone()),
        container: None,
        execution: Some(SpanRef {
            trace_id: trace,
            span_id: SpanId::random(),
        }),
    }
}

/// The i-th synthetic span: mostly connections within a tenant, file reads, one crossing in
/// `cross_every`.
fn span(i: u64, tenants: &[TenantRef], cross_every: u64) -> Span {
    let n = tenants.len() as u64;
    let own = &tenants[(i % n) as usize];
    let other = if i.is_multiple_of(cross_every) {
        &tenants[((i + 1) % n) as usize]
    } else {
        own
    };
    let trace = TraceId::random();
    let pid = 1000 + (i % 30_000) as u32;
    let start = UnixNanos(1_700_000_000_000_000_000 + (i as i64) * 50_000);
    let body = if i % 4 == 3 {
        SpanBody::File(FileAccess {
            process: process(own, pid, trace),
            op: FileOp::Read,
            outcome: Outcome::Ok,
            ret: 3,
            path: format!(
                "/var/lib/volumes/{}/data/part-{:05}.parquet",
                other.name,
                i % 10_000
            ),
            path_confidence: PathConfidence::Full,
            path_truncated: false,
            owner: Some(other.clone()),
            role: None,
            tier: (i % 8 == 3).then_some(Tier::Regulated),
        })
    } else {
        let end = |tenant: &TenantRef, pid: u32, port: u16| ConnectionEnd {
            addr: std::net::SocketAddr::from(([10, 42, (pid % 200) as u8, 7], port)),
            process: Some(process(tenant, pid, trace)),
            tenant: Some(tenant.clone()),
            local: true,
            traffic: Some(Traffic {
                bytes_sent: 1200 + i % 5000,
                bytes_received: 30_000 + i % 70_000,
                bytes_retransmitted: 0,
                segments_sent: 12,
                segments_received: 31,
            }),
            tier: None,
        };
        SpanBody::Connection(Connection {
            transport: Transport::Tcp,
            netns: Some(4_026_531_840),
            client: end(own, pid, 40_000 + (i % 20_000) as u16),
            server: end(other, pid + 1, 5432),
        })
    };
    Span {
        trace_id: trace,
        span_id: SpanId::random(),
        parent_span_id: Some(SpanId::random()),
        start,
        end: Some(UnixNanos(start.0 + 3_000_000)),
        end_reason: Some(EndReason::Closed),
        body,
    }
}

/// Writes the history; prints one JSON line (spans, records, bytes per span, time).
#[allow(clippy::print_stdout)]
pub(crate) fn fill(args: &FillArgs) -> Result<(), FillError> {
    let source =
        MasterKeySource::choose(args.master_key_file.clone()).ok_or(MasterKeyError::Missing)?;
    let master = MasterKey::load(&source)?;
    let keys = keyring_dir(&args.store);
    let actor = Actor::current(ActorKind::Workload);
    let keyring = match Keyring::check_value(&keys) {
        Err(KeyringError::NotInitialized { .. }) => Keyring::init(&keys, master, actor)?,
        _ => Keyring::open(&keys, master, actor)?,
    };
    let rules = RuleSet::demo().map_err(|e| FillError::Rules(e.to_string()))?;
    let options = StoreOptions {
        sync: SyncPolicy::Never,
        ..StoreOptions::default()
    };
    let mut store = Store::open(&args.store, Arc::new(keyring), options)?;
    let tenants: Vec<TenantRef> = (0..args.tenants.max(1))
        .map(|i| TenantRef {
            name: TenantName::new(&format!("tenant-{i}")),
            shared: false,
        })
        .collect();
    let scopes: Vec<Scope> = tenants
        .iter()
        .map(|t| Scope::tenant(t.name.as_str()))
        .collect::<Result<_, _>>()?;
    let mut buf = Vec::with_capacity(1024);
    let mut records = 0u64;
    let started = Instant::now();
    for i in 0..args.spans {
        let span = span(i, &tenants, args.cross_every.max(1));
        let owners = route::tenants(&span, &rules);
        let copies = u8::try_from(owners.len().max(1)).unwrap_or(u8::MAX);
        record::encode_span(&mut buf, copies, &span);
        for owner in &owners {
            if let Some(k) = tenants.iter().position(|t| t.name == *owner) {
                store.append(&scopes[k], span.start.as_u64(), &buf)?;
                records += 1;
            }
        }
    }
    let stats = store.close()?;
    let elapsed = started.elapsed().as_secs_f64();
    let value = json!({
        "spans": args.spans,
        "records": records,
        "bytes_plaintext": stats.bytes_plaintext,
        "bytes_written": stats.bytes_written,
        "bytes_per_span": stats.bytes_written as f64 / args.spans.max(1) as f64,
        "bytes_per_record": stats.bytes_written as f64 / records.max(1) as f64,
        "elapsed_s": elapsed,
        "spans_per_s": args.spans as f64 / elapsed.max(1e-9),
    });
    println!("{value}");
    Ok(())
}
