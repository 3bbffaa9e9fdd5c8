//! Drains the ring buffer in batches and hands decoded events to the pipeline.
//! Undecodable records are counted; losses in the kernel are read from the per-CPU counters.
use std::{sync::Arc, time::Duration};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use seam_common::LossSlot;
use tokio::sync::mpsc;

use super::{KernelEvent, decode};
use crate::{metrics::Metrics, pipeline::Input};

/// How often the ring buffer is drained. The probes submit without waking the reader, so
/// events are handled in batches: one wakeup per interval instead of one per event.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// Largest batch handed to the pipeline at once.
const BATCH: usize = 4096;

/// Drains the ring buffer every [`DRAIN_INTERVAL`] until `stop` fires (then drains once more,
/// so nothing the kernel handed over is left behind) or the pipeline hangs up. Each drain beats
/// the reader's heartbeat (`/healthz`).
pub async fn run(
    mut ring: RingBuf<MapData>,
    tx: mpsc::Sender<Input>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    metrics: Arc<Metrics>,
) {
    let mut interval = tokio::time::interval(DRAIN_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = interval.tick() => false,
            _ = &mut stop => true,
        };
        metrics.health.reader_beat();
        loop {
            let mut batch: Vec<Result<KernelEvent, String>> = Vec::new();
            while let Some(record) = ring.next() {
                batch.push(decode(&record).map_err(|e| e.to_string()));
                if batch.len() >= BATCH {
                    break;
                }
            }
            let full = batch.len() >= BATCH;
            if !batch.is_empty() && tx.send(Input::Kernel(batch)).await.is_err() {
                return;
            }
            if !full {
                break;
            }
        }
        if stopping {
            return;
        }
    }
}

/// Sum over CPUs of the kernel's loss counters, by [`LossSlot`] label.
pub fn read_losses(map: &PerCpuArray<MapData, u64>) -> Vec<(&'static str, u64)> {
    LossSlot::ALL
        .iter()
        .map(|(slot, label)| {
            let total = map
                .get(&(*slot as u32), 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0);
            (*label, total)
        })
        .collect()
}
