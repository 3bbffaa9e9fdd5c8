//! Evidence Seam could not keep, as one typed record: the kernel's ring, a tenant's budget, a
//! sink, the exporter, the store. Every part that loses something reports it this way.
use serde::{Serialize, Serializer};

use crate::model::{clock::UnixNanos, vocab::LossSource};

/// Evidence Seam could not keep: what, how much, when. Never silent.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Loss {
    /// Always `"loss"` (tells loss records from violations in the feed).
    pub kind: LossTag,
    pub time: UnixNanos,
    pub node: String,
    pub source: LossSource,
    /// The probe family (ring buffer losses), sink or other part that lost records.
    pub probe: String,
    /// Lost since the previous loss record of this source and probe.
    pub lost: u64,
    /// Lost since the agent started.
    pub lost_total: u64,
    pub message: String,
}

/// The constant `kind` of a [`Loss`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LossTag;

impl Serialize for LossTag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("loss")
    }
}
