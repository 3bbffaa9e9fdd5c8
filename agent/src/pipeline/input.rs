//! What the pipeline handles, and where it comes from. Producers never see this type: each
//! hands its own output to a channel (or a [`crate::model::handoff::Notifier`]) the daemon
//! wired, and [`Inlets::run`] turns what arrives into one [`Input`] at a time.
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::Pipeline;
use crate::{
    kernel::events::{KernelBatch, reader::Drained},
    model::{app::AppSpanIn, handoff::Notices},
    policy::RuleSet,
};

/// How often the pipeline does its housekeeping ([`Input::Tick`]).
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// One input to the pipeline.
#[derive(Debug)]
pub(crate) enum Input {
    /// Decoded ring-buffer records.
    Kernel(KernelBatch),
    /// The kernel's loss counters changed: running totals per probe family.
    KernelLosses(Vec<(crate::model::vocab::ProbeFamily, u64)>),
    /// The kernel dropped events of flooding tenants over their budget: running totals per
    /// tenant name.
    TenantFloods(crate::kernel::probes::budget::FloodTotals),
    /// The cgroup tree may have changed: rescan it.
    CgroupsChanged,
    /// Periodic housekeeping: pairing windows, idle spans, aggregation windows, the clock.
    Tick,
    /// New, validated rules (SIGHUP or a change in the rules directory): swap and rescan.
    Reload(Box<RuleSet>),
    /// Spans applications sent over OTLP, to be joined to the kernel's view.
    App(Vec<AppSpanIn>),
}

impl From<Drained> for Input {
    fn from(drained: Drained) -> Self {
        match drained {
            Drained::Events(batch) => Input::Kernel(batch),
            Drained::Losses(totals) => Input::KernelLosses(totals),
            Drained::Floods(totals) => Input::TenantFloods(totals),
        }
    }
}

/// The consumer ends of every producer's hand-off.
#[derive(Debug)]
pub(crate) struct Inlets {
    /// The ring-buffer reader.
    pub kernel: mpsc::Receiver<Drained>,
    /// The cgroup watcher and the pod directory.
    pub cgroups: Notices,
    /// Rules reloads.
    pub rules: mpsc::Receiver<Box<RuleSet>>,
    /// The OTLP receiver.
    pub app: mpsc::Receiver<Vec<AppSpanIn>>,
}

impl Inlets {
    /// Feeds `pipeline` until `stop` fires, then hands it what is already queued and one last
    /// tick (or if `stop` is dropped).
    pub(crate) async fn run(mut self, pipeline: &mut Pipeline, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            let input = tokio::select! {
                Some(drained) = self.kernel.recv() => Input::from(drained),
                Some(()) = self.cgroups.next() => Input::CgroupsChanged,
                Some(rules) = self.rules.recv() => Input::Reload(rules),
                Some(spans) = self.app.recv() => Input::App(spans),
                _ = tick.tick() => Input::Tick,
                _ = &mut stop => break,
            };
            pipeline.handle(input);
        }
        while let Some(input) = self.try_next() {
            pipeline.handle(input);
        }
        pipeline.handle(Input::Tick);
    }

    /// An input already queued, without waiting.
    fn try_next(&mut self) -> Option<Input> {
        if let Ok(drained) = self.kernel.try_recv() {
            return Some(drained.into());
        }
        if self.cgroups.try_next() {
            return Some(Input::CgroupsChanged);
        }
        if let Ok(rules) = self.rules.try_recv() {
            return Some(Input::Reload(rules));
        }
        self.app.try_recv().ok().map(Input::App)
    }
}
