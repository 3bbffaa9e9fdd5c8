//! Assembly: kernel events -> spans (third stage). Connections are paired and followed to
//! their close ([`connections`]); process executions run from exec to exit; file accesses are
//! whole at once. Every span is handed on as a [`SpanUpdate`]: rules run when a span starts,
//! export and history take it when it ends.
mod app;
mod connections;
mod files;
mod joins;
#[cfg(test)]
mod tests;
pub(crate) mod tier;

use app::AppJoin;
use connections::Connections;

use crate::{
    attribution::{Attributor, Observed, ProcessInfo},
    kernel::events::{Header, KernelEvent, KernelEventKind, file::FileEvent},
    model::{
        clock::WallClock,
        spans::{ExitStatus, ProcessRef, ProcessRun, Span, SpanBody},
        vocab::{EndReason, JoinOutcome},
    },
    policy::RuleSet,
};

/// A span, at the stage it reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SpanUpdate {
    /// Started and still open: evaluate the rules now; it is exported when it ends.
    Started(Span),
    /// Ended after it started (evaluated then): export and keep it.
    Ended(Span),
    /// Started and ended at once: evaluate, export and keep it.
    Whole(Span),
}

/// What assembly reads besides the events.
pub(crate) struct Ctx<'a> {
    pub attributor: &'a mut Attributor,
    pub rules: &'a RuleSet,
    pub clock: &'a WallClock,
}

/// Builds spans from kernel events.
pub(crate) struct Assembler {
    connections: Connections,
    apps: AppJoin,
    /// Most connection spans (and unpaired ends) held open at once; past it the oldest is
    /// evicted (ended early and counted).
    max_open: usize,
    /// Spans ended early because too many were open.
    pub evicted: u64,
}

/// How long an exec waits for its executable's path before its span is evaluated without it.
const EXE_WAIT_NS: u64 = 100_000_000;

impl Assembler {
    pub(crate) fn new(max_open: usize) -> Self {
        Self {
            connections: Connections::default(),
            apps: AppJoin::default(),
            max_open: max_open.max(1),
            evicted: 0,
        }
    }

    /// Open connection spans and unpaired ends.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Feeds one event; returns the span updates it caused.
    pub(crate) fn on_event(&mut self, event: &KernelEvent, ctx: &mut Ctx<'_>) -> Vec<SpanUpdate> {
        let h = &event.header;
        let mut updates = Vec::new();
        let task = task_of(event, ctx, &mut updates);
        match &event.kind {
            KernelEventKind::Exec { ppid } => updates.extend(exec(h, *ppid, ctx)),
            KernelEventKind::Exit { exit_code } => updates.extend(exit(h, *exit_code, ctx)),
            KernelEventKind::SockAddr { cookie, .. } => {
                if let Some(process) = task {
                    self.connections.intent(*cookie, process, h.time_ns);
                }
            }
            KernelEventKind::TcpState(t) => {
                updates.extend(self.connections.tcp(t, h.cgroup_id, h.time_ns, task, ctx));
            }
            KernelEventKind::TcpClose {
                transition,
                counters,
            } => updates.extend(self.connections.tcp_close(
                transition,
                *counters,
                h.cgroup_id,
                h.time_ns,
                task,
                ctx,
            )),
            KernelEventKind::FlowStart {
                cookie,
                protocol,
                local,
                remote,
                ingress,
            } => updates.extend(self.connections.flow(
                *cookie,
                *protocol,
                *local,
                *remote,
                *ingress,
                h.cgroup_id,
                task,
                h.time_ns,
                ctx,
            )),
            KernelEventKind::File(file) => file_access(h, file, task, ctx, &mut updates),
        }
        updates.extend(self.enforce_cap(h.time_ns));
        updates
    }

    /// Application spans received over OTLP: joined now, or once their connection shows up.
    pub(crate) fn app(
        &mut self,
        spans: Vec<crate::model::app::AppSpanIn>,
        now_ns: u64,
        ctx: &Ctx<'_>,
    ) -> Vec<(JoinOutcome, SpanUpdate)> {
        self.apps.add(spans, now_ns, &self.connections, ctx)
    }

    /// Application spans whose wait for a connection is over.
    pub(crate) fn app_tick(
        &mut self,
        now_ns: u64,
        ctx: &Ctx<'_>,
    ) -> Vec<(JoinOutcome, SpanUpdate)> {
        self.apps.tick(now_ns, &self.connections, ctx)
    }

    /// At shutdown, application spans still waiting.
    pub(crate) fn app_flush(&mut self, ctx: &Ctx<'_>) -> Vec<(JoinOutcome, SpanUpdate)> {
        self.apps.flush(&self.connections, ctx)
    }

    fn enforce_cap(&mut self, now_ns: u64) -> Vec<SpanUpdate> {
        if self.connections.len() <= self.max_open {
            return Vec::new();
        }
        let evicted = self.connections.evict(self.max_open * 9 / 10, now_ns);
        self.evicted += evicted.len() as u64;
        evicted
    }

    /// Periodic work at boot time `now_ns`: pairing windows, idle spans, executions whose
    /// executable never came.
    pub(crate) fn tick(&mut self, now_ns: u64, ctx: &mut Ctx<'_>) -> Vec<SpanUpdate> {
        let mut updates = self.connections.expire(now_ns, ctx);
        let waiting: Vec<ProcessInfo> = ctx
            .attributor
            .processes
            .unevaluated()
            .filter(|p| now_ns.saturating_sub(p.start_ns) >= EXE_WAIT_NS)
            .map(|p| {
                p.evaluated = true;
                p.clone()
            })
            .collect();
        for info in waiting {
            updates.push(SpanUpdate::Started(process_span(&info, ctx)));
        }
        ctx.attributor.processes.expire(now_ns);
        updates
    }

    /// A cgroup is no longer watched: its open connection ends will not report their closes.
    pub(crate) fn unwatched(&mut self, cgroup_id: u64, now_ns: u64) -> Vec<SpanUpdate> {
        self.connections.unwatched(cgroup_id, now_ns)
    }

    /// At shutdown: every open span ends (`agent_stopped`), pending ends become one-sided.
    pub(crate) fn flush(&mut self, now_ns: u64, ctx: &mut Ctx<'_>) -> Vec<SpanUpdate> {
        let mut updates = self.connections.flush(now_ns, ctx);
        let running: Vec<ProcessInfo> = ctx.attributor.processes.running().cloned().collect();
        for info in running {
            let mut span = process_span(&info, ctx);
            span.end = Some(ctx.clock.unix(now_ns.max(info.start_ns)));
            span.end_reason = Some(EndReason::AgentStopped);
            updates.push(ended(span, info.evaluated));
        }
        updates
    }
}

/// The task an event was raised in the context of, which says who the task is (`None` for
/// execs, which name their task themselves, and for softirq events). A task Seam had not seen
/// was running before its exec: its span starts now.
fn task_of(
    event: &KernelEvent,
    ctx: &mut Ctx<'_>,
    updates: &mut Vec<SpanUpdate>,
) -> Option<ProcessRef> {
    let h = &event.header;
    if h.pid == 0 || matches!(event.kind, KernelEventKind::Exec { .. }) {
        return None;
    }
    let (process, observed) =
        ctx.attributor
            .task(h.pid, &h.comm.as_str(), h.uid, h.cgroup_id, h.time_ns);
    if matches!(observed, Observed::New)
        && let Some(info) = ctx.attributor.processes.get(h.pid)
    {
        updates.push(SpanUpdate::Started(process_span(info, ctx)));
    }
    Some(process)
}

/// An exec: the task's previous execution, if any, ends (replaced).
fn exec(h: &Header, ppid: u32, ctx: &mut Ctx<'_>) -> Option<SpanUpdate> {
    let old = ctx.attributor.processes.exec(
        h.pid,
        ppid,
        &h.comm.as_str(),
        h.uid,
        h.cgroup_id,
        h.time_ns,
    )?;
    let mut span = process_span(&old, ctx);
    span.end = Some(ctx.clock.unix(h.time_ns));
    span.end_reason = Some(EndReason::Replaced);
    Some(ended(span, old.evaluated))
}

/// An exit: the execution ends with its exit status.
fn exit(h: &Header, exit_code: u32, ctx: &mut Ctx<'_>) -> Option<SpanUpdate> {
    let info = ctx.attributor.processes.exit(h.pid, h.time_ns)?.clone();
    let mut span = process_span(&info, ctx);
    span.end = Some(ctx.clock.unix(h.time_ns));
    span.end_reason = Some(EndReason::Exited);
    if let SpanBody::Process(run) = &mut span.body {
        run.exit = Some(ExitStatus::from_raw(exit_code));
    }
    Some(ended(span, info.evaluated))
}

/// A file access: whole spans at once. The path of an exec'd binary completes its execution,
/// whose span can then be evaluated.
fn file_access(
    h: &Header,
    file: &FileEvent,
    task: Option<ProcessRef>,
    ctx: &mut Ctx<'_>,
    updates: &mut Vec<SpanUpdate>,
) {
    let mut process = task.unwrap_or_else(|| ctx.attributor.socket(h.cgroup_id, None));
    if file.op == seam_common::FileSyscall::Exec
        && let Some(path) = file.paths.first()
        && let Some(info) = ctx.attributor.processes.set_exe(h.pid, &path.path)
    {
        let first = !info.evaluated;
        info.evaluated = true;
        let info = info.clone();
        process = ctx.attributor.process_ref(&info, h.cgroup_id);
        if first {
            updates.push(SpanUpdate::Started(process_span(&info, ctx)));
        }
    }
    let spans = files::spans(file, process, h.time_ns, ctx);
    updates.extend(spans.into_iter().map(SpanUpdate::Whole));
}

/// An ended span: [`SpanUpdate::Ended`] when it was evaluated at its start, else whole.
fn ended(span: Span, evaluated: bool) -> SpanUpdate {
    if evaluated {
        SpanUpdate::Ended(span)
    } else {
        SpanUpdate::Whole(span)
    }
}

/// The (open) span of a process execution.
fn process_span(info: &ProcessInfo, ctx: &Ctx<'_>) -> Span {
    Span {
        trace_id: info.execution.trace_id,
        span_id: info.execution.span_id,
        parent_span_id: None,
        start: ctx.clock.unix(info.start_ns),
        end: None,
        end_reason: None,
        body: SpanBody::Process(ProcessRun {
            process: ctx.attributor.process_ref(info, info.cgroup_id),
            ppid: info.ppid,
            exit: None,
            exec_seen: info.exec_seen,
        }),
    }
}
