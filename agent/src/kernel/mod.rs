//! The kernel stage: the probes (loading, the probe table, BTF offsets, the tenant filter and
//! the other maps), the ring buffer's records decoded into events, the node's fingerprint and the
//! fleet comparison of fingerprints, and the start-up checks of the node.
pub(crate) mod events;
pub(crate) mod filter;
pub(crate) mod fingerprint;
pub(crate) mod fleet;
pub(crate) mod preflight;
pub(crate) mod probes;
