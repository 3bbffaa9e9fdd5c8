//! Kernel struct offsets the probes need, resolved by the agent from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`) and written into the probes' `.rodata` before load.
//!
//! Rust eBPF has no CO-RE field relocations, so nothing here is hard-coded: a zero
//! `sk_cgroup_ptr` with `valid == 0` means "this kernel's layout is not understood", and the
//! probes that need it are not loaded.

/// Name of the global in the probes that holds [`KernelOffsets`].
pub const GLOBAL_OFFSETS: &str = "SEAM_OFFSETS";

/// Byte offsets of the fields the probes read with `bpf_probe_read_kernel`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// 1 when every field below was resolved from BTF.
    pub valid: u32,
    /// `struct sock_common` inside `struct sock` (`sk->__sk_common`) plus `skc_daddr`.
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    /// `skc_dport` (big endian u16).
    pub skc_dport: u32,
    /// `skc_num` (host order u16, the local port).
    pub skc_num: u32,
    pub skc_family: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    /// `skc_net.net` (a `struct net *`).
    pub skc_net: u32,
    /// `net->ns.inum`.
    pub net_ns_inum: u32,
    /// `sk->sk_cgrp_data.cgroup` (a `struct cgroup *`).
    pub sk_cgroup_ptr: u32,
    /// `cgroup->kn` (a `struct kernfs_node *`).
    pub cgroup_kn: u32,
    /// `kernfs_node->id` (u64; equals the cgroup directory's inode number).
    pub kn_id: u32,
    /// `task_struct->real_parent`.
    pub task_real_parent: u32,
    /// `task_struct->tgid`.
    pub task_tgid: u32,
    /// `task_struct->exit_code`.
    pub task_exit_code: u32,
}

#[cfg(feature = "user")]
// SAFETY: plain #[repr(C)] u32 fields.
unsafe impl aya::Pod for KernelOffsets {}
