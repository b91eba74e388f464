//! The Linux Xen device ABI: ioctl numbers and argument structures of
//! `/dev/xen/gntdev` and `/dev/xen/evtchn`.
//!
//! Layouts follow Linux `include/uapi/xen/gntdev.h` and
//! `include/uapi/xen/evtchn.h` (shipped by Xen as `xen/sys/gntdev.h` and
//! `xen/sys/evtchn.h`, Debian package `libxen-dev`); the test
//! `vif-port/tests/devabi.rs` compiles a C probe against those headers and
//! compares every size, offset and ioctl number with these definitions.
//! The ioctl numbers use the generic `_IOC` encoding (x86, Arm, RISC-V).

use std::mem::size_of;

use nix::sys::ioctl::ioctl_num_type;

/// `_IOC(_IOC_NONE, ty, nr, size)` in the generic encoding: direction 0 in
/// bits 30-31, size in bits 16-29, type in bits 8-15, number in bits 0-7.
pub const fn ioc_none(ty: u8, nr: u8, size: usize) -> ioctl_num_type {
    ((size << 16) | ((ty as usize) << 8) | nr as usize) as ioctl_num_type
}

/// `GNTCOPY_source_gref` (`xen/grant_table.h`): the source is a grant.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the destination is a grant.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `struct ioctl_gntdev_grant_ref`: one grant to map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GntdevGrantRef {
    /// Granting domain.
    pub domid: u32,
    /// Grant reference.
    pub gref: u32,
}

/// `struct ioctl_gntdev_map_grant_ref` with one grant (`refs[1]`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GntdevMapGrantRef {
    /// IN: number of grants in `refs`.
    pub count: u32,
    /// Padding.
    pub pad: u32,
    /// OUT: the `mmap` offset of the mapping (bytes, page-aligned).
    pub index: u64,
    /// IN: the grants.
    pub refs: [GntdevGrantRef; 1],
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GntdevUnmapGrantRef {
    /// The `index` the map ioctl returned.
    pub index: u64,
    /// Number of pages.
    pub count: u32,
    /// Padding.
    pub pad: u32,
}

/// The foreign side of a copy segment (`foreign` in
/// `struct gntdev_grant_copy_segment`'s `source`/`dest` unions).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GntCopyForeign {
    /// Grant reference.
    pub gref: u32,
    /// Byte offset in the granted page.
    pub offset: u16,
    /// Granting domain.
    pub domid: u16,
}

/// A copy segment's `source` or `dest`: a local virtual address or a
/// foreign grant, told apart by the segment's `GNTCOPY_*` flags. The
/// address is kept as an integer (C: `void *virt`), which has the same
/// place in the union on 32- and 64-bit little-endian machines.
#[repr(C)]
#[derive(Clone, Copy)]
pub union GntCopyPtr {
    /// Local virtual address.
    pub virt: usize,
    /// Foreign grant.
    pub foreign: GntCopyForeign,
}

impl std::fmt::Debug for GntCopyPtr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GntCopyPtr")
    }
}

/// `struct gntdev_grant_copy_segment`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GntdevGrantCopySegment {
    /// Source.
    pub source: GntCopyPtr,
    /// Destination.
    pub dest: GntCopyPtr,
    /// Bytes to copy; with a grant side, `offset + len` must not pass
    /// the end of the 4 KiB page (else the whole ioctl fails `EINVAL`).
    pub len: u16,
    /// `GNTCOPY_source_gref` and/or `GNTCOPY_dest_gref`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// `struct ioctl_gntdev_grant_copy`.
#[repr(C)]
#[derive(Debug)]
pub struct GntdevGrantCopy {
    /// Number of segments.
    pub count: libc::c_uint,
    /// The segments.
    pub segments: *mut GntdevGrantCopySegment,
}

/// `IOCTL_GNTDEV_MAP_GRANT_REF`.
pub const IOCTL_GNTDEV_MAP_GRANT_REF: ioctl_num_type =
    ioc_none(b'G', 0, size_of::<GntdevMapGrantRef>());
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: ioctl_num_type =
    ioc_none(b'G', 1, size_of::<GntdevUnmapGrantRef>());
/// `IOCTL_GNTDEV_GRANT_COPY`.
pub const IOCTL_GNTDEV_GRANT_COPY: ioctl_num_type = ioc_none(b'G', 8, size_of::<GntdevGrantCopy>());

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnBindInterdomain {
    /// The other end's domain.
    pub remote_domain: libc::c_uint,
    /// The other end's port.
    pub remote_port: libc::c_uint,
}

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify`: a local
/// port.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EvtchnPort {
    /// Local port.
    pub port: libc::c_uint,
}

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: returns the local port.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: ioctl_num_type =
    ioc_none(b'E', 1, size_of::<EvtchnBindInterdomain>());
/// `IOCTL_EVTCHN_UNBIND`.
pub const IOCTL_EVTCHN_UNBIND: ioctl_num_type = ioc_none(b'E', 3, size_of::<EvtchnPort>());
/// `IOCTL_EVTCHN_NOTIFY`.
pub const IOCTL_EVTCHN_NOTIFY: ioctl_num_type = ioc_none(b'E', 4, size_of::<EvtchnPort>());
/// `IOCTL_EVTCHN_RESET`: empties the pending ring after an overflow.
pub const IOCTL_EVTCHN_RESET: ioctl_num_type = ioc_none(b'E', 5, 0);
