//! An emulated netfront: the guest end of a vif, used by the `xennet-guest`
//! program and by tests.
//!
//! It owns the guest's memory and grant table (memfds) and has 1 to 8
//! queues. Queue `q` owns frames `q * QUEUE_FRAMES ..`, laid out as:
//! frame 0 = TX ring, frame 1 = RX ring, frames 2..258 = TX buffers (one
//! per TX request id), frames 258..514 = RX buffers (one per RX ring
//! slot). Grant reference `GREF_BASE + f` grants frame `f` to the backend
//! (TX buffers read-only, everything else writable); references below
//! [`GREF_BASE`] stay unused, as Xen reserves them.
//!
//! Each queue has one event channel, or two with split event channels
//! (`event-channel-tx`/`-rx`): port `1 + 2q` (TX, or both), port `2 + 2q`
//! (RX). Frames go out on the queue of their flow hash (as Linux
//! netfront's `xennet_select_queue`), and [`Netfront::recv`] takes packets
//! from every queue. After the queues come two more frames: the control
//! ring ([`Netfront::enable_ctrl_ring`], port [`CTRL_PORT`]) and a data
//! page for its keys and mapping tables.
//!
//! Like Linux netfront, an RX request's id is its ring slot, and a response
//! is matched to its buffer by slot (extras overlay the id).
//!
//! [`Netfront::reset`] tears the rings down and sets up fresh ones, as
//! Linux netfront does when it reconnects (`xennet_disconnect_backend`,
//! then `talk_to_netback`): every grant is revoked and the same frames are
//! granted again under new references. References come in two banks of
//! `nr_frames` entries, used in turn: bank `b` grants frame `f` as
//! `GREF_BASE + b * nr_frames + f`, so consecutive connections never share
//! a reference.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::ctrl::{CtrlRequest, CtrlResponse};
use crate::emul::{
    sealed_memfd, EmulatedDomain, EmulatedGrants, EventFdChannel, GrantTable, GRANT_ENTRY_SIZE,
};
use crate::error::VifError;
use crate::evtchn::EventChannel;
use crate::grant::{DomId, GrantRef};
use crate::mem::{RingPage, SharedMem};
use crate::netback::{FrontendConfig, QueueSpec};
use crate::ring::{
    CtrlRing, FrontRing, NetifExtraInfo, NetifRxRequest, NetifTxRequest, NetifTxResponse, RxRing,
    TxRing, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, RING_SIZE, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_MAX_TX_SIZE, XEN_PAGE_SIZE,
};

/// First grant reference used (Xen reserves 0..8, `GNTTAB_NR_RESERVED_ENTRIES`).
pub const GREF_BASE: GrantRef = 8;
/// Frame of the TX ring.
pub const TX_RING_FRAME: u32 = 0;
/// Frame of the RX ring.
pub const RX_RING_FRAME: u32 = 1;
/// First TX buffer frame.
pub const TX_BUF_FRAME: u32 = 2;
/// First RX buffer frame.
pub const RX_BUF_FRAME: u32 = TX_BUF_FRAME + RING_SIZE;
/// Frames per queue.
pub const QUEUE_FRAMES: u32 = RX_BUF_FRAME + RING_SIZE;
/// Guest memory size in frames of a single-queue netfront.
pub const NR_FRAMES: u32 = QUEUE_FRAMES;
/// Grant table size in entries of a single-queue netfront.
pub const NR_GRANTS: u32 = 1024;
/// Most queues.
pub const MAX_QUEUES: u32 = crate::netback::MAX_QUEUES as u32;
/// The control ring's event-channel port (after every queue's ports).
pub const CTRL_PORT: u32 = 1 + 2 * MAX_QUEUES;

/// One queue of the frontend.
#[derive(Debug)]
struct FrontQueue {
    /// First frame of the queue.
    base: u32,
    tx: FrontRing<TxRing>,
    rx: FrontRing<RxRing>,
    /// The TX (or only) channel, frontend end.
    tx_evt: EventFdChannel,
    /// The RX channel with split event channels.
    rx_evt: Option<EventFdChannel>,
    /// Backend ends, for an in-process backend (taken once).
    backend_tx: Option<EventFdChannel>,
    backend_rx: Option<EventFdChannel>,
    tx_free_ids: Vec<u16>,
    tx_in_use: Vec<bool>,
}

impl FrontQueue {
    fn rx_channel(&self) -> &EventFdChannel {
        self.rx_evt.as_ref().unwrap_or(&self.tx_evt)
    }
}

/// The guest end of one vif.
#[derive(Debug)]
pub struct Netfront {
    domid: DomId,
    backend_domid: DomId,
    mem: Arc<SharedMem>,
    mem_fd: OwnedFd,
    grants: GrantTable,
    grant_fd: OwnedFd,
    nr_frames: u32,
    nr_grants: u32,
    /// The grant-reference bank in use (0 or 1, see the module docs).
    bank: u32,
    /// Times [`Netfront::reset`] set up fresh rings.
    resets: u64,
    queues: Vec<FrontQueue>,
    /// Queue [`Netfront::recv`] looks at first (round robin).
    rx_next: usize,
    /// Packets received per queue.
    rx_per_queue: [u64; MAX_QUEUES as usize],
    /// The control ring, its channel, and the channel's backend end (for
    /// an in-process backend), once enabled.
    ctrl: Option<(FrontRing<CtrlRing>, EventFdChannel, Option<EventFdChannel>)>,
    /// The last TX responses, at most [`TX_LOG_MAX`].
    tx_log: Vec<NetifTxResponse>,
    tx_errors: u64,
    rx_errors: u64,
    last_gso: Option<NetifExtraInfo>,
    last_hash: Option<NetifExtraInfo>,
    /// Checksum offload on received packets (`feature-no-csum-offload` = 0).
    pub feature_rx_csum: bool,
    /// Multi-slot received packets (`feature-sg`).
    pub feature_sg: bool,
    /// TCP/IPv4 GSO on received packets (`feature-gso-tcpv4`).
    pub feature_gso_tcpv4: bool,
    /// TCP/IPv6 GSO on received packets (`feature-gso-tcpv6`).
    pub feature_gso_tcpv6: bool,
    /// Notify the backend when posting RX requests it asked for
    /// (`feature-rx-notify`); false behaves as a frontend without it.
    pub feature_rx_notify: bool,
    /// Ask for multicast filtering (`request-multicast-control`): only
    /// groups subscribed with [`Netfront::mcast_request`] are received.
    pub request_multicast_control: bool,
}

/// Most TX responses a [`Netfront`] keeps for [`Netfront::tx_responses`].
pub const TX_LOG_MAX: usize = 4 * RING_SIZE as usize;

/// Grant reference of frame `f` in the first bank (before any
/// [`Netfront::reset`]).
pub fn gref_of(frame: u32) -> GrantRef {
    GREF_BASE + frame
}

impl Netfront {
    /// A single-queue guest `domid` with one event channel whose vif is
    /// served by `backend_domid`: memory and grant table created, rings
    /// initialised, all RX requests posted.
    pub fn new(domid: DomId, backend_domid: DomId) -> Result<Netfront, VifError> {
        Netfront::with_queues(domid, backend_domid, 1, false)
    }

    /// As [`Netfront::new`] with `queues` queues (1 to 8) and, when
    /// `split`, two event channels per queue.
    pub fn with_queues(
        domid: DomId,
        backend_domid: DomId,
        queues: u32,
        split: bool,
    ) -> Result<Netfront, VifError> {
        if queues == 0 || queues > MAX_QUEUES {
            return Err(VifError::Attach(format!(
                "{queues} queues: 1 to {MAX_QUEUES} are supported"
            )));
        }
        // The queues, then the control ring and its data page.
        let nr_frames = QUEUE_FRAMES * queues + 2;
        // Two banks of references (see the module docs).
        let nr_grants = (GREF_BASE + 2 * nr_frames)
            .next_power_of_two()
            .max(NR_GRANTS);
        let mem_len = nr_frames as usize * XEN_PAGE_SIZE;
        let table_len = nr_grants as usize * GRANT_ENTRY_SIZE;
        let mem_fd = sealed_memfd("xennet-guest-mem", mem_len)?;
        let grant_fd = sealed_memfd("xennet-guest-gnttab", table_len)?;
        let mem = Arc::new(SharedMem::map_fd(mem_fd.as_fd(), mem_len)?);
        let grants = GrantTable::new(
            Arc::new(SharedMem::map_fd(grant_fd.as_fd(), table_len)?),
            nr_grants,
        );
        let page = |frame: u32| {
            RingPage::new(mem.clone(), frame as usize * XEN_PAGE_SIZE)
                .ok_or_else(|| VifError::Attach("ring frame outside guest memory".into()))
        };
        let mut qs = Vec::with_capacity(queues as usize);
        for q in 0..queues {
            let base = q * QUEUE_FRAMES;
            let (tx_evt, backend_tx) = EventFdChannel::pair()?;
            let (rx_evt, backend_rx) = if split {
                let (f, b) = EventFdChannel::pair()?;
                (Some(f), Some(b))
            } else {
                (None, None)
            };
            qs.push(FrontQueue {
                base,
                tx: FrontRing::init(page(base + TX_RING_FRAME)?),
                rx: FrontRing::init(page(base + RX_RING_FRAME)?),
                tx_evt,
                rx_evt,
                backend_tx: Some(backend_tx),
                backend_rx,
                tx_free_ids: (0..RING_SIZE as u16).rev().collect(),
                tx_in_use: vec![false; RING_SIZE as usize],
            });
        }
        let mut nf = Netfront {
            domid,
            backend_domid,
            mem,
            mem_fd,
            grants,
            grant_fd,
            nr_frames,
            nr_grants,
            bank: 0,
            resets: 0,
            queues: qs,
            rx_next: 0,
            rx_per_queue: [0; MAX_QUEUES as usize],
            ctrl: None,
            tx_log: Vec::new(),
            tx_errors: 0,
            rx_errors: 0,
            last_gso: None,
            last_hash: None,
            feature_rx_csum: true,
            feature_sg: true,
            feature_gso_tcpv4: false,
            feature_gso_tcpv6: false,
            feature_rx_notify: true,
            request_multicast_control: false,
        };
        nf.grant_all();
        nf.post_all_rx();
        Ok(nf)
    }

    /// Grant reference of frame `frame` in the bank in use.
    fn gref(&self, frame: u32) -> GrantRef {
        GREF_BASE + self.bank * self.nr_frames + frame
    }

    /// Grant every frame to the backend under the current bank: TX
    /// buffers and the control data page read-only, the rest writable.
    fn grant_all(&self) {
        for f in 0..self.nr_frames {
            let off = f % QUEUE_FRAMES;
            let readonly = if f >= self.nr_frames - 2 {
                f == self.nr_frames - 1
            } else {
                (TX_BUF_FRAME..RX_BUF_FRAME).contains(&off)
            };
            self.grants
                .grant(self.gref(f), self.backend_domid, f, readonly);
        }
    }

    /// Post an RX request in every slot of every queue.
    fn post_all_rx(&mut self) {
        for q in 0..self.queues.len() {
            for slot in 0..RING_SIZE {
                self.post_rx(q, slot);
            }
            if let Some(fq) = self.queues.get_mut(q) {
                fq.rx.push_requests();
            }
        }
    }

    /// Tear the rings down and set up fresh ones (see the module docs):
    /// every grant of the current bank revoked, the other bank granted,
    /// every ring re-initialised empty (TX requests not yet answered and
    /// RX responses not yet taken are gone, as in Linux netfront's
    /// `xennet_release_tx_bufs`/`xennet_release_rx_bufs`), all RX requests
    /// posted again, pending notifications consumed. The event channels
    /// stay. Call only once the backend let go of the old rings (it is
    /// Closing or Closed), then hand it the new [`Netfront::ring_refs`].
    pub fn reset(&mut self) -> Result<(), VifError> {
        for f in 0..self.nr_frames {
            self.grants.end_access(self.gref(f));
        }
        self.bank ^= 1;
        self.grant_all();
        let page = |frame: u32| {
            RingPage::new(self.mem.clone(), frame as usize * XEN_PAGE_SIZE)
                .ok_or_else(|| VifError::Attach("ring frame outside guest memory".into()))
        };
        let mut fresh = Vec::with_capacity(self.queues.len());
        for fq in &self.queues {
            fresh.push((
                FrontRing::init(page(fq.base + TX_RING_FRAME)?),
                FrontRing::init(page(fq.base + RX_RING_FRAME)?),
            ));
        }
        let ctrl_ring = match &self.ctrl {
            Some(_) => Some(FrontRing::init(page(self.nr_frames - 2)?)),
            None => None,
        };
        for (fq, (tx, rx)) in self.queues.iter_mut().zip(fresh) {
            fq.tx = tx;
            fq.rx = rx;
            fq.tx_free_ids = (0..RING_SIZE as u16).rev().collect();
            fq.tx_in_use.iter_mut().for_each(|u| *u = false);
        }
        if let (Some(c), Some(ring)) = (self.ctrl.as_mut(), ctrl_ring) {
            c.0 = ring;
        }
        self.post_all_rx();
        self.ack();
        self.rx_next = 0;
        self.resets += 1;
        Ok(())
    }

    /// TX requests the backend has not answered yet (every queue), after
    /// reaping the responses there are.
    pub fn tx_in_flight(&mut self) -> usize {
        self.reap_tx();
        self.queues
            .iter()
            .map(|q| q.tx_in_use.iter().filter(|u| **u).count())
            .sum()
    }

    /// Times [`Netfront::reset`] set up fresh rings.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Number of queues.
    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Whether the queues have split event channels.
    pub fn split_event_channels(&self) -> bool {
        self.queues.first().is_some_and(|q| q.rx_evt.is_some())
    }

    /// Guest memory size in frames.
    pub fn nr_frames(&self) -> u32 {
        self.nr_frames
    }

    /// Grant table size in entries.
    pub fn nr_grants(&self) -> u32 {
        self.nr_grants
    }

    /// Queue `q`'s `(tx-ring-ref, rx-ring-ref)`.
    pub fn ring_refs(&self, q: usize) -> (GrantRef, GrantRef) {
        let base = q as u32 * QUEUE_FRAMES;
        (
            self.gref(base + TX_RING_FRAME),
            self.gref(base + RX_RING_FRAME),
        )
    }

    /// Queue `q`'s event-channel ports: `(event-channel or
    /// event-channel-tx, event-channel-rx)`.
    pub fn event_ports(&self, q: usize) -> (u32, Option<u32>) {
        let tx = 1 + 2 * q as u32;
        (tx, self.split_event_channels().then_some(tx + 1))
    }

    /// Every event-channel port, in registration order (the order of
    /// the registration's eventfd pairs): the queues', then the
    /// control ring's.
    pub fn all_event_ports(&self) -> Vec<u32> {
        (0..self.queues.len())
            .flat_map(|q| {
                let (tx, rx) = self.event_ports(q);
                std::iter::once(tx).chain(rx)
            })
            .chain(self.ctrl.as_ref().map(|_| CTRL_PORT))
            .collect()
    }

    /// Set up the control ring (`feature-ctrl-ring`): the ring page,
    /// its event channel (port [`CTRL_PORT`]). Call before registering.
    pub fn enable_ctrl_ring(&mut self) -> Result<(), VifError> {
        if self.ctrl.is_some() {
            return Ok(());
        }
        let frame = self.nr_frames - 2;
        let page = RingPage::new(self.mem.clone(), frame as usize * XEN_PAGE_SIZE)
            .ok_or_else(|| VifError::Attach("ring frame outside guest memory".into()))?;
        let (front, back) = EventFdChannel::pair()?;
        self.ctrl = Some((FrontRing::init(page), front, Some(back)));
        Ok(())
    }

    /// The control ring's `(ctrl-ring-ref, event-channel-ctrl)`, once
    /// enabled.
    pub fn ctrl_keys(&self) -> Option<(GrantRef, u32)> {
        self.ctrl
            .as_ref()
            .map(|_| (self.gref(self.nr_frames - 2), CTRL_PORT))
    }

    /// The backend end of the control channel for an in-process backend
    /// (available once).
    pub fn emulated_ctrl(&mut self) -> Option<(GrantRef, EventFdChannel)> {
        let (r, _) = self.ctrl_keys()?;
        let back = self.ctrl.as_mut()?.2.take()?;
        Some((r, back))
    }

    /// Write `data` (at most a page) at the start of the control data
    /// page, which the backend reads through [`Netfront::ctrl_data_gref`]
    /// (keys, mapping tables).
    pub fn write_ctrl_data(&mut self, data: &[u8]) -> bool {
        data.len() <= XEN_PAGE_SIZE
            && self
                .mem
                .write((self.nr_frames - 1) as usize * XEN_PAGE_SIZE, data)
    }

    /// Grant reference of the control data page.
    pub fn ctrl_data_gref(&self) -> GrantRef {
        self.gref(self.nr_frames - 1)
    }

    /// Put a control request on the ring and notify. `false` if the
    /// control ring is not enabled or full.
    pub fn ctrl_send(&mut self, req: CtrlRequest) -> bool {
        let Some((ring, ch, _)) = self.ctrl.as_mut() else {
            return false;
        };
        if ring.free_requests() == 0 {
            return false;
        }
        ring.put_request(req);
        ring.push_requests();
        ch.notify();
        true
    }

    /// Overwrite the control ring's shared `req_prod` (hostile use) and
    /// notify.
    pub fn ctrl_set_req_prod(&mut self, v: u32) {
        if let Some((ring, ch, _)) = self.ctrl.as_mut() {
            ring.set_req_prod(v);
            ch.notify();
        }
    }

    /// The next control response, if one is waiting.
    pub fn ctrl_recv(&mut self) -> Option<CtrlResponse> {
        let (ring, _, _) = self.ctrl.as_mut()?;
        if ring.rsp_prod() == ring.rsp_cons {
            ring.final_check_for_responses();
            return None;
        }
        let rsp = ring.copy_response(ring.rsp_cons);
        ring.rsp_cons = ring.rsp_cons.wrapping_add(1);
        Some(rsp)
    }

    /// Packets received so far on each queue.
    pub fn rx_per_queue(&self) -> &[u64] {
        self.rx_per_queue.get(..self.queues.len()).unwrap_or(&[])
    }

    /// The guest's domain id.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// What a backend needs to know to connect (`handle` is the device
    /// number).
    pub fn frontend_config(&self, handle: u16) -> FrontendConfig {
        FrontendConfig {
            domid: self.domid,
            handle,
            tx_ring_ref: self.gref(TX_RING_FRAME),
            rx_ring_ref: self.gref(RX_RING_FRAME),
            rx_copy: true,
            sg: self.feature_sg,
            rx_csum_blank: self.feature_rx_csum,
            gso_tcpv4: self.feature_gso_tcpv4,
            gso_tcpv6: self.feature_gso_tcpv6,
            rx_notify: self.feature_rx_notify,
            multicast_control: self.request_multicast_control,
        }
    }

    /// The emulated hypervisor's view of this guest for an in-process
    /// backend: its own mappings of the guest's memfds and the backend end
    /// of queue 0's (TX) event channel (available once).
    pub fn emulated_domain(&mut self) -> Result<EmulatedDomain, VifError> {
        let grants = self.emulated_grants()?;
        let evtchn = self
            .queues
            .first_mut()
            .and_then(|q| q.backend_tx.take())
            .ok_or_else(|| VifError::Attach("backend end already taken".into()))?;
        Ok(EmulatedDomain { grants, evtchn })
    }

    /// Grant operations on this guest's memory for an in-process backend.
    pub fn emulated_grants(&self) -> Result<EmulatedGrants, VifError> {
        let mem = SharedMem::map_fd(self.mem_fd.as_fd(), self.mem.len())?;
        let table_len = self.nr_grants as usize * GRANT_ENTRY_SIZE;
        let table = SharedMem::map_fd(self.grant_fd.as_fd(), table_len)?;
        Ok(EmulatedGrants::new(
            self.domid,
            self.backend_domid,
            Arc::new(mem),
            self.nr_frames,
            Arc::new(table),
            self.nr_grants,
        ))
    }

    /// Every queue for an in-process backend ([`crate::Vif::connect_queues`]):
    /// ring references and the backend ends of the event channels
    /// (available once).
    pub fn emulated_queues(&mut self) -> Result<Vec<QueueSpec>, VifError> {
        let mut out = Vec::with_capacity(self.queues.len());
        for q in 0..self.queues.len() {
            let (tx_ring_ref, rx_ring_ref) = self.ring_refs(q);
            let fq = self
                .queues
                .get_mut(q)
                .ok_or_else(|| VifError::Attach("no such queue".into()))?;
            let tx = fq
                .backend_tx
                .take()
                .ok_or_else(|| VifError::Attach("backend end already taken".into()))?;
            out.push(QueueSpec {
                tx_ring_ref,
                rx_ring_ref,
                tx_evtchn: Box::new(tx),
                rx_evtchn: fq
                    .backend_rx
                    .take()
                    .map(|c| Box::new(c) as Box<dyn EventChannel + Send>),
            });
        }
        Ok(out)
    }

    /// The guest memory memfd, grant table memfd, then for every event
    /// channel (in [`Netfront::all_event_ports`] order) its
    /// frontend→backend and backend→frontend eventfds (for the attach
    /// message).
    pub(crate) fn attach_fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v = vec![self.mem_fd.as_fd(), self.grant_fd.as_fd()];
        for q in &self.queues {
            for c in std::iter::once(&q.tx_evt).chain(q.rx_evt.as_ref()) {
                v.push(c.notify_fd());
                v.push(c.event_fd());
            }
        }
        if let Some((_, c, _)) = &self.ctrl {
            v.push(c.notify_fd());
            v.push(c.event_fd());
        }
        v
    }

    /// The guest's grant table (to revoke or re-grant entries in tests).
    pub fn grant_table(&self) -> &GrantTable {
        &self.grants
    }

    /// File descriptor readable when the backend notified queue 0's TX
    /// (or only) channel.
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        match self.queues.first() {
            Some(q) => q.tx_evt.event_fd(),
            None => self.mem_fd.as_fd(), // cannot happen: at least one queue
        }
    }

    /// Every channel's fd that becomes readable when the backend notified
    /// (the queues', then the control ring's).
    pub fn event_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.queues
            .iter()
            .flat_map(|q| std::iter::once(&q.tx_evt).chain(q.rx_evt.as_ref()))
            .chain(self.ctrl.as_ref().map(|c| &c.1))
            .map(|c| c.event_fd())
            .collect()
    }

    /// Consume pending notifications on every channel.
    pub fn ack(&self) {
        for q in &self.queues {
            q.tx_evt.ack();
            if let Some(c) = &q.rx_evt {
                c.ack();
            }
        }
        if let Some((_, c, _)) = &self.ctrl {
            c.ack();
        }
    }

    /// Notify the backend unconditionally on queue 0's TX (or only)
    /// channel.
    pub fn notify(&self) {
        if let Some(q) = self.queues.first() {
            q.tx_evt.notify();
        }
    }

    /// Notify the backend unconditionally on every channel.
    pub fn notify_all(&self) {
        for q in &self.queues {
            q.tx_evt.notify();
            if let Some(c) = &q.rx_evt {
                c.notify();
            }
        }
    }

    fn post_rx(&mut self, q: usize, slot: u32) {
        let bank = self.gref(0);
        let Some(fq) = self.queues.get_mut(q) else {
            return;
        };
        let id = (slot & (RING_SIZE - 1)) as u16;
        fq.rx.put_request(NetifRxRequest {
            id,
            pad: 0,
            gref: bank + fq.base + RX_BUF_FRAME + u32::from(id),
        });
    }

    /// Reap TX responses on every queue: free their ids, count non-OKAY
    /// ones, log them.
    pub fn reap_tx(&mut self) {
        for q in 0..self.queues.len() {
            self.reap_tx_queue(q);
        }
    }

    fn reap_tx_queue(&mut self, q: usize) {
        let Some(fq) = self.queues.get_mut(q) else {
            return;
        };
        let prod = fq.tx.rsp_prod();
        if prod.wrapping_sub(fq.tx.rsp_cons) > RING_SIZE {
            return; // a broken backend; nothing sane to reap
        }
        while fq.tx.rsp_cons != prod {
            let rsp = fq.tx.copy_response(fq.tx.rsp_cons);
            fq.tx.rsp_cons = fq.tx.rsp_cons.wrapping_add(1);
            if rsp.status == NETIF_RSP_NULL {
                continue;
            }
            if rsp.status != NETIF_RSP_OKAY {
                self.tx_errors += 1;
            }
            if let Some(used) = fq.tx_in_use.get_mut(usize::from(rsp.id)) {
                if *used {
                    *used = false;
                    fq.tx_free_ids.push(rsp.id);
                }
            }
            if self.tx_log.len() >= TX_LOG_MAX {
                // A guest that runs for long must not keep every response.
                self.tx_log.drain(..TX_LOG_MAX / 2);
            }
            self.tx_log.push(rsp);
        }
        fq.tx.final_check_for_responses();
    }

    /// The queue a frame goes out on: its flow hash modulo the queue
    /// count.
    pub fn queue_for(&self, frame: &[u8]) -> usize {
        match self.queues.len() {
            0 | 1 => 0,
            n => crate::toeplitz::default_flow_hash(frame) as usize % n,
        }
    }

    /// Queue one frame on the TX ring of its queue, split into 4 KiB slots
    /// with `NETTXF_more_data`. `flags` are `NETTXF_*` for the first slot
    /// (`csum_blank`, `data_validated`). `Ok(false)` if the ring is full.
    pub fn send(&mut self, frame: &[u8], flags: u16) -> Result<bool, VifError> {
        self.send_with_extras(frame, flags, &[])
    }

    /// As [`Netfront::send`], with extra-info slots (for instance
    /// [`NetifExtraInfo::gso`]) after the first slot.
    pub fn send_with_extras(
        &mut self,
        frame: &[u8],
        flags: u16,
        extras: &[NetifExtraInfo],
    ) -> Result<bool, VifError> {
        let q = self.queue_for(frame);
        self.send_on(q, frame, flags, extras)
    }

    /// Subscribe to (`kind` = `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`) or leave
    /// (`_MCAST_DEL`) multicast group `addr` on queue 0, as `io/netif.h`
    /// describes: a request of size 0 with `NETTXF_extra_info` followed by
    /// the multicast extra. Its response says whether the backend took
    /// it. `Ok(false)` if the ring is full.
    pub fn mcast_request(&mut self, kind: u8, addr: [u8; 6]) -> Result<bool, VifError> {
        self.reap_tx_queue(0);
        let bank = self.gref(0);
        let Some(fq) = self.queues.first_mut() else {
            return Err(VifError::Attach("no queue".into()));
        };
        if fq.tx.free_requests() < 2 {
            return Ok(false);
        }
        let Some(id) = fq.tx_free_ids.pop() else {
            return Ok(false);
        };
        if let Some(u) = fq.tx_in_use.get_mut(usize::from(id)) {
            *u = true;
        }
        fq.tx.put_request(NetifTxRequest {
            gref: bank + fq.base + TX_BUF_FRAME + u32::from(id),
            offset: 0,
            flags: NETTXF_EXTRA_INFO,
            id,
            size: 0,
        });
        fq.tx
            .put_request(NetifExtraInfo::mcast(kind, addr).as_tx_request());
        if fq.tx.push_requests() {
            fq.tx_evt.notify();
        }
        Ok(true)
    }

    /// As [`Netfront::send_with_extras`] on queue `q`.
    pub fn send_on(
        &mut self,
        q: usize,
        frame: &[u8],
        flags: u16,
        extras: &[NetifExtraInfo],
    ) -> Result<bool, VifError> {
        if frame.is_empty() || frame.len() > XEN_NETIF_MAX_TX_SIZE {
            return Err(VifError::Attach(format!("bad frame size {}", frame.len())));
        }
        let chunks: Vec<&[u8]> = frame.chunks(XEN_PAGE_SIZE).collect();
        let need = chunks.len() + extras.len();
        self.reap_tx_queue(q);
        let bank = self.gref(0);
        let mem = self.mem.clone();
        let Some(fq) = self.queues.get_mut(q) else {
            return Err(VifError::Attach(format!("no queue {q}")));
        };
        if (fq.tx.free_requests() as usize) < need || fq.tx_free_ids.len() < chunks.len() {
            return Ok(false);
        }
        let flags = flags & !(NETTXF_MORE_DATA | NETTXF_EXTRA_INFO);
        for (s, chunk) in chunks.iter().enumerate() {
            let Some(id) = fq.tx_free_ids.pop() else {
                return Ok(false);
            };
            if let Some(u) = fq.tx_in_use.get_mut(usize::from(id)) {
                *u = true;
            }
            let frame_no = fq.base + TX_BUF_FRAME + u32::from(id);
            mem.write(frame_no as usize * XEN_PAGE_SIZE, chunk);
            let mut f = if s == 0 { flags } else { 0 };
            if s + 1 < chunks.len() {
                f |= NETTXF_MORE_DATA;
            }
            if s == 0 && !extras.is_empty() {
                f |= NETTXF_EXTRA_INFO;
            }
            // Sizes fit: the frame is at most 0xFFFF bytes.
            let size = if s == 0 { frame.len() } else { chunk.len() } as u16;
            fq.tx.put_request(NetifTxRequest {
                gref: bank + frame_no,
                offset: 0,
                flags: f,
                id,
                size,
            });
            if s == 0 {
                for (k, e) in extras.iter().enumerate() {
                    let mut e = *e;
                    if k + 1 < extras.len() {
                        e.flags |= XEN_NETIF_EXTRA_FLAG_MORE;
                    }
                    fq.tx.put_request(e.as_tx_request());
                }
            }
        }
        if fq.tx.push_requests() {
            fq.tx_evt.notify();
        }
        Ok(true)
    }

    /// Receive one frame into `out` from any queue (round robin;
    /// reassembling `NETRXF_more_data` chains) and repost its RX requests.
    /// Returns the first slot's `NETRXF_*` flags, or `None` if no complete
    /// packet is waiting. Packets with error responses are skipped and
    /// counted.
    pub fn recv(&mut self, out: &mut Vec<u8>) -> Option<u16> {
        let n = self.queues.len();
        for k in 0..n {
            let q = (self.rx_next + k) % n;
            if let Some(f) = self.recv_on(q, out) {
                self.rx_next = (q + 1) % n;
                if let Some(c) = self.rx_per_queue.get_mut(q) {
                    *c += 1;
                }
                return Some(f);
            }
        }
        None
    }

    fn recv_on(&mut self, q: usize, out: &mut Vec<u8>) -> Option<u16> {
        loop {
            let fq = self.queues.get_mut(q)?;
            let prod = fq.rx.rsp_prod();
            if prod.wrapping_sub(fq.rx.rsp_cons) > RING_SIZE || prod == fq.rx.rsp_cons {
                fq.rx.final_check_for_responses();
                return None;
            }
            out.clear();
            let start = fq.rx.rsp_cons;
            let mut idx = start;
            let mut first_flags = None;
            let mut error = false;
            let mut gso = None;
            let mut hash = None;
            loop {
                if idx == prod {
                    return None; // incomplete chain: wait for the rest
                }
                let rsp = fq.rx.copy_response(idx);
                let slot = idx & (RING_SIZE - 1);
                idx = idx.wrapping_add(1);
                if rsp.status < 0 {
                    error = true;
                } else {
                    let off = usize::from(rsp.offset);
                    let len = rsp.status as usize;
                    if off + len > XEN_PAGE_SIZE {
                        error = true;
                    } else {
                        let at = (fq.base + RX_BUF_FRAME + slot) as usize * XEN_PAGE_SIZE + off;
                        let old = out.len();
                        out.resize(old + len, 0);
                        self.mem.read(at, &mut out[old..]);
                    }
                }
                if first_flags.is_none() {
                    first_flags = Some(rsp.flags);
                    if rsp.flags & NETRXF_EXTRA_INFO != 0 {
                        loop {
                            if idx == prod {
                                return None;
                            }
                            let e: NetifExtraInfo = fq.rx.copy_response_as(idx);
                            idx = idx.wrapping_add(1);
                            if e.kind == XEN_NETIF_EXTRA_TYPE_GSO {
                                gso = Some(e);
                            }
                            if e.kind == XEN_NETIF_EXTRA_TYPE_HASH {
                                hash = Some(e);
                            }
                            if e.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                                break;
                            }
                        }
                    }
                }
                if rsp.flags & NETRXF_MORE_DATA == 0 {
                    break;
                }
            }
            let mut slot = start;
            while slot != idx {
                self.post_rx(q, slot);
                slot = slot.wrapping_add(1);
            }
            let fq = self.queues.get_mut(q)?;
            fq.rx.rsp_cons = idx;
            if fq.rx.push_requests() && self.feature_rx_notify {
                fq.rx_channel().notify();
            }
            if error {
                self.rx_errors += 1;
                continue;
            }
            self.last_gso = gso;
            self.last_hash = hash;
            return first_flags;
        }
    }

    /// The hash extra (`XEN_NETIF_EXTRA_TYPE_HASH`) of the last received
    /// packet, if it had one.
    pub fn last_hash(&self) -> Option<NetifExtraInfo> {
        self.last_hash
    }

    /// The GSO extra of the last received packet, if it had one.
    pub fn last_gso(&self) -> Option<NetifExtraInfo> {
        self.last_gso
    }

    /// TX responses other than `NETIF_RSP_OKAY` seen so far.
    pub fn tx_errors(&self) -> u64 {
        self.tx_errors
    }

    /// Received packets skipped because of error responses.
    pub fn rx_errors(&self) -> u64 {
        self.rx_errors
    }

    /// The TX responses reaped so far (except `NETIF_RSP_NULL` ones), after
    /// reaping any new ones: all of them since the last
    /// [`Netfront::clear_tx_responses`] up to [`TX_LOG_MAX`], else at
    /// least the last `TX_LOG_MAX / 2`.
    pub fn tx_responses(&mut self) -> &[NetifTxResponse] {
        self.reap_tx();
        &self.tx_log
    }

    /// Forget the reaped TX responses.
    pub fn clear_tx_responses(&mut self) {
        self.tx_log.clear();
    }

    /// Push raw TX requests as given on queue 0 (hostile use) and notify.
    pub fn push_raw_tx(&mut self, reqs: &[NetifTxRequest]) {
        if let Some(fq) = self.queues.first_mut() {
            for r in reqs {
                fq.tx.put_request(*r);
            }
            fq.tx.push_requests();
            fq.tx_evt.notify();
        }
    }

    /// Move queue 0's TX `req_prod` (shared and private) to `v` (hostile use)
    /// and notify.
    pub fn set_tx_req_prod(&mut self, v: u32) {
        if let Some(fq) = self.queues.first_mut() {
            // The private index too, so that the guest's later sends keep
            // the shared one beyond the ring instead of undoing it before
            // the backend looks.
            fq.tx.req_prod_pvt = v;
            fq.tx.set_req_prod(v);
            fq.tx_evt.notify();
        }
    }

    /// Queue 0's TX ring's next request index (`req_prod_pvt`).
    pub fn tx_req_prod(&self) -> u32 {
        self.queues.first().map_or(0, |q| q.tx.req_prod_pvt)
    }

    /// Write `data` into queue 0's TX buffer `id`'s page at `offset`
    /// (hostile use).
    pub fn write_tx_buffer(&mut self, id: u16, offset: usize, data: &[u8]) -> bool {
        if usize::from(id) >= RING_SIZE as usize || offset + data.len() > XEN_PAGE_SIZE {
            return false;
        }
        let at = (TX_BUF_FRAME + u32::from(id)) as usize * XEN_PAGE_SIZE + offset;
        self.mem.write(at, data)
    }

    /// Grant reference of queue 0's TX buffer `id` (first bank: before
    /// any [`Netfront::reset`]).
    pub fn tx_buffer_gref(id: u16) -> GrantRef {
        gref_of(TX_BUF_FRAME + u32::from(id) % RING_SIZE)
    }
}
