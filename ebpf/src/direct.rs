//! Direct loads through BTF-typed kernel pointers (a tp_btf argument, a helper's typed result,
//! or a pointer member loaded from one): plain loads the verifier checks against the kernel's
//! BTF, where `bpf_probe_read_kernel` is a helper call per field. The offsets come from
//! `SEAM_OFFSETS` in frozen `.rodata`, so the verifier sees each one as a constant. A fault
//! reads zero instead of failing.

/// Loads a `T` at `base + off`. Volatile, so the compiler neither merges two fields into one
/// wider load (which the verifier would refuse) nor drops it.
///
/// # Safety
/// `base` must be a BTF-typed pointer the verifier knows, and `off` an offset of a `T` member
/// of its type (or of a member nested in it).
#[inline(always)]
pub(crate) unsafe fn load<T: Copy>(base: *const u8, off: usize) -> T {
    // SAFETY: see above; the verifier rejects the program otherwise.
    unsafe { core::ptr::read_volatile(base.wrapping_add(off) as *const T) }
}

/// An IPv6 address (16 bytes) as four 32-bit loads.
///
/// # Safety
/// As [`load`], for a `struct in6_addr` member.
#[inline(always)]
pub(crate) unsafe fn load_in6(base: *const u8, off: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    for i in 0..4 {
        // SAFETY: as above; each word lies inside the address.
        let word: u32 = unsafe { load(base, off + i * 4) };
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    out
}
