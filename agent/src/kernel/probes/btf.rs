//! Kernel struct offsets read from the running kernel's BTF, so the probes never assume one
//! kernel's layout (Rust eBPF has no CO-RE field relocations). Members inside anonymous unions and
//! structs are found recursively.
use std::path::{Path, PathBuf};

use btf_rs::{Btf, Type};
use seam_common::KernelOffsets;

/// Where the kernel exposes its own BTF.
pub(crate) const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why an offset could not be resolved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BtfError {
    /// The BTF file could not be read or parsed.
    #[error(
        "cannot read kernel BTF at {path}: {source}; Seam needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: btf_rs::Error,
    },
    /// A struct the probes read is not in this kernel's BTF.
    #[error("struct {name} is not in the kernel's BTF; this kernel's layout is not supported")]
    MissingStruct { name: String },
    /// A member path does not exist in this kernel's version of the struct.
    #[error("member {path} not found in struct {owner} of this kernel's BTF")]
    MissingMember { owner: String, path: String },
    /// The member exists but is a bitfield, which the probes cannot read by byte offset.
    #[error("member {path} of struct {owner} is a bitfield; not supported")]
    Bitfield { owner: String, path: String },
    /// Any other BTF parsing error.
    #[error("kernel BTF: {0}")]
    Parse(#[from] btf_rs::Error),
}

/// A member found by [`BtfOffsets::find_member`].
struct FoundMember {
    /// Bits from the start of the struct searched.
    bit_offset: u32,
    ty: Type,
    bitfield: bool,
}

/// Resolves member offsets in one BTF blob.
pub(crate) struct BtfOffsets {
    btf: Btf,
}

impl BtfOffsets {
    /// Parses the kernel's BTF at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, BtfError> {
        let btf = Btf::from_file(path).map_err(|source| BtfError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { btf })
    }

    /// Byte offset of `path` (dot separated, e.g. `__sk_common.skc_daddr`) inside `struct name`.
    pub(crate) fn offset(&self, name: &str, path: &str) -> Result<u32, BtfError> {
        let mut ty = self.find_struct(name)?;
        let mut total_bits = 0u32;
        for part in path.split('.') {
            let found = self
                .find_member(&ty, part)?
                .ok_or_else(|| BtfError::MissingMember {
                    owner: name.to_owned(),
                    path: path.to_owned(),
                })?;
            total_bits += found.bit_offset;
            if found.bitfield || !total_bits.is_multiple_of(8) {
                return Err(BtfError::Bitfield {
                    owner: name.to_owned(),
                    path: path.to_owned(),
                });
            }
            ty = self.strip_modifiers(found.ty)?;
        }
        Ok(total_bits / 8)
    }

    fn find_struct(&self, name: &str) -> Result<Type, BtfError> {
        self.btf
            .resolve_types_by_name(name)
            .unwrap_or_default()
            .into_iter()
            .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
            .ok_or_else(|| BtfError::MissingStruct {
                name: name.to_owned(),
            })
    }

    /// Follows typedefs, const, volatile and type tags down to the underlying type.
    fn strip_modifiers(&self, mut ty: Type) -> Result<Type, BtfError> {
        for _ in 0..16 {
            ty = match &ty {
                Type::Typedef(t) => self.btf.resolve_chained_type(t)?,
                Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                    self.btf.resolve_chained_type(t)?
                }
                Type::TypeTag(t) => self.btf.resolve_chained_type(t)?,
                _ => return Ok(ty),
            };
        }
        Ok(ty)
    }

    /// Finds `name` among the members of a struct/union, descending into anonymous members.
    fn find_member(&self, ty: &Type, name: &str) -> Result<Option<FoundMember>, BtfError> {
        let members = match ty {
            Type::Struct(s) | Type::Union(s) => &s.members,
            _ => return Ok(None),
        };
        for member in members {
            let member_name = self.btf.resolve_name(member).unwrap_or_default();
            let member_ty = self.btf.resolve_chained_type(member)?;
            if member_name == name {
                return Ok(Some(FoundMember {
                    bit_offset: member.bit_offset(),
                    ty: member_ty,
                    bitfield: member.bitfield_size().is_some_and(|size| size != 0),
                }));
            }
            if member_name.is_empty() {
                let inner = self.strip_modifiers(member_ty)?;
                if let Some(mut found) = self.find_member(&inner, name)? {
                    found.bit_offset += member.bit_offset();
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Every offset the probes use.
    pub(crate) fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        Ok(KernelOffsets {
            valid: 1,
            skc_daddr: self.offset("sock", "__sk_common.skc_daddr")?,
            skc_rcv_saddr: self.offset("sock", "__sk_common.skc_rcv_saddr")?,
            skc_dport: self.offset("sock", "__sk_common.skc_dport")?,
            skc_num: self.offset("sock", "__sk_common.skc_num")?,
            skc_family: self.offset("sock", "__sk_common.skc_family")?,
            skc_v6_daddr: self.offset("sock", "__sk_common.skc_v6_daddr")?,
            skc_v6_rcv_saddr: self.offset("sock", "__sk_common.skc_v6_rcv_saddr")?,
            skc_net: self.offset("sock", "__sk_common.skc_net.net")?,
            net_ns_inum: self.offset("net", "ns.inum")?,
            sk_cgroup_ptr: self.offset("sock", "sk_cgrp_data.cgroup")?,
            cgroup_kn: self.offset("cgroup", "kn")?,
            kn_id: self.offset("kernfs_node", "id")?,
            task_real_parent: self.offset("task_struct", "real_parent")?,
            task_tgid: self.offset("task_struct", "tgid")?,
            task_exit_code: self.offset("task_struct", "exit_code")?,
            // Only the socket_connect hooks need these; unresolved, they stay 0 and those
            // hooks are reported as not loadable.
            socket_sk: self.offset("socket", "sk").unwrap_or(0),
            sk_protocol: self.offset("sock", "sk_protocol").unwrap_or(0),
            ..KernelOffsets::ZERO
        })
    }

    /// Adds the offsets the file probes need; on failure they stay zero and `files_valid` 0.
    pub(crate) fn file_offsets(
        &self,
        mut offsets: KernelOffsets,
    ) -> Result<KernelOffsets, BtfError> {
        offsets.task_files = self.offset("task_struct", "files")?;
        offsets.files_fdt = self.offset("files_struct", "fdt")?;
        offsets.fdt_fd = self.offset("fdtable", "fd")?;
        offsets.fdt_max_fds = self.offset("fdtable", "max_fds")?;
        offsets.task_fs = self.offset("task_struct", "fs")?;
        offsets.fs_root = self.offset("fs_struct", "root")?;
        offsets.fs_pwd = self.offset("fs_struct", "pwd")?;
        offsets.file_path = self.offset("file", "f_path")?;
        offsets.file_mode = self.offset("file", "f_mode")?;
        offsets.path_mnt = self.offset("path", "mnt")?;
        offsets.path_dentry = self.offset("path", "dentry")?;
        offsets.dentry_parent = self.offset("dentry", "d_parent")?;
        offsets.dentry_name = self.offset("dentry", "d_name.name")?;
        offsets.mount_mnt = self.offset("mount", "mnt")?;
        offsets.mount_parent = self.offset("mount", "mnt_parent")?;
        offsets.mount_mountpoint = self.offset("mount", "mnt_mountpoint")?;
        offsets.vfsmount_root = self.offset("vfsmount", "mnt_root")?;
        offsets.bprm_file = self.offset("linux_binprm", "file")?;
        offsets.dentry_inode = self.offset("dentry", "d_inode")?;
        offsets.inode_ino = self.offset("inode", "i_ino")?;
        offsets.dentry_sb = self.offset("dentry", "d_sb")?;
        offsets.sb_dev = self.offset("super_block", "s_dev")?;
        offsets.files_valid = 1;
        Ok(offsets)
    }

    /// Adds what the `sys_exit` file probe reads: x86-64 `pt_regs` (the syscall number and the
    /// first five arguments) and `thread_info.status`. Elsewhere, or when any is missing,
    /// `regs_valid` stays 0 and the per-syscall tracepoints serve instead.
    pub(crate) fn regs_offsets(
        &self,
        mut offsets: KernelOffsets,
    ) -> Result<KernelOffsets, BtfError> {
        if !cfg!(target_arch = "x86_64") {
            return Ok(offsets);
        }
        offsets.regs_orig_ax = self.offset("pt_regs", "orig_ax")?;
        let mut args = [0u32; 5];
        for (slot, reg) in args.iter_mut().zip(["di", "si", "dx", "r10", "r8"]) {
            *slot = self.offset("pt_regs", reg)?;
        }
        offsets.regs_args = args;
        offsets.task_ti_status = self.offset("task_struct", "thread_info.status")?;
        offsets.regs_valid = 1;
        Ok(offsets)
    }

    /// Adds the `tcp_sock` counters read at close; on failure they stay zero and
    /// `tcp_counters_valid` 0 (connections then end without byte counts).
    pub(crate) fn tcp_counter_offsets(
        &self,
        mut offsets: KernelOffsets,
    ) -> Result<KernelOffsets, BtfError> {
        offsets.tcp_bytes_received = self.offset("tcp_sock", "bytes_received")?;
        offsets.tcp_bytes_sent = self.offset("tcp_sock", "bytes_sent")?;
        offsets.tcp_bytes_retrans = self.offset("tcp_sock", "bytes_retrans")?;
        offsets.tcp_segs_in = self.offset("tcp_sock", "segs_in")?;
        offsets.tcp_segs_out = self.offset("tcp_sock", "segs_out")?;
        offsets.tcp_counters_valid = 1;
        Ok(offsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seam requires kernel BTF, so its absence fails the test rather than skipping it.
    fn kernel() -> BtfOffsets {
        BtfOffsets::open(Path::new(VMLINUX_BTF)).expect("parse /sys/kernel/btf/vmlinux")
    }

    #[test]
    fn resolves_members_inside_anonymous_unions() {
        let btf = kernel();
        let offsets = btf
            .kernel_offsets()
            .expect("all offsets resolve on this kernel");
        // Layout facts that hold on every kernel with BTF: sock_common comes first in sock,
        // the address pair precedes the port pair, and skc_num follows skc_dport.
        assert_eq!(offsets.skc_daddr, 0);
        assert_eq!(offsets.skc_rcv_saddr, 4);
        assert_eq!(offsets.skc_num, offsets.skc_dport + 2);
        assert!(offsets.sk_cgroup_ptr > offsets.skc_v6_rcv_saddr);
        // Cross-check one anonymous-union member against the struct it lives in.
        assert_eq!(
            btf.offset("sock_common", "skc_dport").unwrap(),
            offsets.skc_dport
        );
    }

    #[test]
    fn resolves_file_offsets() {
        let btf = kernel();
        let base = btf.kernel_offsets().unwrap();
        let offsets = btf
            .file_offsets(base)
            .expect("file offsets resolve on this kernel");
        assert_eq!(offsets.files_valid, 1);
        // struct path is { mnt, dentry } on every kernel with BTF.
        assert_eq!((offsets.path_mnt, offsets.path_dentry), (0, 8));
        // d_name.name sits after the qstr's hash/len word.
        assert_eq!(
            offsets.dentry_name,
            btf.offset("dentry", "d_name").unwrap() + 8
        );
        assert_eq!(offsets.skc_num, base.skc_num, "network offsets kept");
    }

    #[test]
    fn resolves_syscall_registers_on_x86_64() {
        let btf = kernel();
        let offsets = btf
            .regs_offsets(KernelOffsets::ZERO)
            .expect("pt_regs resolves");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(offsets.regs_valid, 1);
            // The syscall ABI order is di, si, dx, r10, r8; pt_regs keeps them in its own order.
            assert_eq!(offsets.regs_args[0], btf.offset("pt_regs", "di").unwrap());
            assert!(offsets.regs_orig_ax > offsets.regs_args[0]);
        } else {
            assert_eq!(offsets.regs_valid, 0);
        }
    }

    #[test]
    fn resolves_tcp_counters() {
        let btf = kernel();
        let offsets = btf
            .tcp_counter_offsets(KernelOffsets::ZERO)
            .expect("tcp_sock counters resolve on this kernel");
        assert_eq!(offsets.tcp_counters_valid, 1);
        // struct tcp_sock starts with struct inet_connection_sock: the counters come later.
        let icsk = btf.offset("tcp_sock", "inet_conn").unwrap();
        assert_eq!(icsk, 0);
        assert!(offsets.tcp_bytes_received > 0 && offsets.tcp_segs_out > 0);
    }

    #[test]
    fn unknown_members_and_structs_are_errors() {
        let btf = kernel();
        assert!(matches!(
            btf.offset("sock", "no_such_member"),
            Err(BtfError::MissingMember { .. })
        ));
        assert!(matches!(
            btf.offset("no_such_struct_seam", "x"),
            Err(BtfError::MissingStruct { .. })
        ));
    }
}
