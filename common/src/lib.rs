//! Types shared by Seam's eBPF probes (`ebpf/`) and its agent (`agent/`).
//!
//! Every event starts with one [`EventInfo`] header ([`Event<T>`]), kunai-style, so the agent can
//! decode the header, look at [`EventKind`] and then reinterpret the rest. Everything here is
//! `#[repr(C)]`, `Copy` and free of padding holes the verifier would refuse to copy.
#![no_std]

pub mod budget;
pub mod event;
pub mod file;
pub mod maps;
pub mod offsets;

pub use budget::*;
pub use event::*;
pub use file::*;
pub use maps::*;
pub use offsets::*;
