//! Emulated Xen: what the hypervisor provides, built from shared memory
//! and eventfds so that the netback runs on a machine without Xen.
//!
//! - Guest memory is a memfd of `nr_frames` 4 KiB frames, mapped shared by
//!   the guest (the emulated netfront) and the backend.
//! - The guest's grant table is a second memfd holding `nr_grants`
//!   [`GrantEntryV1`]s. The guest grants with [`GrantTable::grant`]; the
//!   backend's [`EmulatedGrants`] checks every access exactly as the
//!   hypervisor would (entry type, domid, read-only, frame, bounds).
//! - Each direction of an event channel is an eventfd
//!   ([`EventFdChannel`]).
//!
//! Both memfds are sealed against shrinking (`F_SEAL_SHRINK`): a guest that
//! could truncate them would make the backend's accesses fault (SIGBUS).

pub mod attach;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::evtchn::EventChannel;
use crate::grant::{
    DomId, ForeignAddr, GrantCopy, GrantError, GrantOps, GrantRef, LocalBuf, GNTST_BAD_DOMAIN,
    GNTST_BAD_GNTREF, GNTST_BAD_PAGE, GNTST_GENERAL_ERROR, GNTST_OKAY,
};
use crate::mem::{RingPage, SharedMem};
use crate::ring::{GrantEntryV1, GTF_PERMIT_ACCESS, GTF_READONLY, GTF_TYPE_MASK, XEN_PAGE_SIZE};

/// Bytes per grant table entry.
pub const GRANT_ENTRY_SIZE: usize = std::mem::size_of::<GrantEntryV1>();

/// Create a memfd of `len` bytes, sealed against shrinking and against
/// further seal changes.
pub fn sealed_memfd(name: &str, len: usize) -> std::io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "name has NUL"))?;
    let fd = memfd_create(
        &cname,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let len_off = libc::off_t::try_from(len)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "memfd too large"))?;
    nix::unistd::ftruncate(&fd, len_off)?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL),
    )?;
    Ok(fd)
}

/// The guest's side of its grant table.
#[derive(Debug, Clone)]
pub struct GrantTable {
    table: Arc<SharedMem>,
    nr_grants: u32,
}

impl GrantTable {
    /// A grant table over `table`, which holds `nr_grants` entries.
    pub fn new(table: Arc<SharedMem>, nr_grants: u32) -> Self {
        GrantTable { table, nr_grants }
    }

    /// Number of entries.
    pub fn nr_grants(&self) -> u32 {
        self.nr_grants
    }

    /// Grant `domid` access to guest frame `frame` through entry `gref`:
    /// domid and frame first, then the flags with Release ordering, as
    /// guests do (`gnttab_grant_foreign_access_ref`). Returns false if
    /// `gref` is out of range.
    pub fn grant(&self, gref: GrantRef, domid: DomId, frame: u32, readonly: bool) -> bool {
        if gref >= self.nr_grants {
            return false;
        }
        let off = gref as usize * GRANT_ENTRY_SIZE;
        let (Some(flags), Some(dom), Some(frm)) = (
            self.table.atomic_u16(off),
            self.table.atomic_u16(off + 2),
            self.table.atomic_u32(off + 4),
        ) else {
            return false;
        };
        dom.store(domid, Ordering::Relaxed);
        frm.store(frame, Ordering::Relaxed);
        let ro = if readonly { GTF_READONLY } else { 0 };
        flags.store(GTF_PERMIT_ACCESS | ro, Ordering::Release);
        true
    }

    /// Revoke entry `gref` (`gnttab_end_foreign_access_ref`).
    pub fn end_access(&self, gref: GrantRef) {
        if gref < self.nr_grants {
            if let Some(flags) = self.table.atomic_u16(gref as usize * GRANT_ENTRY_SIZE) {
                flags.store(0, Ordering::Release);
            }
        }
    }
}

/// The backend's emulated grant operations on one guest's memory.
#[derive(Debug)]
pub struct EmulatedGrants {
    guest_domid: DomId,
    backend_domid: DomId,
    mem: Arc<SharedMem>,
    nr_frames: u32,
    table: Arc<SharedMem>,
    nr_grants: u32,
}

impl EmulatedGrants {
    /// Grant operations of `backend_domid` on the memory (`nr_frames`
    /// frames) and grant table (`nr_grants` entries) of `guest_domid`.
    /// The mappings must be at least that large.
    pub fn new(
        guest_domid: DomId,
        backend_domid: DomId,
        mem: Arc<SharedMem>,
        nr_frames: u32,
        table: Arc<SharedMem>,
        nr_grants: u32,
    ) -> Self {
        // Never trust counts beyond what is actually mapped.
        let nr_frames = nr_frames.min(u32::try_from(mem.len() / XEN_PAGE_SIZE).unwrap_or(u32::MAX));
        let nr_grants =
            nr_grants.min(u32::try_from(table.len() / GRANT_ENTRY_SIZE).unwrap_or(u32::MAX));
        EmulatedGrants {
            guest_domid,
            backend_domid,
            mem,
            nr_frames,
            table,
            nr_grants,
        }
    }

    /// Check a grant as `__acquire_grant_for_copy` does; returns the byte
    /// offset of the granted frame in guest memory, or a `GNTST_*` error.
    fn check(&self, domid: DomId, gref: GrantRef, write: bool) -> Result<usize, i16> {
        if domid != self.guest_domid {
            return Err(GNTST_BAD_DOMAIN);
        }
        if gref >= self.nr_grants {
            return Err(GNTST_BAD_GNTREF);
        }
        let off = gref as usize * GRANT_ENTRY_SIZE;
        let flags = self
            .table
            .atomic_u16(off)
            .ok_or(GNTST_BAD_GNTREF)?
            .load(Ordering::Acquire);
        let entry: GrantEntryV1 = self.table.read_obj(off).ok_or(GNTST_BAD_GNTREF)?;
        if flags & GTF_TYPE_MASK != GTF_PERMIT_ACCESS || entry.domid != self.backend_domid {
            return Err(GNTST_GENERAL_ERROR);
        }
        if write && flags & GTF_READONLY != 0 {
            return Err(GNTST_GENERAL_ERROR);
        }
        if entry.frame >= self.nr_frames {
            return Err(GNTST_BAD_PAGE);
        }
        Ok(entry.frame as usize * XEN_PAGE_SIZE)
    }

    fn copy_one(&self, op: &mut GrantCopy<'_>) -> i16 {
        let ForeignAddr {
            domid,
            gref,
            offset,
        } = op.foreign;
        if let Some(status) = op.precheck() {
            return status;
        }
        let write = matches!(op.local, LocalBuf::ToGuest(_));
        let base = match self.check(domid, gref, write) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let at = base + usize::from(offset);
        let ok = match &mut op.local {
            LocalBuf::FromGuest(dst) => self.mem.read(at, dst),
            LocalBuf::ToGuest(src) => self.mem.write(at, src),
        };
        if ok {
            GNTST_OKAY
        } else {
            GNTST_BAD_PAGE
        }
    }
}

impl GrantOps for EmulatedGrants {
    fn copy(&mut self, ops: &mut [GrantCopy<'_>]) {
        for op in ops.iter_mut() {
            op.status = self.copy_one(op);
        }
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
        let base = self.check(domid, gref, writable).map_err(refused)?;
        RingPage::new(self.mem.clone(), base).ok_or(refused(GNTST_BAD_PAGE))
    }
}

/// One end of an emulated event channel: an eventfd to signal the other
/// end and an eventfd the other end signals.
#[derive(Debug)]
pub struct EventFdChannel {
    notify_fd: OwnedFd,
    wait_fd: OwnedFd,
    /// Held while a backend has the channel bound (the emulated
    /// hypervisor counts bindings with it).
    _binding: Option<Arc<()>>,
}

impl EventFdChannel {
    /// An end that writes `notify_fd` and waits on `wait_fd` (both
    /// eventfds; `wait_fd` is switched to non-blocking).
    pub fn from_fds(notify_fd: OwnedFd, wait_fd: OwnedFd) -> std::io::Result<Self> {
        for fd in [&notify_fd, &wait_fd] {
            fcntl(
                fd.as_raw_fd(),
                FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )?;
        }
        Ok(EventFdChannel {
            notify_fd,
            wait_fd,
            _binding: None,
        })
    }

    /// This end, counted as one binding of `token` for as long as it lives.
    pub(crate) fn counted(mut self, token: &Arc<()>) -> Self {
        self._binding = Some(token.clone());
        self
    }

    /// A connected pair of ends `(frontend, backend)`.
    pub fn pair() -> std::io::Result<(Self, Self)> {
        let new = || -> std::io::Result<OwnedFd> {
            Ok(
                EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?
                    .into(),
            )
        };
        let f2b = new()?;
        let b2f = new()?;
        let front = EventFdChannel {
            notify_fd: f2b.try_clone()?,
            wait_fd: b2f.try_clone()?,
            _binding: None,
        };
        let back = EventFdChannel {
            notify_fd: b2f,
            wait_fd: f2b,
            _binding: None,
        };
        Ok((front, back))
    }

    /// The fd this end writes to notify the other end.
    pub fn notify_fd(&self) -> BorrowedFd<'_> {
        self.notify_fd.as_fd()
    }
}

impl EventChannel for EventFdChannel {
    fn notify(&self) {
        // EAGAIN means the counter is saturated: the other end has an event
        // pending anyway.
        let _ = nix::unistd::write(&self.notify_fd, &1u64.to_ne_bytes());
    }

    fn event_fd(&self) -> BorrowedFd<'_> {
        self.wait_fd.as_fd()
    }

    fn ack(&self) {
        // Poll first: the fd is non-blocking, but the other process shares
        // the open file description and could clear O_NONBLOCK.
        let mut pfd = [nix::poll::PollFd::new(
            self.wait_fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if matches!(nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0) {
            let mut buf = [0u8; 8];
            let _ = nix::unistd::read(self.wait_fd.as_raw_fd(), &mut buf);
        }
    }
}

/// Everything the emulated hypervisor gives a backend for one guest: grant
/// operations on its memory and the backend end of its event channel.
#[derive(Debug)]
pub struct EmulatedDomain {
    /// Grant operations on the guest's memory.
    pub grants: EmulatedGrants,
    /// The backend end of the guest's event channel.
    pub evtchn: EventFdChannel,
}
