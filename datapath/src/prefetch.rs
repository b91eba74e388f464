//! Cache prefetch hints for the forwarding path: a batch first asks for
//! the cache lines its lookups will read (the EMC slots, `Emc::prefetch`),
//! then looks up, so that the misses of cold lines (every new flow hashes
//! to a random slot) overlap instead of stalling one packet at a time.

/// Ask the CPU to bring the cache lines of `*v` (at most the first two,
/// 128 bytes) into its caches; a hint with no effect on what the program
/// computes. x86-64 `PREFETCHT0`; nothing on other targets.
#[inline(always)]
pub fn lines<T>(v: &T) {
    let p = (v as *const T).cast::<i8>();
    line(p);
    if size_of::<T>() > 64 {
        line(p.wrapping_add(64));
    }
}

/// One cache line: see [`lines`].
#[inline(always)]
#[allow(unsafe_code)]
fn line(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it reads no memory architecturally and
    // never faults, whatever the address (Intel SDM, PREFETCHh); SSE, to
    // which it belongs, is part of the x86-64 baseline. The call is unsafe
    // only because the intrinsic is declared with #[target_feature].
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
