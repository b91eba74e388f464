//! Swapping a vif's rings across an interface reset while its port stays
//! on its bridge, as Linux netback keeps its netdev: a frontend that
//! resets (Closing, Closed, fresh rings under new grant references,
//! Initialised) gets `xenvif_disconnect_data` then `xenvif_connect_data`
//! on the same interface, not a new one. Here the port keeps its ofport,
//! counters, MAC learning, megaflows and representor; the datapath sees
//! no port removed or added, so no controller is told of one.
//!
//! The vif is owned by the forwarding thread that polls it, so the
//! control plane cannot touch its rings; it hands requests over through a
//! [`Relink`] instead: a one-slot mailbox and an eventfd in the vif's own
//! epoll set, so the forwarding thread serves the request on its next
//! pass over the vif (within microseconds of the eventfd write).
//!
//! - [`Relink::detach`] (the frontend went Closing): the vif drops its
//!   rings and event channels (unmapping the grants, unbinding the
//!   channels) and the caller waits for that, since the frontend may
//!   revoke its grants once the backend is Closed. Packets for the guest
//!   meanwhile are dropped and counted (`tx_down_drops`).
//! - [`Relink::attach`] (the frontend is Initialised with fresh rings):
//!   the caller maps the new rings and binds the channels
//!   ([`super::Rings::connect_frontend`]) and hands them over without
//!   waiting; the forwarding thread takes its rings, channels and
//!   frontend configuration on its next pass. The frontend's requests
//!   posted before that wait in the ring and are served then (a new
//!   channel's pending event is reported as soon as it is added to the
//!   epoll set, and every pass serves every ring anyway).
//!
//! A request nobody serves (the vif was disabled by a protocol violation,
//! dropped, or is held by no forwarding thread, such as a vif waiting for
//! the database to place it) fails within [`DETACH_TIMEOUT`]; the caller
//! then takes the port off its bridge and connects a new one, the path
//! every first connection takes.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};

use super::Rings;

/// How long [`Relink::detach`] waits for the forwarding thread (which
/// serves a polled vif's request within microseconds) before giving up.
pub const DETACH_TIMEOUT: Duration = Duration::from_millis(200);

/// What the control plane asks of the vif's forwarding thread.
#[derive(Debug)]
pub(super) enum Request {
    /// Drop the rings and channels.
    Detach,
    /// Take these rings, channels and frontend configuration (the
    /// frontend's fresh rings).
    Attach(Box<Rings>),
}

#[derive(Debug, Default)]
struct State {
    /// The request not yet served (at most one: a newer one replaces it).
    pending: Option<Request>,
    /// Detach requests made and served (a detach waits for its own).
    detaches_asked: u64,
    detaches_done: u64,
    /// Nobody serves requests any more: the vif was disabled or dropped.
    dead: bool,
}

/// The hand-over point between the control plane and the forwarding
/// thread that owns a vif (see the module documentation). Shared by an
/// `Arc`: [`super::Vif::relink`].
#[derive(Debug)]
pub struct Relink {
    state: Mutex<State>,
    served: Condvar,
    /// In the vif's epoll set: readable while a request waits.
    pub(super) wake: EventFd,
}

/// Why a [`Relink`] request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelinkError {
    /// The vif is disabled (a protocol violation) or gone.
    #[error("the vif is disabled or gone")]
    Dead,
    /// No forwarding thread served the request in [`DETACH_TIMEOUT`]
    /// (the vif is not polled: not on a bridge).
    #[error("no forwarding thread served the request within {DETACH_TIMEOUT:?}")]
    Timeout,
}

impl Relink {
    pub(super) fn new() -> nix::Result<Relink> {
        Ok(Relink {
            state: Mutex::default(),
            served: Condvar::new(),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal(&self) {
        // A full counter (2^64 - 2 writes) cannot happen; a failed write
        // leaves the request to the next pass over the vif.
        let _ = self.wake.write(1);
    }

    /// Have the forwarding thread drop the vif's rings and channels, and
    /// wait until it did (at most [`DETACH_TIMEOUT`]; the request is then
    /// withdrawn). A pending [`Relink::attach`] not yet taken is simply
    /// withdrawn (the rings it carries are released here).
    pub fn detach(&self) -> Result<(), RelinkError> {
        let mut st = self.lock();
        if st.dead {
            return Err(RelinkError::Dead);
        }
        if let Some(Request::Attach(v)) = st.pending.take() {
            drop(st);
            drop(v);
            // The vif was detached already (the attach came after a
            // detach that was served): nothing is left to release.
            return Ok(());
        }
        st.pending = Some(Request::Detach);
        st.detaches_asked += 1;
        let ticket = st.detaches_asked;
        self.signal();
        let deadline = Instant::now() + DETACH_TIMEOUT;
        while st.detaches_done < ticket && !st.dead {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.pending = None;
                return Err(RelinkError::Timeout);
            }
            st = self
                .served
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if st.detaches_done >= ticket {
            Ok(())
        } else {
            Err(RelinkError::Dead)
        }
    }

    /// Hand `fresh` (the frontend's new rings and channels, mapped and
    /// bound, and its configuration) to the vif, without
    /// waiting: the forwarding thread takes them on its next pass. Fails
    /// (handing `fresh` back) when the vif is disabled or gone.
    pub fn attach(&self, fresh: Rings) -> Result<(), (RelinkError, Box<Rings>)> {
        let mut st = self.lock();
        if st.dead {
            return Err((RelinkError::Dead, Box::new(fresh)));
        }
        let old = st.pending.replace(Request::Attach(Box::new(fresh)));
        self.signal();
        drop(st);
        drop(old);
        Ok(())
    }

    /// Whether requests can no longer be served (the vif was disabled by
    /// a protocol violation, or dropped).
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// The forwarding thread's side: the request waiting, if any.
    pub(super) fn take(&self) -> Option<Request> {
        // Reset the counter (EAGAIN when it was zero already).
        let _ = self.wake.read();
        self.lock().pending.take()
    }

    /// The forwarding thread served a detach.
    pub(super) fn detached(&self) {
        let mut st = self.lock();
        st.detaches_done = st.detaches_asked;
        drop(st);
        self.served.notify_all();
    }

    /// Nobody will serve requests any more (the vif was disabled or
    /// dropped); waiting callers give up at once.
    pub(super) fn kill(&self) {
        let pending = {
            let mut st = self.lock();
            st.dead = true;
            st.pending.take()
        };
        self.served.notify_all();
        drop(pending);
    }
}

/// The grants of a vif whose rings are down: no ring is mapped and no
/// copy is made (nothing asks while there are no rings; any request is
/// refused).
#[derive(Debug)]
pub(super) struct NoGrants;

impl crate::grant::GrantOps for NoGrants {
    fn copy(&mut self, ops: &mut [crate::grant::GrantCopy<'_>]) {
        for op in ops {
            op.status = crate::grant::GNTST_GENERAL_ERROR;
        }
    }

    fn map_ring(
        &mut self,
        domid: crate::grant::DomId,
        gref: crate::grant::GrantRef,
        _writable: bool,
    ) -> Result<crate::mem::RingPage, crate::grant::GrantError> {
        Err(crate::grant::GrantError::Refused {
            domid,
            gref,
            status: crate::grant::GNTST_GENERAL_ERROR,
        })
    }
}
