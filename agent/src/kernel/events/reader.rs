//! Drains the ring buffer in batches and hands decoded events to the pipeline; reads the
//! kernel's per-CPU loss counters and hands their totals over when they change. Undecodable
//! records travel as errors, to be counted: nothing is dropped silently.
use std::{sync::Arc, time::Duration};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use seam_common::LossSlot;
use tokio::sync::mpsc;

use super::{KernelBatch, decode};
use crate::{kernel::probes::budget::FloodTotals, metrics::Metrics, model::vocab::ProbeFamily};

/// How often the ring buffer is drained. The probes submit without waking the reader, so
/// events are handled in batches: one wakeup per interval instead of one per event.
pub(crate) const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// Largest batch handed to the pipeline at once.
const BATCH: usize = 4096;

/// The kernel side the reader drains.
pub(crate) struct KernelSource {
    pub ring: RingBuf<MapData>,
    pub losses: PerCpuArray<MapData, u64>,
    /// Events the kernel dropped over tenants' budgets.
    pub floods: crate::kernel::probes::budget::FloodReader,
    /// The probes were given `tcp_sock` counter offsets.
    pub tcp_counters: bool,
}

/// What one drain hands over.
#[derive(Debug)]
pub(crate) enum Drained {
    /// Decoded ring-buffer records.
    Events(KernelBatch),
    /// The kernel's loss counters changed: running totals per probe family.
    Losses(Vec<(ProbeFamily, u64)>),
    /// The kernel dropped events of flooding tenants over their budget: running totals per
    /// tenant name.
    Floods(FloodTotals),
}

/// Drains the ring buffer every [`DRAIN_INTERVAL`] until `stop` fires (then drains once more,
/// so nothing the kernel handed over is left behind) or the pipeline hangs up. Each drain beats
/// the reader's heartbeat (`/healthz`).
pub(crate) async fn run(
    mut source: KernelSource,
    out: mpsc::Sender<Drained>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    metrics: Arc<Metrics>,
) {
    let mut interval = tokio::time::interval(DRAIN_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_losses = [0u64; LossSlot::ALL.len()];
    loop {
        let stopping = tokio::select! {
            _ = interval.tick() => false,
            _ = &mut stop => true,
        };
        metrics.health.reader_beat();
        loop {
            let mut batch: KernelBatch = Vec::new();
            while let Some(record) = source.ring.next() {
                batch.push(decode(&record, source.tcp_counters));
                if batch.len() >= BATCH {
                    break;
                }
            }
            let full = batch.len() >= BATCH;
            if !batch.is_empty() && out.send(Drained::Events(batch)).await.is_err() {
                return;
            }
            if !full {
                break;
            }
        }
        let totals = read_losses(&source.losses);
        if totals != last_losses {
            last_losses = totals;
            let report = LossSlot::ALL
                .iter()
                .zip(totals)
                .map(|((slot, _), total)| (family(*slot), total))
                .collect();
            if out.send(Drained::Losses(report)).await.is_err() {
                return;
            }
        }
        if let Some(floods) = source.floods.poll()
            && out.send(Drained::Floods(floods)).await.is_err()
        {
            return;
        }
        if stopping {
            return;
        }
    }
}

/// The probe family whose events a loss slot counts.
fn family(slot: LossSlot) -> ProbeFamily {
    match slot {
        LossSlot::Process => ProbeFamily::Process,
        LossSlot::SockAddr => ProbeFamily::SockAddr,
        LossSlot::TcpState => ProbeFamily::TcpState,
        LossSlot::Flow => ProbeFamily::Flow,
        LossSlot::File => ProbeFamily::File,
    }
}

/// Sum over CPUs of the kernel's loss counters, in [`LossSlot::ALL`] order.
fn read_losses(map: &PerCpuArray<MapData, u64>) -> [u64; LossSlot::ALL.len()] {
    let mut totals = [0u64; LossSlot::ALL.len()];
    for (total, (slot, _)) in totals.iter_mut().zip(LossSlot::ALL.iter()) {
        *total = map
            .get(&(*slot as u32), 0)
            .map(|values| values.iter().sum())
            .unwrap_or(0);
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loss_slot_is_reported_under_its_label() {
        for (slot, label) in LossSlot::ALL {
            assert_eq!(family(slot).as_str(), label);
        }
    }
}
