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
    /// `tcp_sock->bytes_received`, `bytes_sent`, `bytes_retrans` (u64) and `segs_in`,
    /// `segs_out` (u32): counters read when a socket closes (0 when unresolved: the close then
    /// carries zeros and `tcp_counters_valid` tells the agent not to trust them).
    pub tcp_bytes_received: u32,
    pub tcp_bytes_sent: u32,
    pub tcp_bytes_retrans: u32,
    pub tcp_segs_in: u32,
    pub tcp_segs_out: u32,
    /// 1 when the four `tcp_*` counter offsets above were resolved.
    pub tcp_counters_valid: u32,
    /// `task_struct->real_parent`.
    pub task_real_parent: u32,
    /// `task_struct->tgid`.
    pub task_tgid: u32,
    /// `task_struct->exit_code`.
    pub task_exit_code: u32,
    /// 1 when every file offset below was resolved (file probes stay off otherwise).
    pub files_valid: u32,
    /// `task_struct->files`, `files_struct->fdt`, `fdtable->fd`, `fdtable->max_fds`.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    /// `task_struct->fs`, `fs_struct->root`, `fs_struct->pwd` (struct path, embedded).
    pub task_fs: u32,
    pub fs_root: u32,
    pub fs_pwd: u32,
    /// `file->f_path` (struct path, embedded) and `file->f_mode`.
    pub file_path: u32,
    pub file_mode: u32,
    /// `path->mnt`, `path->dentry`.
    pub path_mnt: u32,
    pub path_dentry: u32,
    /// `dentry->d_parent`, `dentry->d_name.name`.
    pub dentry_parent: u32,
    pub dentry_name: u32,
    /// `mount->mnt` (the embedded vfsmount), `mount->mnt_parent`, `mount->mnt_mountpoint`.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    /// `vfsmount->mnt_root`.
    pub vfsmount_root: u32,
    /// `linux_binprm->file`.
    pub bprm_file: u32,
    /// Offset of the first argument in a syscalls:sys_enter_* record, and of `ret` in a
    /// sys_exit_* record (from tracefs `format`; 16 on every kernel seen so far).
    pub syscall_args: u32,
    pub syscall_ret: u32,
    /// `socket->sk` and `sock->sk_protocol`, for the connect hooks that see a `struct socket`
    /// (BPF LSM / fentry `socket_connect`); 0 when unresolved (those hooks stay off).
    pub socket_sk: u32,
    pub sk_protocol: u32,
    /// `dentry->d_inode`, `inode->i_ino`, `dentry->d_sb`, `super_block->s_dev`: a directory's
    /// identity, for silencing repeated opens (0: unresolved, nothing is silenced).
    pub dentry_inode: u32,
    pub inode_ino: u32,
    pub dentry_sb: u32,
    pub sb_dev: u32,
    /// x86-64 `pt_regs` members the `sys_exit` probe reads the syscall number and arguments
    /// from (`orig_ax`, `di`, `si`, `dx`, `r10`, `r8`), and `task_struct->thread_info.status`
    /// (TS_COMPAT marks a 32-bit syscall, whose numbers differ). `regs_valid` is 1 when all
    /// resolved (x86-64 kernels); elsewhere the per-syscall tracepoints serve.
    pub regs_valid: u32,
    pub regs_orig_ax: u32,
    pub regs_args: [u32; 5],
    pub task_ti_status: u32,
}

/// Name of the global holding [`SyscallNumbers`].
pub const GLOBAL_SYSCALLS: &str = "SEAM_SYSCALLS";

/// The running architecture's numbers of the syscalls the `sys_exit` probe reads (`u32::MAX`:
/// the architecture has no such syscall). Filled by the agent for the architecture it runs on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallNumbers {
    pub openat: u32,
    pub open: u32,
    pub openat2: u32,
    pub creat: u32,
    pub unlinkat: u32,
    pub unlink: u32,
    pub rmdir: u32,
    pub renameat2: u32,
    pub renameat: u32,
    pub rename: u32,
    pub truncate: u32,
    pub mount: u32,
    pub umount2: u32,
    pub move_mount: u32,
    pub pivot_root: u32,
    /// `TS_COMPAT` in `thread_info.status` (0: no compat syscalls to tell apart).
    pub ts_compat: u32,
}

impl SyscallNumbers {
    /// None known: the probe reports nothing.
    pub const NONE: Self = Self {
        openat: u32::MAX,
        open: u32::MAX,
        openat2: u32::MAX,
        creat: u32::MAX,
        unlinkat: u32::MAX,
        unlink: u32::MAX,
        rmdir: u32::MAX,
        renameat2: u32::MAX,
        renameat: u32::MAX,
        rename: u32::MAX,
        truncate: u32::MAX,
        mount: u32::MAX,
        umount2: u32::MAX,
        move_mount: u32::MAX,
        pivot_root: u32::MAX,
        ts_compat: 0,
    };

    /// x86-64 (arch/x86/entry/syscalls/syscall_64.tbl; TS_COMPAT from asm/thread_info.h).
    pub const X86_64: Self = Self {
        openat: 257,
        open: 2,
        openat2: 437,
        creat: 85,
        unlinkat: 263,
        unlink: 87,
        rmdir: 84,
        renameat2: 316,
        renameat: 264,
        rename: 82,
        truncate: 76,
        mount: 165,
        umount2: 166,
        move_mount: 429,
        pivot_root: 155,
        ts_compat: 0x0002,
    };
}

impl KernelOffsets {
    /// All zero: nothing resolved (the probes' built-in value before the agent overrides it).
    pub const ZERO: Self = Self {
        valid: 0,
        skc_daddr: 0,
        skc_rcv_saddr: 0,
        skc_dport: 0,
        skc_num: 0,
        skc_family: 0,
        skc_v6_daddr: 0,
        skc_v6_rcv_saddr: 0,
        skc_net: 0,
        net_ns_inum: 0,
        sk_cgroup_ptr: 0,
        cgroup_kn: 0,
        kn_id: 0,
        tcp_bytes_received: 0,
        tcp_bytes_sent: 0,
        tcp_bytes_retrans: 0,
        tcp_segs_in: 0,
        tcp_segs_out: 0,
        tcp_counters_valid: 0,
        task_real_parent: 0,
        task_tgid: 0,
        task_exit_code: 0,
        files_valid: 0,
        task_files: 0,
        files_fdt: 0,
        fdt_fd: 0,
        fdt_max_fds: 0,
        task_fs: 0,
        fs_root: 0,
        fs_pwd: 0,
        file_path: 0,
        file_mode: 0,
        path_mnt: 0,
        path_dentry: 0,
        dentry_parent: 0,
        dentry_name: 0,
        mount_mnt: 0,
        mount_parent: 0,
        mount_mountpoint: 0,
        vfsmount_root: 0,
        bprm_file: 0,
        syscall_args: 0,
        syscall_ret: 0,
        socket_sk: 0,
        sk_protocol: 0,
        dentry_inode: 0,
        inode_ino: 0,
        dentry_sb: 0,
        sb_dev: 0,
        regs_valid: 0,
        regs_orig_ax: 0,
        regs_args: [0; 5],
        task_ti_status: 0,
    };
}

#[cfg(feature = "user")]
// SAFETY: plain #[repr(C)] u32 fields.
unsafe impl aya::Pod for KernelOffsets {}
#[cfg(feature = "user")]
// SAFETY: plain #[repr(C)] u32 fields.
unsafe impl aya::Pod for SyscallNumbers {}
