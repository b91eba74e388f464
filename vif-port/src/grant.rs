//! Grant access behind a trait, modelled on `GNTTABOP_copy` and
//! `IOCTL_GNTDEV_GRANT_COPY`.
//!
//! A [`GrantCopy`] copies between a granted foreign page (domid, gref,
//! offset) and a local buffer, in one direction. [`GrantOps::copy`] runs a
//! batch and writes each op's `status`; callers build ops with
//! [`GrantCopy::from_guest`] / [`GrantCopy::to_guest`], which initialise the
//! status to an error, so an implementation that forgot an op can never
//! make it look successful (the 2020 `GNTTABOP_copy` uninitialised-status
//! lesson).
//!
//! The real-Xen implementation, [`crate::xen::Gntdev`], maps each op to one
//! `gntdev_grant_copy_segment` (`GNTCOPY_source_gref` or
//! `GNTCOPY_dest_gref`, the local side as a virtual address) and issues the
//! ioctl in batches of [`crate::xen::COPY_BATCH`].

use crate::mem::RingPage;
use crate::ring::XEN_PAGE_SIZE;

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// Grant status: okay (`GNTST_okay`).
pub const GNTST_OKAY: i16 = 0;
/// Grant status: general error (`GNTST_general_error`).
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Grant status: unrecognised domain (`GNTST_bad_domain`).
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Grant status: bad grant reference (`GNTST_bad_gntref`).
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Grant status: not enough privilege (`GNTST_permission_denied`).
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// Grant status: invalid page (`GNTST_bad_page`).
pub const GNTST_BAD_PAGE: i16 = -9;
/// Grant status: copy crosses a page boundary (`GNTST_bad_copy_arg`).
pub const GNTST_BAD_COPY_ARG: i16 = -10;

/// A granted location in a foreign domain's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignAddr {
    /// Domain that granted the page.
    pub domid: DomId,
    /// Grant reference within that domain's grant table.
    pub gref: GrantRef,
    /// Byte offset within the granted page.
    pub offset: u16,
}

/// The local side of a grant copy, and with it the direction.
#[derive(Debug)]
pub enum LocalBuf<'a> {
    /// Copy from the grant into this buffer (`GNTCOPY_source_gref`).
    FromGuest(&'a mut [u8]),
    /// Copy this buffer into the grant (`GNTCOPY_dest_gref`); needs a
    /// writable grant.
    ToGuest(&'a [u8]),
}

/// One grant-copy operation (`struct gnttab_copy` with one side local).
#[derive(Debug)]
pub struct GrantCopy<'a> {
    /// The foreign side.
    pub foreign: ForeignAddr,
    /// The local side; its length is the copy length in bytes.
    pub local: LocalBuf<'a>,
    /// `GNTST_*` result, written by [`GrantOps::copy`].
    pub status: i16,
}

/// An empty vector of grant copies with the allocation of `v` (whose ops
/// are dropped), for callers that keep their op vector from call to call
/// although each call's ops borrow buffers only for that call.
/// `into_iter().map().collect()` between types of the same size and
/// alignment reuses the buffer (std's in-place iteration).
pub fn recycle_ops<'b>(mut v: Vec<GrantCopy<'_>>) -> Vec<GrantCopy<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| -> GrantCopy<'b> { unreachable!() })
        .collect()
}

impl<'a> GrantCopy<'a> {
    /// The status this copy gets without looking at the grant, as the
    /// real path (Linux gntdev's `gntdev_grant_copy_seg`) gives it: a
    /// segment crossing its 4 KiB page is refused with
    /// `GNTST_bad_copy_arg`, an empty one succeeds. `None`: the grant
    /// must be checked. Every [`GrantOps`] implementation starts here.
    pub fn precheck(&self) -> Option<i16> {
        let len = self.len();
        if usize::from(self.foreign.offset) + len > XEN_PAGE_SIZE {
            Some(GNTST_BAD_COPY_ARG)
        } else if len == 0 {
            Some(GNTST_OKAY)
        } else {
            None
        }
    }

    /// Copy `dst.len()` bytes from the grant into `dst`.
    pub fn from_guest(foreign: ForeignAddr, dst: &'a mut [u8]) -> Self {
        GrantCopy {
            foreign,
            local: LocalBuf::FromGuest(dst),
            status: GNTST_GENERAL_ERROR,
        }
    }

    /// Copy `src` into the grant.
    pub fn to_guest(foreign: ForeignAddr, src: &'a [u8]) -> Self {
        GrantCopy {
            foreign,
            local: LocalBuf::ToGuest(src),
            status: GNTST_GENERAL_ERROR,
        }
    }

    /// Copy length in bytes.
    pub fn len(&self) -> usize {
        match &self.local {
            LocalBuf::FromGuest(b) => b.len(),
            LocalBuf::ToGuest(b) => b.len(),
        }
    }

    /// Whether the copy is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Errors mapping a grant.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// The hypervisor (or its emulation) refused with this `GNTST_*` status.
    #[error("grant {gref} of domain {domid} refused: GNTST {status}")]
    Refused {
        /// Granting domain.
        domid: DomId,
        /// Grant reference.
        gref: GrantRef,
        /// `GNTST_*` status.
        status: i16,
    },
}

/// Access to foreign domains' granted pages.
pub trait GrantOps: std::fmt::Debug {
    /// Run a batch of copies. Sets every op's `status`: [`GNTST_OKAY`] or
    /// a `GNTST_*` error; a failing op does not stop the others.
    fn copy(&mut self, ops: &mut [GrantCopy<'_>]);

    /// Map one granted page holding a shared ring (`writable` for a
    /// read-write mapping).
    fn map_ring(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<RingPage, GrantError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_ops_keep_their_allocation() {
        let mut kept: Vec<GrantCopy<'static>> = Vec::new();
        let mut cap = None;
        for _ in 0..3 {
            let buf = [0u8; 64];
            let mut ops = recycle_ops(std::mem::take(&mut kept));
            for chunk in buf.chunks(8) {
                let addr = ForeignAddr {
                    domid: 1,
                    gref: 2,
                    offset: 0,
                };
                ops.push(GrantCopy::to_guest(addr, chunk));
            }
            assert_eq!(ops.len(), 8);
            kept = recycle_ops(ops);
            assert!(kept.is_empty());
            assert_eq!(*cap.get_or_insert(kept.capacity()), kept.capacity());
        }
        assert!(kept.capacity() >= 8);
    }
}
