//! [`Gntdev`]: [`GrantOps`] on real Xen through Linux's `/dev/xen/gntdev`
//! (module `xen-gntdev`), as Xen's `tools/libs/gnttab` (`linux.c`) uses it.
//!
//! - Copies: `IOCTL_GNTDEV_GRANT_COPY`, one `gntdev_grant_copy_segment`
//!   per [`GrantCopy`] (`GNTCOPY_source_gref` from a guest,
//!   `GNTCOPY_dest_gref` to a guest; our side a virtual address), in
//!   batches of up to [`COPY_BATCH`] segments. Linux (`drivers/xen/gntdev.c`
//!   `gntdev_grant_copy_seg`) fails the *whole* ioctl with `EINVAL` when a
//!   segment's grant side crosses its 4 KiB page, so such ops are refused
//!   here with `GNTST_bad_copy_arg` and never reach the kernel. If the
//!   ioctl itself fails, every op of that batch reports
//!   `GNTST_general_error` (the kernel may have written `GNTST_okay` for
//!   segments it never copied).
//! - Ring pages: `IOCTL_GNTDEV_MAP_GRANT_REF` for one grant, then `mmap` of
//!   the device at the returned index (read-write, shared). The
//!   [`RingPage`] owns the mapping; when its last clone goes, the page is
//!   unmapped and `IOCTL_GNTDEV_UNMAP_GRANT_REF` releases the grant.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use crate::grant::{
    DomId, GrantCopy, GrantError, GrantOps, GrantRef, LocalBuf, GNTST_GENERAL_ERROR,
};
use crate::mem::{RingPage, SharedMem};
use crate::ring::XEN_PAGE_SIZE;

use super::sys::{
    GntCopyForeign, GntCopyPtr, GntdevGrantCopy, GntdevGrantCopySegment, GntdevGrantRef,
    GntdevMapGrantRef, GntdevUnmapGrantRef, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF,
    IOCTL_GNTDEV_GRANT_COPY, IOCTL_GNTDEV_MAP_GRANT_REF, IOCTL_GNTDEV_UNMAP_GRANT_REF,
};
use super::{open_device, XenDevError};

/// The grant device.
pub const GNTDEV_PATH: &str = "/dev/xen/gntdev";

/// Segments per `IOCTL_GNTDEV_GRANT_COPY` call (the kernel batches them
/// further into hypercalls of 16).
pub const COPY_BATCH: usize = 128;

/// Grant copies and ring mappings through one open of `/dev/xen/gntdev`.
#[derive(Debug)]
pub struct Gntdev {
    fd: Arc<OwnedFd>,
    /// Scratch segments, reused from call to call.
    segs: Vec<GntdevGrantCopySegment>,
    /// For each segment, the index of its op.
    seg_ops: Vec<usize>,
    /// Ioctl failures (each failed a whole batch), for logs.
    failures: u64,
}

impl Gntdev {
    /// Opens [`GNTDEV_PATH`] (or `gntdev` in `$XENNET_XEN_DEV_DIR`, see
    /// [`super::device_path`]).
    pub fn open() -> Result<Gntdev, XenDevError> {
        Gntdev::open_path(super::device_path("gntdev"))
    }

    /// Opens a gntdev device at `path`. A missing device means we are not
    /// in a Xen domain or the `xen-gntdev` module is not loaded.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Gntdev, XenDevError> {
        let file = open_device(
            path.as_ref(),
            "xen-gntdev",
            OpenOptions::new().read(true).write(true),
        )?;
        Ok(Gntdev {
            fd: Arc::new(file.into()),
            segs: Vec::with_capacity(COPY_BATCH),
            seg_ops: Vec::with_capacity(COPY_BATCH),
            failures: 0,
        })
    }

    /// How many copy ioctls failed as a whole.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Issues the segments gathered in `self.segs` and writes their status
    /// back into `ops`.
    fn flush(&mut self, ops: &mut [GrantCopy<'_>]) {
        if self.segs.is_empty() {
            return;
        }
        let mut arg = GntdevGrantCopy {
            count: self.segs.len() as libc::c_uint,
            segments: self.segs.as_mut_ptr(),
        };
        // SAFETY: `arg` points at `count` initialised segments that live
        // until the call returns; each segment's local address points into
        // a buffer borrowed by its op for at least that long, with the
        // direction (read or written) the op's `LocalBuf` allows.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                IOCTL_GNTDEV_GRANT_COPY,
                &mut arg as *mut GntdevGrantCopy,
            )
        };
        if r < 0 {
            self.failures += 1;
            let e = std::io::Error::last_os_error();
            tracing::warn!(
                "IOCTL_GNTDEV_GRANT_COPY of {} segments: {e}",
                self.segs.len()
            );
            for &i in &self.seg_ops {
                ops[i].status = GNTST_GENERAL_ERROR;
            }
        } else {
            for (seg, &i) in self.segs.iter().zip(&self.seg_ops) {
                ops[i].status = seg.status;
            }
        }
        self.segs.clear();
        self.seg_ops.clear();
    }
}

impl GrantOps for Gntdev {
    fn copy(&mut self, ops: &mut [GrantCopy<'_>]) {
        self.segs.clear();
        self.seg_ops.clear();
        for i in 0..ops.len() {
            let op = &mut ops[i];
            if let Some(status) = op.precheck() {
                op.status = status;
                continue;
            }
            let len = op.len();
            let foreign = GntCopyPtr {
                foreign: GntCopyForeign {
                    gref: op.foreign.gref,
                    offset: op.foreign.offset,
                    domid: op.foreign.domid,
                },
            };
            let (source, dest, flags) = match &mut op.local {
                LocalBuf::FromGuest(b) => (
                    foreign,
                    GntCopyPtr {
                        virt: b.as_mut_ptr() as usize,
                    },
                    GNTCOPY_SOURCE_GREF,
                ),
                LocalBuf::ToGuest(b) => (
                    GntCopyPtr {
                        virt: b.as_ptr() as usize,
                    },
                    foreign,
                    GNTCOPY_DEST_GREF,
                ),
            };
            op.status = GNTST_GENERAL_ERROR;
            self.segs.push(GntdevGrantCopySegment {
                source,
                dest,
                // len <= XEN_PAGE_SIZE (precheck).
                len: len as u16,
                flags,
                status: GNTST_GENERAL_ERROR,
            });
            self.seg_ops.push(i);
            if self.segs.len() == COPY_BATCH {
                self.flush(ops);
            }
        }
        self.flush(ops);
    }

    fn map_ring(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<RingPage, GrantError> {
        let refused = |status| GrantError::Refused {
            domid,
            gref,
            status,
        };
        if !writable {
            // A RingPage is written through; a read-only mapping would fault.
            return Err(refused(GNTST_GENERAL_ERROR));
        }
        let mut arg = GntdevMapGrantRef {
            count: 1,
            pad: 0,
            index: 0,
            refs: [GntdevGrantRef {
                domid: u32::from(domid),
                gref,
            }],
        };
        // SAFETY: `arg` is a valid `ioctl_gntdev_map_grant_ref` with one
        // grant; the kernel writes only its `index`.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                IOCTL_GNTDEV_MAP_GRANT_REF,
                &mut arg as *mut GntdevMapGrantRef,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            tracing::warn!("IOCTL_GNTDEV_MAP_GRANT_REF domain {domid} gref {gref}: {e}");
            return Err(refused(GNTST_GENERAL_ERROR));
        }
        let grant = GntMapping {
            fd: self.fd.clone(),
            index: arg.index,
        };
        // The grant is mapped into the hypervisor's view only when the
        // mmap happens; a bad gref fails here (EFAULT/EINVAL from the
        // map hypercall) and `grant` releases the slot.
        let mem = SharedMem::map_fd_at(self.fd.as_fd(), arg.index, XEN_PAGE_SIZE).map_err(|e| {
            tracing::warn!("mmap of domain {domid} gref {gref}: {e}");
            refused(GNTST_GENERAL_ERROR)
        })?;
        let mem = Arc::new(mem.with_owner(Box::new(grant)));
        RingPage::new(mem, 0).ok_or(refused(crate::grant::GNTST_BAD_PAGE))
    }
}

/// One grant mapped with `IOCTL_GNTDEV_MAP_GRANT_REF`; released with
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF` on drop.
#[derive(Debug)]
struct GntMapping {
    fd: Arc<OwnedFd>,
    index: u64,
}

impl Drop for GntMapping {
    fn drop(&mut self) {
        let mut arg = GntdevUnmapGrantRef {
            index: self.index,
            count: 1,
            pad: 0,
        };
        // SAFETY: a valid `ioctl_gntdev_unmap_grant_ref`, read by the kernel.
        let r = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                IOCTL_GNTDEV_UNMAP_GRANT_REF,
                &mut arg as *mut GntdevUnmapGrantRef,
            )
        };
        if r < 0 {
            tracing::warn!(
                "IOCTL_GNTDEV_UNMAP_GRANT_REF index {}: {}",
                self.index,
                std::io::Error::last_os_error()
            );
        }
    }
}
