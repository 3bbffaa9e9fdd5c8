//! Drains the ring buffer as it becomes readable and hands decoded events to the pipeline.
//! Undecodable records are counted; losses in the kernel are read from the per-CPU counters.
use aya::maps::{MapData, PerCpuArray, RingBuf};
use seam_common::{LOSS_SLOTS, LossSlot};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use super::{KernelEvent, decode};
use crate::pipeline::Input;

/// Reads events until the pipeline hangs up.
pub async fn run(ring: RingBuf<MapData>, tx: mpsc::Sender<Input>) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its map fd for as long as the AsyncFd owns the ring buffer,
    // and `as_raw_fd` always returns that same fd.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut batch: Vec<Result<KernelEvent, String>> = Vec::new();
        while let Some(record) = ring.next() {
            batch.push(decode(&record).map_err(|e| e.to_string()));
            if batch.len() >= 1024 {
                break;
            }
        }
        let drained = batch.len() < 1024;
        if tx.send(Input::Kernel(batch)).await.is_err() {
            return Ok(());
        }
        if drained {
            guard.clear_ready();
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
        .collect::<Vec<_>>()
        .into_iter()
        .take(LOSS_SLOTS as usize)
        .collect()
}
