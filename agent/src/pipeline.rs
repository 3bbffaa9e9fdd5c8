//! The agent's pipeline: kernel events -> attribution -> correlation -> detection -> sinks.
//! One task owns every stage's state, so stages hand typed values to each other without locks.
use std::{collections::BTreeMap, time::Instant};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray};
use seam_common::TenantSlot;
use serde::Serialize;

use crate::{
    attribution::{Attributor, CgroupChanges},
    clock,
    config::RuleSet,
    correlation::{ConnectionSpan, Correlator, FileSpan},
    detect::{Detector, Evidence},
    events::{KernelEvent, KernelEventKind, reader::read_losses},
    metrics::PipelineMetrics,
    sinks::Sinks,
    stats::Stats,
};

/// What the pipeline task receives.
#[derive(Debug)]
pub enum Input {
    /// A batch of decoded ring-buffer records (or why one could not be decoded).
    Kernel(Vec<Result<KernelEvent, String>>),
    /// The cgroup tree may have changed: rescan it.
    CgroupsChanged,
    /// Periodic housekeeping: pairing timeouts, loss counters.
    Tick,
    /// New, validated rules (SIGHUP or a change in the rules directory): swap and rescan.
    Reload(Box<RuleSet>),
}

/// A loss record in the feed: events the kernel could not hand over.
#[derive(Serialize)]
struct LossRecord<'a> {
    kind: &'static str,
    time: String,
    node: &'a str,
    probe: &'static str,
    lost: u64,
    lost_total: u64,
    message: String,
}

/// All stages' state.
pub struct Pipeline {
    pub rules: RuleSet,
    pub attributor: Attributor,
    pub correlator: Correlator,
    pub detector: Detector,
    pub sink: Sinks,
    pub tenant_map: BpfHashMap<MapData, u64, TenantSlot>,
    pub losses: PerCpuArray<MapData, u64>,
    pub stats: Stats,
    pub metrics: PipelineMetrics,
    pub node: String,
    last_losses: BTreeMap<&'static str, u64>,
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rules: RuleSet,
        attributor: Attributor,
        sink: Sinks,
        tenant_map: BpfHashMap<MapData, u64, TenantSlot>,
        losses: PerCpuArray<MapData, u64>,
        node: String,
        live_hooks: Vec<String>,
        metrics: PipelineMetrics,
    ) -> Self {
        let mut stats = Stats::default();
        stats.live_hooks = live_hooks;
        Self {
            rules,
            attributor,
            correlator: Correlator::default(),
            detector: Detector::new(node.clone()),
            sink,
            tenant_map,
            losses,
            stats,
            metrics,
            node,
            last_losses: BTreeMap::new(),
        }
    }

    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Kernel(batch) => {
                for record in batch {
                    match record {
                        Ok(event) => self.on_event(&event),
                        Err(error) => {
                            self.stats.decode_errors += 1;
                            self.metrics.decode_error();
                            tracing::warn!(%error, "undecodable kernel record");
                        }
                    }
                }
            }
            Input::CgroupsChanged => self.rescan(),
            Input::Tick => self.tick(),
            Input::Reload(rules) => {
                self.rules = *rules;
                self.rescan();
                tracing::info!(
                    tenants = self.rules.tenants.len(),
                    rules = self.rules.rules.len(),
                    allows = self.rules.allows.len(),
                    "rules reloaded"
                );
            }
        }
    }

    fn on_event(&mut self, event: &KernelEvent) {
        self.stats.events_total += 1;
        let label = match &event.kind {
            KernelEventKind::Exec { .. } => "exec",
            KernelEventKind::Exit { .. } => "exit",
            KernelEventKind::SockAddr { sendmsg: false, .. } => "connect",
            KernelEventKind::SockAddr { sendmsg: true, .. } => "sendmsg",
            KernelEventKind::TcpState { .. } => "tcp_state",
            KernelEventKind::FlowStart { .. } => "flow_start",
            KernelEventKind::File(_) => "file",
        };
        *self.stats.events_by_kind.entry(label).or_default() += 1;
        self.metrics.event(label);
        let h = &event.header;
        match &event.kind {
            KernelEventKind::Exec { ppid } => {
                self.attributor
                    .processes
                    .exec(h.pid, *ppid, &h.comm, h.uid, h.cgroup_id);
            }
            KernelEventKind::Exit { .. } => self.attributor.processes.exit(h.pid, h.time_ns),
            _ => self
                .attributor
                .processes
                .observe(h.pid, &h.comm, h.uid, h.cgroup_id),
        }
        for span in self.correlator.on_event(event, &self.attributor) {
            self.on_span(&span);
        }
        for span in self.correlator.on_file_event(event, &self.attributor) {
            self.on_file_span(&span);
        }
    }

    fn on_file_span(&mut self, span: &FileSpan) {
        self.stats.file_spans += 1;
        self.detect(span, span.start_ns);
    }

    fn on_span(&mut self, span: &ConnectionSpan) {
        self.stats.spans += 1;
        self.detect(span, span.start_ns);
    }

    /// Evaluates every rule on one span and hands the violations to the sinks.
    fn detect<S: Evidence>(&mut self, span: &S, start_ns: u64) {
        self.metrics.span();
        let time = clock::rfc3339(start_ns);
        let started = Instant::now();
        let violations = self.detector.evaluate(span, &self.rules, &time);
        self.metrics.evaluation(started.elapsed());
        for violation in violations {
            self.stats.violations += 1;
            tracing::info!(
                rule = %violation.rule_id,
                from = ?violation.intended_tenant,
                to = ?violation.actual_tenant,
                "violation"
            );
            self.sink.emit(&violation);
        }
        self.stats.feed_write_errors = self.sink.write_errors;
    }

    /// Rescans cgroupfs and updates the kernel's tenant filter.
    pub fn rescan(&mut self) {
        self.detector.refresh_local();
        let CgroupChanges {
            registered,
            unregistered,
        } = self.attributor.cgroups.scan(&self.rules);
        for cgroup in unregistered {
            // Already gone from the map is fine: the kernel may have freed the id.
            let _ = self.tenant_map.remove(&cgroup.id);
            tracing::info!(cgroup = %cgroup.path, id = cgroup.id, "tenant cgroup unregistered");
        }
        for cgroup in registered {
            let Some(tenant) = cgroup.tenant else {
                continue;
            };
            let slot = TenantSlot {
                tenant_index: tenant.0,
                _pad: 0,
            };
            match self.tenant_map.insert(cgroup.id, slot, 0) {
                Ok(()) => tracing::info!(
                    cgroup = %cgroup.path,
                    id = cgroup.id,
                    tenant = %self.rules.tenant(tenant).name,
                    "tenant cgroup registered"
                ),
                Err(error) => tracing::error!(
                    cgroup = %cgroup.path,
                    %error,
                    "cannot register tenant cgroup in the kernel filter (map full?); its \
                     activity is not observed"
                ),
            }
        }
        self.stats.tenant_cgroups = self.attributor.cgroups.tenant_cgroups();
        self.metrics.tenant_cgroups(self.stats.tenant_cgroups);
    }

    fn tick(&mut self) {
        let now = clock::boot_ns();
        for span in self.correlator.expire(now) {
            self.on_span(&span);
        }
        self.attributor.processes.expire(now);
        self.check_losses(now);
        self.sink.tick();
        self.metrics.heartbeat();
    }

    /// Reports new kernel-side losses in the log and the feed.
    fn check_losses(&mut self, now: u64) {
        for (probe, total) in read_losses(&self.losses) {
            let before = self.last_losses.get(probe).copied().unwrap_or(0);
            if total > before {
                let lost = total - before;
                tracing::warn!(
                    probe,
                    lost,
                    total,
                    "ring buffer full: events lost in the kernel"
                );
                self.metrics.lost(probe, lost);
                let record = LossRecord {
                    kind: "loss",
                    time: clock::rfc3339(now),
                    node: &self.node,
                    probe,
                    lost,
                    lost_total: total,
                    message: format!(
                        "{lost} {probe} events lost (ring buffer full); isolation evidence for \
                         that interval is incomplete"
                    ),
                };
                self.sink.emit(&record);
                self.last_losses.insert(probe, total);
            }
            if total > 0 {
                self.stats.lost.insert(probe, total);
            }
        }
    }

    /// Flushes unpaired ends at shutdown so nothing seen is dropped.
    pub fn finish(&mut self) {
        for span in self.correlator.flush() {
            self.on_span(&span);
        }
        self.check_losses(clock::boot_ns());
        self.sink.finish();
        self.stats.feed_write_errors = self.sink.write_errors;
        self.stats.feed_dropped = self.sink.dropped();
        self.stats.violations_folded = self.sink.folded();
    }
}
