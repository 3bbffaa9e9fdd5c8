//! Hand-offs between stages. A producer gets a handle (a [`Notifier`], or a channel sender of
//! its own output type) and never imports its consumer; the daemon wires producers to the
//! pipeline, as vector's topology hands each source its `out` and Tetragon's observer takes
//! listeners.
use tokio::sync::mpsc::{self, error::TrySendError};

/// Tells a consumer that something changed (e.g. the cgroup tree). Notices given before the
/// consumer looks are one notice: the consumer rescans once.
#[derive(Clone, Debug)]
pub(crate) struct Notifier(mpsc::Sender<()>);

/// The consumer's end of a [`Notifier`].
#[derive(Debug)]
pub(crate) struct Notices(mpsc::Receiver<()>);

/// A notifier and its consumer's end.
pub(crate) fn notifier() -> (Notifier, Notices) {
    let (tx, rx) = mpsc::channel(1);
    (Notifier(tx), Notices(rx))
}

impl Notifier {
    /// Gives notice; `false` once the consumer is gone (the producer may stop).
    pub(crate) fn notify(&self) -> bool {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => true,
            Err(TrySendError::Closed(())) => false,
        }
    }
}

impl Notices {
    /// Waits for a notice; `None` once every notifier is gone.
    pub(crate) async fn next(&mut self) -> Option<()> {
        self.0.recv().await
    }

    /// A notice already given, without waiting.
    pub(crate) fn try_next(&mut self) -> bool {
        self.0.try_recv().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::notifier;

    #[tokio::test]
    async fn notices_before_the_consumer_looks_are_one() {
        let (tx, mut rx) = notifier();
        assert!(tx.notify());
        assert!(tx.notify());
        assert!(rx.try_next());
        assert!(!rx.try_next());
        drop(rx);
        assert!(!tx.notify());
    }
}
