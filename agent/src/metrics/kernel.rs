//! The kernel's side as the agent reads it: events by kind, events the ring buffer lost, the
//! hooks attached, and the repeated file opens the kernel counted instead of sending.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::model::vocab::{AccessClass, EventKind, ProbeFamily};

/// Labels of `seam_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub kind: EventKind,
}

/// Labels of `seam_events_lost_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeLabel {
    pub probe: ProbeFamily,
}

/// Labels of `seam_hooks_live` (an attach point: `cgroup/connect4`, `tp_btf/sys_exit`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HookLabel {
    pub hook: String,
}

/// Labels of `seam_file_opens_counted_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CountedLabels {
    pub tenant: String,
    pub owner: String,
    pub op: AccessClass,
}

/// The kernel's families.
#[derive(Debug, Clone)]
pub(crate) struct KernelMetrics {
    pub(super) events: Family<KindLabel, Counter>,
    pub(super) events_lost: Family<ProbeLabel, Counter>,
    pub(super) decode_errors: Counter,
    hooks_live: Family<HookLabel, Gauge>,
    file_opens_counted: Family<CountedLabels, Counter>,
    pub(super) file_silences: Counter,
}

impl KernelMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let events = Family::<KindLabel, Counter>::default();
        registry.register("events", "Kernel events handled, by kind", events.clone());
        let events_lost = Family::<ProbeLabel, Counter>::default();
        registry.register(
            "events_lost",
            "Events the kernel could not hand over (ring buffer full), by probe family",
            events_lost.clone(),
        );
        let decode_errors = Counter::default();
        registry.register(
            "decode_errors",
            "Ring buffer records that could not be decoded",
            decode_errors.clone(),
        );
        let hooks_live = Family::<HookLabel, Gauge>::default();
        registry.register(
            "hooks_live",
            "Kernel hooks attached (1 per live hook)",
            hooks_live.clone(),
        );
        let file_opens_counted = Family::<CountedLabels, Counter>::default();
        registry.register(
            "file_opens_counted",
            "Repeated opens the kernel counted instead of sending (silenced once judged), by \
             caller tenant, owner tenant of the file and op",
            file_opens_counted.clone(),
        );
        let file_silences = Counter::default();
        registry.register(
            "file_silences",
            "(cgroup, directory, access class) keys whose repeated opens were silenced",
            file_silences.clone(),
        );
        Self {
            events,
            events_lost,
            decode_errors,
            hooks_live,
            file_opens_counted,
            file_silences,
        }
    }

    /// Marks `hooks` (attach points) live.
    pub(crate) fn set_live_hooks(&self, hooks: &[String]) {
        for hook in hooks {
            self.hooks_live
                .get_or_create(&HookLabel { hook: hook.clone() })
                .set(1);
        }
    }

    /// `count` repeated opens of class `op` by `tenant` of files `owner` owns.
    pub(crate) fn file_opens_counted(
        &self,
        tenant: &str,
        owner: &str,
        op: AccessClass,
        count: u64,
    ) {
        self.file_opens_counted
            .get_or_create(&CountedLabels {
                tenant: tenant.to_owned(),
                owner: owner.to_owned(),
                op,
            })
            .inc_by(count);
    }
}
