//! connect() intent seen at the `socket_connect` security hook (BPF LSM or fentry on
//! `security_socket_connect`): a stand-in for cgroup/connect4 and connect6 where those cannot
//! attach. It runs in the caller's syscall, like them, and reports the same event, joined to the
//! TCP state events by the socket cookie.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_get_current_cgroup_id, bpf_get_socket_cookie};
use seam_common::{AF_INET, AF_INET6, EventKind, IPPROTO_TCP, LossSlot, SockAddrData};

use crate::{
    emit::{Context, emit},
    kernel::{offset, read},
    maps::is_tenant_cgroup,
};

/// `socket_connect(struct socket *sock, struct sockaddr *address, int addrlen)`.
#[inline(always)]
pub(crate) fn try_connect(sock: *const c_void, address: *const u8) -> Result<u32, i32> {
    if offset!(socket_sk) == 0 {
        return Ok(0);
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if !is_tenant_cgroup(cgroup_id) {
        return Ok(0);
    }
    // sockaddr_in / sockaddr_in6 are ABI: family at 0, port (big endian) at 2, the IPv4
    // address at 4, the IPv6 address at 8.
    let family: u16 = read(address, 0)?;
    let mut daddr = [0u8; 16];
    if family == AF_INET {
        let v4: [u8; 4] = read(address, 4)?;
        daddr[..4].copy_from_slice(&v4);
    } else if family == AF_INET6 {
        daddr = read(address, 8)?;
    } else {
        return Ok(0);
    }
    let port_be: u16 = read(address, 2)?;
    // A direct load through the hook's BTF-typed `struct socket *` (not a probe read), so the
    // verifier knows `sk` is a `struct sock *` and lets the cookie helper take it. The offset
    // is a constant in frozen .rodata.
    // SAFETY: `sock` is the hook's socket; `socket_sk` is `socket->sk` from this kernel's BTF.
    let at = offset!(socket_sk);
    let sk = unsafe { core::ptr::read((sock as *const u8).add(at) as *const *mut c_void) };
    if sk.is_null() {
        return Ok(0);
    }
    let protocol: u16 = match offset!(sk_protocol) {
        0 => 0,
        at => read(sk as *const u8, at).unwrap_or(0),
    };
    if protocol == u16::from(IPPROTO_TCP) {
        // The TCP caller travels with the socket's ESTABLISHED event (tcp_state.rs).
        return Ok(0);
    }
    // SAFETY: `sk` is a BTF-typed socket pointer.
    let cookie = unsafe { bpf_get_socket_cookie(sk) };
    emit(
        EventKind::Connect,
        cgroup_id,
        Context::Task,
        SockAddrData {
            cookie,
            daddr,
            dport: u16::from_be(port_be),
            family,
            protocol: protocol as u8,
            _pad: [0; 3],
        },
        LossSlot::SockAddr,
    );
    Ok(0)
}
