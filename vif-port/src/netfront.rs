//! An emulated netfront: the guest end of a vif, used by the `xennet-guest`
//! program and by tests.
//!
//! It owns the guest's memory and grant table (memfds) and lays memory out
//! as: frame 0 = TX ring, frame 1 = RX ring, frames 2..258 = TX buffers
//! (one per TX request id), frames 258..514 = RX buffers (one per RX ring
//! slot). Grant reference `GREF_BASE + f` grants frame `f` to the backend
//! (TX buffers read-only, everything else writable); references below
//! [`GREF_BASE`] stay unused, as Xen reserves them.
//!
//! Like Linux netfront, an RX request's id is its ring slot, and a response
//! is matched to its buffer by slot (extras overlay the id).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::emul::{
    sealed_memfd, EmulatedDomain, EmulatedGrants, EventFdChannel, GrantTable, GRANT_ENTRY_SIZE,
};
use crate::error::VifError;
use crate::evtchn::EventChannel;
use crate::grant::{DomId, GrantRef};
use crate::mem::{RingPage, SharedMem};
use crate::netback::FrontendConfig;
use crate::ring::{
    FrontRing, NetifExtraInfo, NetifRxRequest, NetifTxRequest, NetifTxResponse, RxRing, TxRing,
    NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_EXTRA_INFO,
    NETTXF_MORE_DATA, RING_SIZE, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_MAX_TX_SIZE, XEN_PAGE_SIZE,
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
/// Guest memory size in frames.
pub const NR_FRAMES: u32 = RX_BUF_FRAME + RING_SIZE;
/// Grant table size in entries.
pub const NR_GRANTS: u32 = 1024;

/// The guest end of one vif.
#[derive(Debug)]
pub struct Netfront {
    domid: DomId,
    backend_domid: DomId,
    mem: Arc<SharedMem>,
    mem_fd: OwnedFd,
    grants: GrantTable,
    grant_fd: OwnedFd,
    evtchn: EventFdChannel,
    backend_evtchn: Option<EventFdChannel>,
    tx: FrontRing<TxRing>,
    rx: FrontRing<RxRing>,
    tx_free_ids: Vec<u16>,
    tx_in_use: Vec<bool>,
    /// The last TX responses, at most [`TX_LOG_MAX`].
    tx_log: Vec<NetifTxResponse>,
    tx_errors: u64,
    rx_errors: u64,
    last_gso: Option<NetifExtraInfo>,
    /// Checksum offload on received packets (`feature-no-csum-offload` = 0).
    pub feature_rx_csum: bool,
    /// Multi-slot received packets (`feature-sg`).
    pub feature_sg: bool,
    /// TCP/IPv4 GSO on received packets (`feature-gso-tcpv4`).
    pub feature_gso_tcpv4: bool,
    /// TCP/IPv6 GSO on received packets (`feature-gso-tcpv6`).
    pub feature_gso_tcpv6: bool,
}

/// Most TX responses a [`Netfront`] keeps for [`Netfront::tx_responses`].
pub const TX_LOG_MAX: usize = 4 * RING_SIZE as usize;

/// Grant reference of frame `f`.
pub fn gref_of(frame: u32) -> GrantRef {
    GREF_BASE + frame
}

impl Netfront {
    /// A guest `domid` whose vif is served by `backend_domid`: memory and
    /// grant table created, rings initialised, all RX requests posted.
    pub fn new(domid: DomId, backend_domid: DomId) -> Result<Netfront, VifError> {
        let mem_len = NR_FRAMES as usize * XEN_PAGE_SIZE;
        let table_len = NR_GRANTS as usize * GRANT_ENTRY_SIZE;
        let mem_fd = sealed_memfd("xennet-guest-mem", mem_len)?;
        let grant_fd = sealed_memfd("xennet-guest-gnttab", table_len)?;
        let mem = Arc::new(SharedMem::map_fd(mem_fd.as_fd(), mem_len)?);
        let grants = GrantTable::new(
            Arc::new(SharedMem::map_fd(grant_fd.as_fd(), table_len)?),
            NR_GRANTS,
        );
        let page = |frame: u32| {
            RingPage::new(mem.clone(), frame as usize * XEN_PAGE_SIZE)
                .ok_or_else(|| VifError::Attach("ring frame outside guest memory".into()))
        };
        let tx = FrontRing::init(page(TX_RING_FRAME)?);
        let rx = FrontRing::init(page(RX_RING_FRAME)?);
        for frame in 0..NR_FRAMES {
            let readonly = (TX_BUF_FRAME..RX_BUF_FRAME).contains(&frame);
            grants.grant(gref_of(frame), backend_domid, frame, readonly);
        }
        let (evtchn, backend_evtchn) = EventFdChannel::pair()?;
        let mut nf = Netfront {
            domid,
            backend_domid,
            mem,
            mem_fd,
            grants,
            grant_fd,
            evtchn,
            backend_evtchn: Some(backend_evtchn),
            tx,
            rx,
            tx_free_ids: (0..RING_SIZE as u16).rev().collect(),
            tx_in_use: vec![false; RING_SIZE as usize],
            tx_log: Vec::new(),
            tx_errors: 0,
            rx_errors: 0,
            last_gso: None,
            feature_rx_csum: true,
            feature_sg: true,
            feature_gso_tcpv4: false,
            feature_gso_tcpv6: false,
        };
        for slot in 0..RING_SIZE {
            nf.post_rx(slot);
        }
        nf.rx.push_requests();
        Ok(nf)
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
            tx_ring_ref: gref_of(TX_RING_FRAME),
            rx_ring_ref: gref_of(RX_RING_FRAME),
            rx_copy: true,
            sg: self.feature_sg,
            rx_csum_blank: self.feature_rx_csum,
            gso_tcpv4: self.feature_gso_tcpv4,
            gso_tcpv6: self.feature_gso_tcpv6,
        }
    }

    /// The emulated hypervisor's view of this guest for an in-process
    /// backend: its own mappings of the guest's memfds and the backend end
    /// of the event channel (available once).
    pub fn emulated_domain(&mut self) -> Result<EmulatedDomain, VifError> {
        let evtchn = self
            .backend_evtchn
            .take()
            .ok_or_else(|| VifError::Attach("backend end already taken".into()))?;
        let mem = SharedMem::map_fd(self.mem_fd.as_fd(), self.mem.len())?;
        let table =
            SharedMem::map_fd(self.grant_fd.as_fd(), NR_GRANTS as usize * GRANT_ENTRY_SIZE)?;
        Ok(EmulatedDomain {
            grants: EmulatedGrants::new(
                self.domid,
                self.backend_domid,
                Arc::new(mem),
                NR_FRAMES,
                Arc::new(table),
                NR_GRANTS,
            ),
            evtchn,
        })
    }

    /// The guest memory memfd, grant table memfd, and the frontend→backend
    /// and backend→frontend eventfds (for the attach message).
    pub(crate) fn attach_fds(&self) -> [BorrowedFd<'_>; 4] {
        [
            self.mem_fd.as_fd(),
            self.grant_fd.as_fd(),
            self.evtchn.notify_fd(),
            self.evtchn.event_fd(),
        ]
    }

    /// The guest's grant table (to revoke or re-grant entries in tests).
    pub fn grant_table(&self) -> &GrantTable {
        &self.grants
    }

    /// File descriptor readable when the backend notified.
    pub fn event_fd(&self) -> BorrowedFd<'_> {
        self.evtchn.event_fd()
    }

    /// Consume pending notifications.
    pub fn ack(&self) {
        self.evtchn.ack();
    }

    /// Notify the backend unconditionally.
    pub fn notify(&self) {
        self.evtchn.notify();
    }

    fn post_rx(&mut self, slot: u32) {
        let id = (slot & (RING_SIZE - 1)) as u16;
        self.rx.put_request(NetifRxRequest {
            id,
            pad: 0,
            gref: gref_of(RX_BUF_FRAME + u32::from(id)),
        });
    }

    fn push_tx(&mut self) {
        if self.tx.push_requests() {
            self.evtchn.notify();
        }
    }

    /// Reap TX responses: free their ids, count non-OKAY ones, log them.
    pub fn reap_tx(&mut self) {
        let prod = self.tx.rsp_prod();
        if prod.wrapping_sub(self.tx.rsp_cons) > RING_SIZE {
            return; // a broken backend; nothing sane to reap
        }
        while self.tx.rsp_cons != prod {
            let rsp = self.tx.copy_response(self.tx.rsp_cons);
            self.tx.rsp_cons = self.tx.rsp_cons.wrapping_add(1);
            if rsp.status == NETIF_RSP_NULL {
                continue;
            }
            if rsp.status != NETIF_RSP_OKAY {
                self.tx_errors += 1;
            }
            if let Some(used) = self.tx_in_use.get_mut(usize::from(rsp.id)) {
                if *used {
                    *used = false;
                    self.tx_free_ids.push(rsp.id);
                }
            }
            if self.tx_log.len() >= TX_LOG_MAX {
                // A guest that runs for long must not keep every response.
                self.tx_log.drain(..TX_LOG_MAX / 2);
            }
            self.tx_log.push(rsp);
        }
        self.tx.final_check_for_responses();
    }

    /// Queue one frame on the TX ring, split into 4 KiB slots with
    /// `NETTXF_more_data`. `flags` are `NETTXF_*` for the first slot
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
        if frame.is_empty() || frame.len() > XEN_NETIF_MAX_TX_SIZE {
            return Err(VifError::Attach(format!("bad frame size {}", frame.len())));
        }
        let chunks: Vec<&[u8]> = frame.chunks(XEN_PAGE_SIZE).collect();
        let need = chunks.len() + extras.len();
        self.reap_tx();
        if (self.tx.free_requests() as usize) < need || self.tx_free_ids.len() < chunks.len() {
            return Ok(false);
        }
        let flags = flags & !(NETTXF_MORE_DATA | NETTXF_EXTRA_INFO);
        for (s, chunk) in chunks.iter().enumerate() {
            let Some(id) = self.tx_free_ids.pop() else {
                return Ok(false);
            };
            if let Some(u) = self.tx_in_use.get_mut(usize::from(id)) {
                *u = true;
            }
            let frame_no = TX_BUF_FRAME + u32::from(id);
            self.mem.write(frame_no as usize * XEN_PAGE_SIZE, chunk);
            let mut f = if s == 0 { flags } else { 0 };
            if s + 1 < chunks.len() {
                f |= NETTXF_MORE_DATA;
            }
            if s == 0 && !extras.is_empty() {
                f |= NETTXF_EXTRA_INFO;
            }
            // Sizes fit: the frame is at most 0xFFFF bytes.
            let size = if s == 0 { frame.len() } else { chunk.len() } as u16;
            self.tx.put_request(NetifTxRequest {
                gref: gref_of(frame_no),
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
                    self.tx.put_request(e.as_tx_request());
                }
            }
        }
        self.push_tx();
        Ok(true)
    }

    /// Receive one frame into `out` (reassembling `NETRXF_more_data`
    /// chains) and repost its RX requests. Returns the first slot's
    /// `NETRXF_*` flags, or `None` if no complete packet is waiting.
    /// Packets with error responses are skipped and counted.
    pub fn recv(&mut self, out: &mut Vec<u8>) -> Option<u16> {
        loop {
            let prod = self.rx.rsp_prod();
            if prod.wrapping_sub(self.rx.rsp_cons) > RING_SIZE || prod == self.rx.rsp_cons {
                self.rx.final_check_for_responses();
                return None;
            }
            out.clear();
            let start = self.rx.rsp_cons;
            let mut idx = start;
            let mut first_flags = None;
            let mut error = false;
            let mut gso = None;
            loop {
                if idx == prod {
                    return None; // incomplete chain: wait for the rest
                }
                let rsp = self.rx.copy_response(idx);
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
                        let at = (RX_BUF_FRAME + slot) as usize * XEN_PAGE_SIZE + off;
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
                            let e: NetifExtraInfo = self.rx.copy_response_as(idx);
                            idx = idx.wrapping_add(1);
                            if e.kind == XEN_NETIF_EXTRA_TYPE_GSO {
                                gso = Some(e);
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
                self.post_rx(slot);
                slot = slot.wrapping_add(1);
            }
            self.rx.rsp_cons = idx;
            if self.rx.push_requests() {
                self.evtchn.notify();
            }
            if error {
                self.rx_errors += 1;
                continue;
            }
            self.last_gso = gso;
            return first_flags;
        }
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

    /// Push raw TX requests as given (hostile use) and notify.
    pub fn push_raw_tx(&mut self, reqs: &[NetifTxRequest]) {
        for r in reqs {
            self.tx.put_request(*r);
        }
        self.tx.push_requests();
        self.evtchn.notify();
    }

    /// Overwrite the shared TX `req_prod` (hostile use) and notify.
    pub fn set_tx_req_prod(&mut self, v: u32) {
        self.tx.set_req_prod(v);
        self.evtchn.notify();
    }

    /// The TX ring's next request index (`req_prod_pvt`).
    pub fn tx_req_prod(&self) -> u32 {
        self.tx.req_prod_pvt
    }

    /// Write `data` into TX buffer `id`'s page at `offset` (hostile use).
    pub fn write_tx_buffer(&mut self, id: u16, offset: usize, data: &[u8]) -> bool {
        if usize::from(id) >= RING_SIZE as usize || offset + data.len() > XEN_PAGE_SIZE {
            return false;
        }
        let at = (TX_BUF_FRAME + u32::from(id)) as usize * XEN_PAGE_SIZE + offset;
        self.mem.write(at, data)
    }

    /// Grant reference of TX buffer `id`.
    pub fn tx_buffer_gref(id: u16) -> GrantRef {
        gref_of(TX_BUF_FRAME + u32::from(id) % RING_SIZE)
    }
}
