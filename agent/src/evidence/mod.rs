//! Evidence: the per-tenant sealed store ([`store`]), its keys ([`keys`]: keyring, escrow,
//! audit log, shred) and the history built on them ([`history`]: what the agent keeps, replay,
//! breach scope, reports).
pub(crate) mod history;
pub(crate) mod keys;
pub(crate) mod store;
