//! The agent's pipeline: kernel events -> attribution -> spans -> detection -> sinks. One task
//! owns every stage's state, so stages hand typed values to each other without locks. It holds
//! no kernel object: the tenant filter is a [`TenantFilter`], and losses arrive as inputs.
pub(crate) mod input;
pub(crate) mod totals;
use std::{collections::BTreeMap, time::Instant};

use crate::{
    assemble::{Assembler, Ctx, SpanUpdate},
    attribution::{Attributor, CgroupChanges},
    detect::Detector,
    evidence::history::{History, record::RunTotals},
    kernel::{
        events::{KernelEvent, KernelEventKind, silence::Silences},
        filter::TenantFilter,
    },
    metrics::PipelineMetrics,
    model::{
        clock,
        clock::{UnixNanos, WallClock},
        loss::LossSubject,
        spans::TenantName,
        vocab::{EventKind, JoinOutcome, Signal},
    },
    output::{Loss, Record, Sinks},
    pipeline::{input::Input, totals::Stats},
    policy::RuleSet,
};

/// The assembly context, borrowing the fields it needs (so the assembler stays free).
macro_rules! ctx {
    ($pipeline:ident) => {
        Ctx {
            attributor: &mut $pipeline.attributor,
            rules: &$pipeline.rules,
            clock: &$pipeline.clock,
        }
    };
}

/// All stages' state.
pub(crate) struct Pipeline {
    rules: RuleSet,
    attributor: Attributor,
    assembler: Assembler,
    detector: Detector,
    sink: Sinks,
    filter: Box<dyn TenantFilter>,
    clock: WallClock,
    own_ports: Vec<u16>,
    pub(crate) stats: Stats,
    metrics: PipelineMetrics,
    node: String,
    /// Loss totals already reported, by what lost them.
    reported: BTreeMap<LossSubject, u64>,
    /// Repeated opens silenced in the kernel once judged.
    silences: Silences,
    ticks: u64,
    /// The sealed history (`--store`), when kept.
    history: Option<History>,
}

/// How the pipeline is set up.
pub(crate) struct PipelineOptions {
    pub node: String,
    /// Most open connection spans; the oldest beyond are evicted (counted).
    pub max_open_spans: usize,
    /// Ports of Seam's own listeners on this node: connections to them are not rule-checked.
    pub own_ports: Vec<u16>,
    pub live_hooks: Vec<String>,
}

impl Pipeline {
    pub(crate) fn new(
        rules: RuleSet,
        attributor: Attributor,
        sink: Sinks,
        filter: Box<dyn TenantFilter>,
        options: PipelineOptions,
        metrics: PipelineMetrics,
    ) -> Self {
        let mut stats = Stats::default();
        stats.live_hooks = options.live_hooks;
        Self {
            silences: Silences::off(&rules),
            ticks: 0,
            rules,
            attributor,
            assembler: Assembler::new(options.max_open_spans),
            detector: Detector::new(options.node.clone()),
            sink,
            filter,
            clock: WallClock::now(),
            own_ports: options.own_ports,
            stats,
            metrics,
            node: options.node,
            reported: BTreeMap::new(),
            history: None,
        }
    }

    /// Where repeated opens are silenced (the kernel's map; off until set).
    pub(crate) fn set_silences(
        &mut self,
        map: Box<dyn crate::kernel::events::silence::SilenceMap>,
    ) {
        self.silences = Silences::new(map, &self.rules);
    }

    /// Keeps every ended span and loss record in the sealed history too.
    pub(crate) fn with_history(mut self, history: History) -> Self {
        self.history = Some(history);
        self
    }

    pub(crate) fn handle(&mut self, input: Input) {
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
            Input::KernelLosses(totals) => {
                for (family, total) in totals {
                    self.report_loss(LossSubject::Probe(family), total);
                }
            }
            Input::TenantFloods(totals) => {
                for (tenant, total) in totals {
                    self.report_loss(LossSubject::Tenant(TenantName::from(tenant)), total);
                }
            }
            Input::App(spans) => {
                let ctx = ctx!(self);
                let joined = self.assembler.app(spans, clock::boot_ns(), &ctx);
                self.on_joined(joined);
            }
            Input::CgroupsChanged => self.rescan(),
            Input::Tick => self.tick(),
            Input::Reload(rules) => {
                self.rules = *rules;
                self.detector.reload(&self.rules);
                self.silences.reload(&self.rules);
                if let Some(history) = &mut self.history {
                    history.rules_reloaded(&self.rules);
                }
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
        let kind = match &event.kind {
            KernelEventKind::Exec { .. } => EventKind::Exec,
            KernelEventKind::Exit { .. } => EventKind::Exit,
            KernelEventKind::SockAddr { sendmsg: false, .. } => EventKind::Connect,
            KernelEventKind::SockAddr { sendmsg: true, .. } => EventKind::Sendmsg,
            KernelEventKind::TcpState(_) => EventKind::TcpState,
            KernelEventKind::TcpClose { .. } => EventKind::TcpClose,
            KernelEventKind::FlowStart { .. } => EventKind::FlowStart,
            KernelEventKind::File(_) => EventKind::File,
        };
        *self.stats.events_by_kind.entry(kind).or_default() += 1;
        self.metrics.event(kind);
        let violations = self.stats.violations;
        let mut ctx = ctx!(self);
        let updates = self.assembler.on_event(event, &mut ctx);
        self.on_updates(updates);
        if let KernelEventKind::File(file) = &event.kind
            && file.dir.is_some()
        {
            let cgroup = event.header.cgroup_id;
            let tenant = self.attributor.cgroups.get(cgroup);
            let tenant = tenant
                .and_then(|c| c.tenant.as_ref())
                .map(|t| t.name.as_str());
            let flagged = self.stats.violations != violations;
            self.silences
                .judged(cgroup, file, flagged, tenant, &self.rules);
        }
    }

    fn on_updates(&mut self, updates: Vec<SpanUpdate>) {
        for update in updates {
            match update {
                SpanUpdate::Started(span) => self.detect(&span),
                SpanUpdate::Ended(span) => self.ended(span),
                SpanUpdate::Whole(span) => {
                    self.detect(&span);
                    self.ended(span);
                }
            }
        }
        self.report_evictions();
    }

    fn on_joined(&mut self, joined: Vec<(JoinOutcome, SpanUpdate)>) {
        for (outcome, update) in joined {
            self.metrics.app_span(outcome);
            self.on_updates(vec![update]);
        }
    }

    /// Evaluates every rule on a span as it starts and hands the violations to the sinks.
    fn detect(&mut self, span: &crate::model::spans::Span) {
        self.stats.count_span(span.name().family());
        if self.to_seam(span) {
            return;
        }
        self.metrics.span();
        let started = Instant::now();
        let violations = self.detector.evaluate(span, &self.rules);
        self.metrics.evaluation(started.elapsed());
        for violation in violations {
            self.stats.violations += 1;
            // Debug, not info: the feed carries every violation, and a log line per violation
            // would cost a write in a flood.
            tracing::debug!(
                rule = %violation.rule_id,
                from = ?violation.intended_tenant,
                to = ?violation.actual_tenant,
                "violation"
            );
            self.sink.emit(Record::Violation(Box::new(violation)));
        }
        self.stats.feed_write_errors = self.sink.write_errors;
    }

    /// Whether `span` is a connection to one of Seam's own listeners (an application sending
    /// its spans, a metrics scrape): Seam is the peer, no tenant's resource is touched.
    fn to_seam(&self, span: &crate::model::spans::Span) -> bool {
        matches!(&span.body, crate::model::spans::SpanBody::Connection(c)
            if c.server.process.is_none()
                && c.server.local
                && self.own_ports.contains(&c.server.addr.port()))
    }

    /// A span that ended: to the history, OTLP export and, with `--feed-spans`, the feed.
    fn ended(&mut self, span: crate::model::spans::Span) {
        self.stats.spans_ended += 1;
        if let Some(history) = &mut self.history {
            history.span(&span, &self.rules);
        }
        self.sink.span(span);
    }

    /// Rescans cgroupfs and updates the kernel's tenant filter.
    fn rescan(&mut self) {
        self.attributor.local = crate::attribution::LocalAddrs::current();
        let CgroupChanges {
            registered,
            unregistered,
        } = self.attributor.cgroups.scan(&self.rules);
        if !registered.is_empty() || !unregistered.is_empty() {
            self.silences.forget();
        }
        let now = clock::boot_ns();
        for cgroup in unregistered {
            self.filter.unwatch(cgroup.id);
            let updates = self.assembler.unwatched(cgroup.id, now);
            self.on_updates(updates);
            tracing::info!(cgroup = ?cgroup.path, id = cgroup.id, "tenant cgroup unregistered");
        }
        for cgroup in registered {
            let Some(tenant) = &cgroup.tenant else {
                continue;
            };
            match self.filter.watch(cgroup.id, tenant.name.as_str()) {
                Ok(()) => tracing::info!(
                    cgroup = ?cgroup.path,
                    id = cgroup.id,
                    tenant = %tenant.name,
                    "tenant cgroup registered"
                ),
                Err(error) => tracing::error!(
                    cgroup = ?cgroup.path,
                    %error,
                    "cannot register tenant cgroup in the kernel filter (map full?); its \
                     activity is not observed"
                ),
            }
        }
        let (unresolved, runtime) = self.attributor.cgroups.unresolved_pods();
        self.report_loss(LossSubject::Runtime(runtime), unresolved);
        self.stats.tenant_cgroups = self.attributor.cgroups.tenant_cgroups();
        self.metrics.tenant_cgroups(self.stats.tenant_cgroups);
    }

    fn tick(&mut self) {
        self.clock.refresh();
        let now = clock::boot_ns();
        let mut ctx = ctx!(self);
        let updates = self.assembler.tick(now, &mut ctx);
        self.on_updates(updates);
        let ctx = ctx!(self);
        let joined = self.assembler.app_tick(now, &ctx);
        self.on_joined(joined);
        self.metrics.open_spans(
            self.assembler.open_connections(),
            self.attributor.processes.len(),
        );
        self.sink.tick();
        self.ticks += 1;
        if self.ticks.is_multiple_of(10) {
            self.count_silenced();
        }
        if let Some(dropped) = self.sink.otlp_dropped() {
            self.report_otlp_losses(dropped);
        }
        self.report_feed_losses();
        if let Some(lost) = self.history.as_ref().map(History::lost) {
            for (reason, total) in lost {
                self.report_loss(LossSubject::Store(reason), total);
            }
        }
        self.metrics.heartbeat();
    }

    /// The repeats the kernel counted instead of sending: into the stats.
    fn count_silenced(&mut self) {
        let counts = self.silences.collect();
        for (label, count) in &counts {
            self.stats.file_opens_counted += count;
            *self
                .stats
                .file_opens_counted_by
                .entry(label.clone())
                .or_default() += count;
        }
        for (label, count) in &counts {
            self.metrics
                .file_opens_counted(&label.tenant, &label.owner, label.class, *count);
        }
        let new = self.silences.silenced - self.stats.file_silences;
        self.metrics.file_silences(new);
        self.stats.file_silences = self.silences.silenced;
    }

    /// Reports what the OTLP exporter dropped (totals per signal).
    fn report_otlp_losses(&mut self, dropped: [(Signal, u64); 2]) {
        for (signal, total) in dropped {
            self.report_loss(LossSubject::Signal(signal), total);
        }
    }

    /// Reports what the feed sinks dropped (queue full, retries exhausted, write errors,
    /// shutdown), per sink and reason.
    fn report_feed_losses(&mut self) {
        for (sink, reason, total) in self.sink.feed_losses() {
            self.report_loss(LossSubject::Sink { sink, reason }, total);
        }
    }

    /// Spans the assembler ended early: counted, and reported like any loss of evidence.
    fn report_evictions(&mut self) {
        let evicted = self.assembler.evicted;
        if evicted > self.stats.spans_evicted {
            self.stats.spans_evicted = evicted;
            self.report_loss(LossSubject::Connections, evicted);
        }
    }

    /// Reports a loss total that grew: in the log, the metrics and the feed.
    fn report_loss(&mut self, subject: LossSubject, total: u64) {
        let before = self.reported.get(&subject).copied().unwrap_or(0);
        if total <= before {
            return;
        }
        let lost = total - before;
        let message = loss_message(&subject, lost);
        let source = subject.source();
        tracing::warn!(%source, probe = %subject, lost, total, "{message}");
        self.metrics.lost(&subject, lost);
        if let LossSubject::Probe(family) = subject {
            self.stats.lost.insert(family, total);
        }
        let loss = Loss {
            time: UnixNanos::now(),
            node: self.node.clone(),
            subject: subject.clone(),
            lost,
            lost_total: total,
            message,
        };
        self.reported.insert(subject, total);
        if let Some(history) = &mut self.history {
            history.loss(&loss);
        }
        self.sink.emit(Record::Loss(loss));
    }

    /// At shutdown, first: every open span ends and goes to the sinks, open aggregates are
    /// emitted, and the webhooks and the exporter stop taking records (they deliver what they
    /// hold until `deadline`). Returns their workers, to wait for.
    pub(crate) fn finish(&mut self, deadline: std::time::Instant) -> crate::output::Draining {
        self.count_silenced();
        let ctx = ctx!(self);
        let joined = self.assembler.app_flush(&ctx);
        self.on_joined(joined);
        let mut ctx = ctx!(self);
        let updates = self.assembler.flush(clock::boot_ns(), &mut ctx);
        self.on_updates(updates);
        if let Some(dropped) = self.sink.otlp_dropped() {
            self.report_otlp_losses(dropped);
        }
        self.report_feed_losses();
        self.sink.begin_finish(deadline)
    }

    /// At shutdown, last: what the sinks and the exporter (`otlp`: its final drop totals)
    /// dropped while stopping goes to the feed file and stdout, and into the stats.
    pub(crate) fn report_final(&mut self, otlp: Option<[(Signal, u64); 2]>) {
        if let Some(dropped) = otlp {
            self.report_otlp_losses(dropped);
        }
        self.report_feed_losses();
        self.stats.feed_write_errors = self.sink.write_errors;
        self.stats.feed_dropped = self.sink.dropped();
        self.stats.violations_folded = self.sink.folded();
        if let Some(history) = self.history.take() {
            let totals = RunTotals {
                events: self.stats.events_total,
                spans_ended: self.stats.spans_ended,
                violations: self.stats.violations,
                events_lost: self.stats.lost.values().sum(),
                records_lost: 0,
            };
            self.stats.history = Some(history.finish(totals));
        }
    }

    /// How long the sinks may keep delivering once the agent stops.
    pub(crate) fn shutdown_grace(&self) -> std::time::Duration {
        self.sink.shutdown_grace()
    }
}

/// What a loss record says: what was lost, why, and what it costs.
fn loss_message(subject: &LossSubject, lost: u64) -> String {
    match subject {
        LossSubject::Probe(probe) => format!(
            "{lost} {probe} events lost (ring buffer full); isolation evidence for that interval \
             is incomplete"
        ),
        LossSubject::Tenant(tenant) => format!(
            "tenant {tenant} flooded: {lost} of its events dropped in the kernel over its event \
             budget (--tenant-event-rate, --tenant-event-burst); its own evidence for that \
             interval is incomplete, other tenants' is not"
        ),
        LossSubject::Connections => format!(
            "{lost} open connection spans ended early (more than --max-open-spans were open); \
             their ends and byte counts are missing"
        ),
        LossSubject::Signal(signal) => format!(
            "{lost} OTLP {signal} records dropped (receiver slow, down or refusing); see \
             seam_otlp_dropped_total for why"
        ),
        LossSubject::Sink { .. } => format!(
            "{lost} feed records dropped by {subject} (its receiver is slow, down or failing, or \
             the agent stopped first); see seam_feed_dropped_total"
        ),
        LossSubject::Store(reason) => format!(
            "{lost} history records not kept ({reason}); detection and the feeds go on, and \
             `seam report` lists the gap"
        ),
        LossSubject::Runtime(runtime) => format!(
            "{lost} container cgroups left unattributed: the {runtime} runtime did not name their \
             pods, so tenants declared by namespace or pod labels cannot claim them and their \
             activity is not observed"
        ),
    }
}

#[cfg(test)]
mod tests;
