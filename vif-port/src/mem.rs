//! Shared memory: a mapping of a file descriptor (a memfd standing in for
//! guest memory or a grant table, or a `/dev/xen/gntdev` mapping of a
//! guest's granted page) that another, untrusted party writes
//! concurrently.
//!
//! Every access goes through this module: bulk data with volatile copies,
//! ring indices and grant flags through atomics, plain-old-data structures
//! with volatile reads of a local copy. No `&[u8]` into shared memory is ever
//! handed out, so the other side changing bytes under us cannot break Rust's
//! aliasing rules; callers validate the copies they get.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU16, AtomicU32};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::ring::XEN_PAGE_SIZE;

/// Plain-old-data types that may be read from and written to shared memory
/// with a volatile copy.
///
/// # Safety
/// Implementors must be `#[repr(C)]` (or a primitive), have no padding
/// bytes, and every bit pattern must be a valid value.
pub unsafe trait Pod: Copy + Default {}

/// A shared mapping of a file descriptor, readable and writable.
pub struct SharedMem {
    // Field order matters: the mapping goes before its owner (the
    // gntdev grant mapping is released after the munmap).
    map: MmapRaw,
    owner: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for SharedMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMem")
            .field("map", &self.map)
            .field("owned", &self.owner.is_some())
            .finish()
    }
}

impl SharedMem {
    /// Map `len` bytes of `fd` from offset 0, shared with every other
    /// process mapping the same file.
    pub fn map_fd(fd: BorrowedFd<'_>, len: usize) -> std::io::Result<Self> {
        Self::map_fd_at(fd, 0, len)
    }

    /// Map `len` bytes of `fd` from byte `offset` (a multiple of the page
    /// size), shared: e.g. a `/dev/xen/gntdev` mapping at the `index` its
    /// `IOCTL_GNTDEV_MAP_GRANT_REF` returned.
    pub fn map_fd_at(fd: BorrowedFd<'_>, offset: u64, len: usize) -> std::io::Result<Self> {
        if len == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        let map = MmapOptions::new()
            .offset(offset)
            .len(len)
            .map_raw(fd.as_raw_fd())?;
        Ok(SharedMem { map, owner: None })
    }

    /// Keep `owner` alive as long as the mapping and drop it right after
    /// the munmap (e.g. what unmaps the grant behind a gntdev mapping).
    pub fn with_owner(mut self, owner: Box<dyn std::any::Any + Send + Sync>) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never, by construction).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Whether `[off, off + n)` lies inside the mapping.
    fn in_bounds(&self, off: usize, n: usize) -> bool {
        off.checked_add(n).is_some_and(|end| end <= self.len())
    }

    /// Copy `dst.len()` bytes starting at `off` out of shared memory.
    /// Returns false (copying nothing) if the range is out of bounds.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        if !self.in_bounds(off, dst.len()) {
            return false;
        }
        // SAFETY: the range [off, off + dst.len()) is inside the mapping
        // (checked above) and the mapping lives as long as `self`. Only raw
        // pointer volatile reads touch the shared bytes.
        unsafe { volatile_copy_in(self.map.as_mut_ptr().add(off), dst) };
        true
    }

    /// Copy `src` into shared memory at `off`. Returns false (copying
    /// nothing) if the range is out of bounds.
    pub fn write(&self, off: usize, src: &[u8]) -> bool {
        if !self.in_bounds(off, src.len()) {
            return false;
        }
        // SAFETY: as in `read`; only volatile writes through raw pointers.
        unsafe { volatile_copy_out(src, self.map.as_mut_ptr().add(off)) };
        true
    }

    /// Volatile read of a `T` at `off` (must be aligned for `T`).
    pub fn read_obj<T: Pod>(&self, off: usize) -> Option<T> {
        if !self.in_bounds(off, std::mem::size_of::<T>()) {
            return None;
        }
        // SAFETY: pointer arithmetic stays inside the mapping (checked).
        let p = unsafe { self.map.as_mut_ptr().add(off) };
        if (p as usize) % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: in bounds, aligned, and `T: Pod` accepts any bit pattern.
        Some(unsafe { std::ptr::read_volatile(p.cast::<T>()) })
    }

    /// Volatile write of a `T` at `off` (must be aligned for `T`). Returns
    /// false if out of bounds or misaligned.
    pub fn write_obj<T: Pod>(&self, off: usize, v: T) -> bool {
        if !self.in_bounds(off, std::mem::size_of::<T>()) {
            return false;
        }
        // SAFETY: pointer arithmetic stays inside the mapping (checked).
        let p = unsafe { self.map.as_mut_ptr().add(off) };
        if (p as usize) % std::mem::align_of::<T>() != 0 {
            return false;
        }
        // SAFETY: in bounds and aligned; `T: Pod` has no invalid values.
        unsafe { std::ptr::write_volatile(p.cast::<T>(), v) };
        true
    }

    /// The 32-bit word at `off` as an atomic (ring indices).
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        if !self.in_bounds(off, 4) {
            return None;
        }
        // SAFETY: in bounds (checked above).
        let p = unsafe { self.map.as_mut_ptr().add(off) };
        if (p as usize) % 4 != 0 {
            return None;
        }
        // SAFETY: aligned, in bounds, valid for the lifetime of `self`;
        // AtomicU32 has the layout of u32 and any bit pattern is valid.
        // Concurrent access from the other process is what atomics are for.
        Some(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) })
    }

    /// The 16-bit word at `off` as an atomic (grant entry flags).
    pub fn atomic_u16(&self, off: usize) -> Option<&AtomicU16> {
        if !self.in_bounds(off, 2) {
            return None;
        }
        // SAFETY: in bounds (checked above).
        let p = unsafe { self.map.as_mut_ptr().add(off) };
        if (p as usize) % 2 != 0 {
            return None;
        }
        // SAFETY: as in `atomic_u32`, for a 16-bit word.
        Some(unsafe { AtomicU16::from_ptr(p.cast::<u16>()) })
    }
}

/// Volatile copy from shared memory into a local buffer, 8 bytes at a time
/// where the source is aligned.
///
/// # Safety
/// `src` must be valid for reads of `dst.len()` bytes.
unsafe fn volatile_copy_in(src: *const u8, dst: &mut [u8]) {
    let n = dst.len();
    let mut i = 0;
    while i < n && (src as usize + i) % 8 != 0 {
        // SAFETY: i < n, so src + i is inside the range the caller vouched for.
        dst[i] = unsafe { std::ptr::read_volatile(src.add(i)) };
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n and src + i is 8-byte aligned.
        let v = unsafe { std::ptr::read_volatile(src.add(i).cast::<u64>()) };
        dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        dst[i] = unsafe { std::ptr::read_volatile(src.add(i)) };
        i += 1;
    }
}

/// Volatile copy from a local buffer into shared memory.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes.
unsafe fn volatile_copy_out(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let mut i = 0;
    while i < n && (dst as usize + i) % 8 != 0 {
        // SAFETY: i < n, inside the caller's range.
        unsafe { std::ptr::write_volatile(dst.add(i), src[i]) };
        i += 1;
    }
    while i + 8 <= n {
        let mut w = [0u8; 8];
        w.copy_from_slice(&src[i..i + 8]);
        // SAFETY: i + 8 <= n and dst + i is 8-byte aligned.
        unsafe { std::ptr::write_volatile(dst.add(i).cast::<u64>(), u64::from_ne_bytes(w)) };
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        unsafe { std::ptr::write_volatile(dst.add(i), src[i]) };
        i += 1;
    }
}

/// One 4 KiB page of shared memory holding a shared ring (`XEN_PAGE_SIZE`
/// bytes at a page-aligned offset of a [`SharedMem`]).
#[derive(Debug, Clone)]
pub struct RingPage {
    mem: Arc<SharedMem>,
    offset: usize,
}

impl RingPage {
    /// The page at byte `offset` of `mem`; `None` unless the whole page is
    /// inside the mapping and `offset` is page-aligned.
    pub fn new(mem: Arc<SharedMem>, offset: usize) -> Option<Self> {
        if offset % XEN_PAGE_SIZE != 0 || !mem.in_bounds(offset, XEN_PAGE_SIZE) {
            return None;
        }
        Some(RingPage { mem, offset })
    }

    /// Atomic view of the 32-bit word at byte `off` of the page.
    pub(crate) fn word(&self, off: usize) -> Option<&AtomicU32> {
        if off + 4 > XEN_PAGE_SIZE {
            return None;
        }
        self.mem.atomic_u32(self.offset + off)
    }

    /// Volatile read of a `T` at byte `off` of the page (default if the
    /// offset is out of the page or misaligned, which ring code never asks).
    pub(crate) fn read_obj<T: Pod>(&self, off: usize) -> T {
        if off + std::mem::size_of::<T>() > XEN_PAGE_SIZE {
            return T::default();
        }
        self.mem.read_obj(self.offset + off).unwrap_or_default()
    }

    /// Volatile write of a `T` at byte `off` of the page.
    pub(crate) fn write_obj<T: Pod>(&self, off: usize, v: T) {
        if off + std::mem::size_of::<T>() <= XEN_PAGE_SIZE {
            self.mem.write_obj(self.offset + off, v);
        }
    }
}
