//! The netif wire ABI (`xen/io/netif.h`, `xen/io/ring.h`,
//! `xen/grant_table.h`) and shared-ring accessors.
//!
//! Structures are `#[repr(C)]` copies of the C ones; `tests/abi.rs`
//! compiles the installed Xen headers and checks every size and offset.
//!
//! A shared ring page starts with a 64-byte header (`req_prod`,
//! `req_event`, `rsp_prod`, `rsp_event`, then private/padding bytes) and
//! continues with [`RING_SIZE`] entries, each the union of a request and a
//! response. Indices are free-running `u32`s (`RING_IDX`) masked with
//! `RING_SIZE - 1`; all index arithmetic here wraps.
//!
//! [`BackRing`] and [`FrontRing`] are the two ends, following ring.h's
//! `BACK_RING`/`FRONT_RING` macros: requests are copied out of the page once
//! (`RING_COPY_REQUEST`) and only the copy is looked at; producers publish
//! with Release ordering and decide whether to notify with the hold-off rule
//! of `RING_PUSH_*_AND_CHECK_NOTIFY`; consumers re-arm with
//! `RING_FINAL_CHECK_FOR_*`.

use std::marker::PhantomData;
use std::sync::atomic::{fence, Ordering};

use crate::mem::{Pod, RingPage};

/// Size of a Xen page in bytes (`XEN_PAGE_SIZE`).
pub const XEN_PAGE_SIZE: usize = 4096;
/// Entries in a netif TX or RX ring on one 4 KiB page
/// (`NET_TX_RING_SIZE`, `NET_RX_RING_SIZE`).
pub const RING_SIZE: u32 = 256;
/// Byte offset of the first ring entry in the shared page (`ring[]`).
pub const RING_ENTRIES_OFFSET: usize = 64;

/// TX flag: the L4 checksum is blank (`NETTXF_csum_blank`).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// TX flag: the checksum has been validated (`NETTXF_data_validated`).
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// TX flag: the packet continues in the next slot (`NETTXF_more_data`).
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// TX flag: an extra-info slot follows (`NETTXF_extra_info`).
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// RX flag: checksum validated (`NETRXF_data_validated`).
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// RX flag: checksum blank (`NETRXF_csum_blank`).
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// RX flag: the packet continues in the next slot (`NETRXF_more_data`).
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// RX flag: an extra-info slot follows (`NETRXF_extra_info`).
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// RX flag: GSO prefix (deprecated, `NETRXF_gso_prefix`).
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// Response status: packet dropped (`NETIF_RSP_DROPPED`).
pub const NETIF_RSP_DROPPED: i16 = -2;
/// Response status: error (`NETIF_RSP_ERROR`).
pub const NETIF_RSP_ERROR: i16 = -1;
/// Response status: okay (`NETIF_RSP_OKAY`).
pub const NETIF_RSP_OKAY: i16 = 0;
/// Response status of a slot that carried extra info (`NETIF_RSP_NULL`).
pub const NETIF_RSP_NULL: i16 = 1;

/// Extra type: none, never valid (`XEN_NETIF_EXTRA_TYPE_NONE`).
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// Extra type: GSO (`XEN_NETIF_EXTRA_TYPE_GSO`).
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// Extra type: add multicast address (`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// Extra type: delete multicast address (`XEN_NETIF_EXTRA_TYPE_MCAST_DEL`).
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// Extra type: hash (`XEN_NETIF_EXTRA_TYPE_HASH`).
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// One past the last extra type (`XEN_NETIF_EXTRA_TYPE_MAX`).
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// Extra flag: another extra follows (`XEN_NETIF_EXTRA_FLAG_MORE`).
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// GSO type: none (`XEN_NETIF_GSO_TYPE_NONE`).
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// GSO type: TCP over IPv4 (`XEN_NETIF_GSO_TYPE_TCPV4`).
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// GSO type: TCP over IPv6 (`XEN_NETIF_GSO_TYPE_TCPV6`).
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// Slots every backend must accept per packet (`XEN_NETIF_NR_SLOTS_MIN`).
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;
/// Largest TX packet in bytes (`XEN_NETIF_MAX_TX_SIZE`).
pub const XEN_NETIF_MAX_TX_SIZE: usize = 0xFFFF;

/// Grant entry type: access permitted (`GTF_permit_access`).
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Mask of the grant entry type bits (`GTF_type_mask`).
pub const GTF_TYPE_MASK: u16 = 3;
/// Grant entry subflag: read-only access (`GTF_readonly`).
pub const GTF_READONLY: u16 = 1 << 2;

/// A TX request (`struct netif_tx_request`), 12 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant reference of the page holding the data (`gref`).
    pub gref: u32,
    /// Byte offset of the data within the page (`offset`).
    pub offset: u16,
    /// `NETTXF_*` flags (`flags`).
    pub flags: u16,
    /// Echoed in the response (`id`).
    pub id: u16,
    /// Bytes: the whole packet's size in the first slot, this fragment's
    /// size in later slots (`size`).
    pub size: u16,
}

/// A TX response (`struct netif_tx_response`), 4 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's `id` (`id`).
    pub id: u16,
    /// `NETIF_RSP_*` (`status`).
    pub status: i16,
}

/// An RX request (`struct netif_rx_request`), 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response (`id`).
    pub id: u16,
    /// Padding (`pad`).
    pub pad: u16,
    /// Grant reference of a writable page to receive into (`gref`).
    pub gref: u32,
}

/// An RX response (`struct netif_rx_response`), 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's `id` (`id`).
    pub id: u16,
    /// Byte offset of the data in the page (`offset`).
    pub offset: u16,
    /// `NETRXF_*` flags (`flags`).
    pub flags: u16,
    /// Bytes in this slot if >= 0, else `NETIF_RSP_*` (`status`).
    pub status: i16,
}

/// Extra information slot (`struct netif_extra_info`), 8 bytes, overlaid
/// on a TX request or an RX response.
#[repr(C, align(2))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*` (`type`).
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*` (`flags`).
    pub flags: u8,
    /// The union `u` as raw bytes (little-endian fields).
    pub u: [u8; 6],
}

impl NetifExtraInfo {
    /// A GSO extra: `mss` = `u.gso.size` in bytes, `gso_type` =
    /// `XEN_NETIF_GSO_TYPE_*`.
    pub fn gso(mss: u16, gso_type: u8) -> Self {
        let s = mss.to_le_bytes();
        NetifExtraInfo {
            kind: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            u: [s[0], s[1], gso_type, 0, 0, 0],
        }
    }

    /// A multicast add/del extra (`kind` = `XEN_NETIF_EXTRA_TYPE_MCAST_*`).
    pub fn mcast(kind: u8, addr: [u8; 6]) -> Self {
        NetifExtraInfo {
            kind,
            flags: 0,
            u: addr,
        }
    }

    /// `u.gso.size`: the MSS in bytes.
    pub fn gso_size(&self) -> u16 {
        u16::from_le_bytes([self.u[0], self.u[1]])
    }

    /// `u.gso.type`: `XEN_NETIF_GSO_TYPE_*`.
    pub fn gso_type(&self) -> u8 {
        self.u[2]
    }

    /// `u.gso.features`.
    pub fn gso_features(&self) -> u16 {
        u16::from_le_bytes([self.u[4], self.u[5]])
    }

    /// `u.mcast.addr`.
    pub fn mcast_addr(&self) -> [u8; 6] {
        self.u
    }

    fn to_bytes(self) -> [u8; 8] {
        let u = self.u;
        [self.kind, self.flags, u[0], u[1], u[2], u[3], u[4], u[5]]
    }

    fn from_bytes(b: [u8; 8]) -> Self {
        NetifExtraInfo {
            kind: b[0],
            flags: b[1],
            u: [b[2], b[3], b[4], b[5], b[6], b[7]],
        }
    }

    /// The extra as the TX request slot it overlays (for frontends).
    pub fn as_tx_request(&self) -> NetifTxRequest {
        let b = self.to_bytes();
        NetifTxRequest {
            gref: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            offset: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            id: 0,
            size: 0,
        }
    }

    /// The extra overlaid on a TX request slot.
    pub fn from_tx_request(r: &NetifTxRequest) -> Self {
        let g = r.gref.to_ne_bytes();
        let o = r.offset.to_ne_bytes();
        let f = r.flags.to_ne_bytes();
        Self::from_bytes([g[0], g[1], g[2], g[3], o[0], o[1], f[0], f[1]])
    }

    /// The extra as the RX response slot it overlays (for backends).
    pub fn as_rx_response(&self) -> NetifRxResponse {
        let b = self.to_bytes();
        NetifRxResponse {
            id: u16::from_ne_bytes([b[0], b[1]]),
            offset: u16::from_ne_bytes([b[2], b[3]]),
            flags: u16::from_ne_bytes([b[4], b[5]]),
            status: i16::from_ne_bytes([b[6], b[7]]),
        }
    }

    /// The extra overlaid on an RX response slot.
    pub fn from_rx_response(r: &NetifRxResponse) -> Self {
        let i = r.id.to_ne_bytes();
        let o = r.offset.to_ne_bytes();
        let f = r.flags.to_ne_bytes();
        let s = r.status.to_ne_bytes();
        Self::from_bytes([i[0], i[1], o[0], o[1], f[0], f[1], s[0], s[1]])
    }
}

/// The shared ring header (`struct netif_tx_sring` / `netif_rx_sring`
/// without `ring[]`), 64 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced by the frontend (`req_prod`).
    pub req_prod: u32,
    /// The frontend wants an event when `req_prod` passes this (`req_event`).
    pub req_event: u32,
    /// Responses produced by the backend (`rsp_prod`).
    pub rsp_prod: u32,
    /// The backend wants an event when `rsp_prod` passes this (`rsp_event`).
    pub rsp_event: u32,
    /// Private bytes (`pvt`).
    pub pvt: [u8; 4],
    /// Padding (`__pad`).
    pub pad: [u8; 44],
}

impl Default for SringHeader {
    fn default() -> Self {
        SringHeader {
            req_prod: 0,
            req_event: 0,
            rsp_prod: 0,
            rsp_event: 0,
            pvt: [0; 4],
            pad: [0; 44],
        }
    }
}

/// A version-1 grant table entry (`struct grant_entry_v1`), 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` flags (`flags`).
    pub flags: u16,
    /// Domain allowed to access the frame (`domid`).
    pub domid: u16,
    /// Guest frame number (`frame`).
    pub frame: u32,
}

// SAFETY: all of these are #[repr(C)] structs of integers (or byte arrays)
// without padding (sizes checked against the C headers in tests/abi.rs and
// by the const assertions below); every bit pattern is valid.
unsafe impl Pod for NetifTxRequest {}
// SAFETY: as above.
unsafe impl Pod for NetifTxResponse {}
// SAFETY: as above.
unsafe impl Pod for NetifRxRequest {}
// SAFETY: as above.
unsafe impl Pod for NetifRxResponse {}
// SAFETY: as above.
unsafe impl Pod for NetifExtraInfo {}
// SAFETY: as above.
unsafe impl Pod for GrantEntryV1 {}
// SAFETY: as above.
unsafe impl Pod for SringHeader {}

const _: () = {
    assert!(std::mem::size_of::<NetifTxRequest>() == 12);
    assert!(std::mem::size_of::<NetifTxResponse>() == 4);
    assert!(std::mem::size_of::<NetifRxRequest>() == 8);
    assert!(std::mem::size_of::<NetifRxResponse>() == 8);
    assert!(std::mem::size_of::<NetifExtraInfo>() == 8);
    assert!(std::mem::size_of::<SringHeader>() == RING_ENTRIES_OFFSET);
    assert!(std::mem::size_of::<GrantEntryV1>() == 8);
};

/// A ring's entry types: which request and response share a slot.
pub trait RingKind {
    /// Request type.
    type Req: Pod;
    /// Response type.
    type Rsp: Pod;
    /// Size of one entry in bytes (the union of request and response).
    const ENTRY_SIZE: usize;
    /// Entries in the ring (`__RING_SIZE`: the largest power of two that
    /// fits in the page after the header).
    const SIZE: u32 = RING_SIZE;
}

/// The control ring (`xen_netif_ctrl_sring`): 16-byte entries, 128 of
/// them.
#[derive(Debug)]
pub struct CtrlRing;
impl RingKind for CtrlRing {
    type Req = crate::ctrl::CtrlRequest;
    type Rsp = crate::ctrl::CtrlResponse;
    const ENTRY_SIZE: usize = 16;
    const SIZE: u32 = 128;
}

/// The TX ring (`netif_tx_sring`): 12-byte entries.
#[derive(Debug)]
pub struct TxRing;
impl RingKind for TxRing {
    type Req = NetifTxRequest;
    type Rsp = NetifTxResponse;
    const ENTRY_SIZE: usize = 12;
}

/// The RX ring (`netif_rx_sring`): 8-byte entries.
#[derive(Debug)]
pub struct RxRing;
impl RingKind for RxRing {
    type Req = NetifRxRequest;
    type Rsp = NetifRxResponse;
    const ENTRY_SIZE: usize = 8;
}

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

fn entry_offset<K: RingKind>(idx: u32) -> usize {
    // idx & (K::SIZE - 1) < K::SIZE, so this is at most 64 + 255 * 12 + 12
    // (TX) or 64 + 127 * 16 + 16 (control), well inside the page.
    RING_ENTRIES_OFFSET + (idx & (K::SIZE - 1)) as usize * K::ENTRY_SIZE
}

fn load(page: &RingPage, off: usize) -> u32 {
    page.word(off).map_or(0, |w| w.load(Ordering::Acquire))
}

fn store(page: &RingPage, off: usize, v: u32) {
    if let Some(w) = page.word(off) {
        w.store(v, Ordering::Release);
    }
}

/// The hold-off rule of `RING_PUSH_*_AND_CHECK_NOTIFY`: having moved the
/// producer index from `old` to `new`, notify iff the consumer's `event`
/// index lies in `(old, new]`.
pub fn need_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The backend end of a shared ring (ring.h `BACK_RING`): consumes
/// requests, produces responses.
#[derive(Debug)]
pub struct BackRing<K: RingKind> {
    page: RingPage,
    /// Next request to consume (`req_cons`).
    pub req_cons: u32,
    /// Next response slot to fill (`rsp_prod_pvt`).
    pub rsp_prod_pvt: u32,
    rsp_pushed: u32,
    _kind: PhantomData<K>,
}

impl<K: RingKind> BackRing<K> {
    /// Attach to a ring the frontend initialised (`BACK_RING_ATTACH` with
    /// the current `rsp_prod`).
    pub fn attach(page: RingPage) -> Self {
        let rsp = load(&page, RSP_PROD);
        BackRing {
            page,
            req_cons: rsp,
            rsp_prod_pvt: rsp,
            rsp_pushed: rsp,
            _kind: PhantomData,
        }
    }

    /// The frontend's `req_prod` (Acquire: requests up to it are visible).
    pub fn req_prod(&self) -> u32 {
        load(&self.page, REQ_PROD)
    }

    /// Requests produced but not consumed: `req_prod - req_cons`. The
    /// caller must treat values above [`RING_SIZE`] as a protocol violation
    /// (`RING_REQUEST_PROD_OVERFLOW`).
    pub fn unconsumed(&self) -> u32 {
        self.req_prod().wrapping_sub(self.req_cons)
    }

    /// The frontend's `req_prod` (read once) and the requests pending up
    /// to it. `Err` (a protocol violation, `RING_REQUEST_PROD_OVERFLOW`)
    /// when more than the ring holds are pending.
    pub fn pending(&self) -> Result<(u32, u32), crate::netback::RingOverflow> {
        let prod = self.req_prod();
        let n = prod.wrapping_sub(self.req_cons);
        if n > K::SIZE {
            return Err(crate::netback::RingOverflow {
                req_prod: prod,
                req_cons: self.req_cons,
                size: K::SIZE,
            });
        }
        Ok((prod, n))
    }

    /// Copy the request at ring index `idx` out of shared memory
    /// (`RING_COPY_REQUEST`).
    pub fn copy_request(&self, idx: u32) -> K::Req {
        self.page.read_obj(entry_offset::<K>(idx))
    }

    /// Copy the slot at `idx` as another type overlaid on the request
    /// (an extra-info slot).
    pub fn copy_request_as<T: Pod>(&self, idx: u32) -> T {
        self.page.read_obj(entry_offset::<K>(idx))
    }

    /// Write a response at `rsp_prod_pvt` and advance it (not yet visible).
    pub fn put_response(&mut self, rsp: K::Rsp) {
        self.put_response_as(rsp);
    }

    /// Write another type overlaid on a response slot (RX extra info).
    pub fn put_response_as<T: Pod>(&mut self, v: T) {
        self.page.write_obj(entry_offset::<K>(self.rsp_prod_pvt), v);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publish responses (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`); returns
    /// whether the frontend asked to be notified.
    pub fn push_responses(&mut self) -> bool {
        let old = self.rsp_pushed;
        let new = self.rsp_prod_pvt;
        if old == new {
            return false;
        }
        self.rsp_pushed = new;
        store(&self.page, RSP_PROD, new);
        fence(Ordering::SeqCst);
        need_notify(old, new, load(&self.page, RSP_EVENT))
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: if nothing is pending, ask for an
    /// event on the next request (`req_event = req_cons + 1`) and check
    /// again. Returns whether requests are pending.
    pub fn final_check_for_requests(&mut self) -> bool {
        if self.unconsumed() != 0 {
            return true;
        }
        store(&self.page, REQ_EVENT, self.req_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.unconsumed() != 0
    }
}

/// The frontend end of a shared ring (ring.h `FRONT_RING`): produces
/// requests, consumes responses.
#[derive(Debug)]
pub struct FrontRing<K: RingKind> {
    page: RingPage,
    /// Next request slot to fill (`req_prod_pvt`).
    pub req_prod_pvt: u32,
    /// Next response to consume (`rsp_cons`).
    pub rsp_cons: u32,
    req_pushed: u32,
    _kind: PhantomData<K>,
}

impl<K: RingKind> FrontRing<K> {
    /// Initialise the shared page (`SHARED_RING_INIT`: indices 0, events 1)
    /// and the front end (`FRONT_RING_INIT`).
    pub fn init(page: RingPage) -> Self {
        page.write_obj(
            0,
            SringHeader {
                req_event: 1,
                rsp_event: 1,
                ..SringHeader::default()
            },
        );
        fence(Ordering::SeqCst);
        FrontRing {
            page,
            req_prod_pvt: 0,
            rsp_cons: 0,
            req_pushed: 0,
            _kind: PhantomData,
        }
    }

    /// Free request slots: `SIZE - (req_prod_pvt - rsp_cons)`.
    pub fn free_requests(&self) -> u32 {
        K::SIZE.saturating_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// Write a request at `req_prod_pvt` and advance it.
    pub fn put_request(&mut self, req: K::Req) {
        self.put_request_as(req);
    }

    /// Write another type overlaid on a request slot (TX extra info).
    pub fn put_request_as<T: Pod>(&mut self, v: T) {
        self.page.write_obj(entry_offset::<K>(self.req_prod_pvt), v);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
    }

    /// Publish requests (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`); returns
    /// whether the backend asked to be notified.
    pub fn push_requests(&mut self) -> bool {
        let old = self.req_pushed;
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        self.req_pushed = new;
        store(&self.page, REQ_PROD, new);
        fence(Ordering::SeqCst);
        need_notify(old, new, load(&self.page, REQ_EVENT))
    }

    /// Overwrite the shared `req_prod` with any value (hostile tests).
    pub fn set_req_prod(&mut self, v: u32) {
        store(&self.page, REQ_PROD, v);
    }

    /// The backend's `rsp_prod` (Acquire).
    pub fn rsp_prod(&self) -> u32 {
        load(&self.page, RSP_PROD)
    }

    /// Copy the response at ring index `idx`.
    pub fn copy_response(&self, idx: u32) -> K::Rsp {
        self.page.read_obj(entry_offset::<K>(idx))
    }

    /// Copy the slot at `idx` as another type overlaid on the response.
    pub fn copy_response_as<T: Pod>(&self, idx: u32) -> T {
        self.page.read_obj(entry_offset::<K>(idx))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: re-arm `rsp_event = rsp_cons + 1`
    /// and check again. Returns whether responses are pending.
    pub fn final_check_for_responses(&mut self) -> bool {
        if self.rsp_prod() != self.rsp_cons {
            return true;
        }
        store(&self.page, RSP_EVENT, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.rsp_prod() != self.rsp_cons
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_off_rule() {
        // Consumer wants an event at 5: pushing 3..6 crosses it.
        assert!(need_notify(3, 6, 5));
        assert!(need_notify(3, 6, 6));
        assert!(!need_notify(3, 6, 7));
        assert!(!need_notify(3, 6, 3));
        // Wrap-around.
        assert!(need_notify(u32::MAX - 1, 2, 0));
    }

    #[test]
    fn extra_overlay_round_trip() {
        let mut e = NetifExtraInfo::gso(1448, XEN_NETIF_GSO_TYPE_TCPV6);
        e.flags = XEN_NETIF_EXTRA_FLAG_MORE;
        let back = NetifExtraInfo::from_tx_request(&e.as_tx_request());
        assert_eq!(back, e);
        assert_eq!(back.gso_size(), 1448);
        assert_eq!(back.gso_type(), XEN_NETIF_GSO_TYPE_TCPV6);
        assert_eq!(NetifExtraInfo::from_rx_response(&e.as_rx_response()), e);
    }
}
