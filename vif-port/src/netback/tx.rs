//! Guest TX: packets the frontend queued on its TX ring, into the switch
//! (Linux `netback.c`: `xenvif_count_requests`, `xenvif_get_extras`,
//! `xenvif_tx_build_gops`, `xenvif_tx_submit`).
//!
//! One call handles up to a batch's free room of packets: parse the
//! request chains (copying each request out of the ring once), grant-copy
//! every slot of every accepted packet in a single [`GrantOps::copy`]
//! call, set checksum/GSO metadata, then write one response per slot.

use std::time::Instant;

use xennet_datapath::{Csum, Gso, GsoType, PacketBatch, MAX_BURST};

use super::mcast::McastOp;
use super::{LogReason, ProtocolViolation, Queue, RingName, Vif, Violation};
use crate::grant::{recycle_ops, ForeignAddr, GrantCopy, GrantOps, GNTST_OKAY};
use crate::metrics::VifMetrics;
use crate::ring::{
    NetifExtraInfo, NetifTxRequest, NetifTxResponse, NETIF_RSP_ERROR, NETIF_RSP_NULL,
    NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA,
    XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH,
    XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_GSO_TYPE_TCPV6, XEN_NETIF_NR_SLOTS_MIN, XEN_PAGE_SIZE,
};
use xennet_datapath::csum::locate_l4;
use xennet_datapath::packet::IpProtocol;

/// Data slots a packet may use before it is dropped
/// (`XEN_NETBK_LEGACY_SLOTS_MAX` = `XEN_NETIF_NR_SLOTS_MIN`).
pub const MAX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN;
/// Data slots from which a packet disables the vif (Linux `fatal_skb_slots`
/// default). Note: Linux counts slots after the first, so it drops from 20
/// and disables from 22 total slots; we count all data slots and are
/// stricter by one to two slots, which no conforming frontend reaches.
pub const FATAL_SLOTS: usize = 20;
/// Ethernet header length (`ETH_HLEN`).
const ETH_HLEN: u16 = 14;

/// Why a packet was dropped (non-fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropReason {
    Malformed,
    TooManySlots,
    GrantError,
    Csum,
    /// A multicast subscription the filter refused (not a group address,
    /// or [`super::mcast::MCAST_MAX`] groups already).
    McastRefused,
    /// Port security (the vif's [`super::Policy`]).
    Security(Violation),
}

/// One consumed request slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    req: NetifTxRequest,
    extra: bool,
}

/// One parsed packet: `n_slots` consecutive entries of [`Scratch::slots`]
/// from `first_slot`.
#[derive(Debug, Clone, Copy)]
struct TxPkt {
    first_slot: usize,
    n_slots: usize,
    /// Whole packet size (first request's `size`).
    total: u16,
    /// Bytes in the first slot: `total` minus the later fragments.
    first_len: u16,
    flags: u16,
    gso: Option<Gso>,
    /// A multicast control request: no packet, only the request and its
    /// extras to answer (Linux answers it before any size check).
    mcast: Option<McastOp>,
    drop: Option<DropReason>,
    /// Whether the packet got a buffer in the batch.
    in_batch: bool,
}

/// Per-call scratch space, kept across calls to avoid allocating.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    slots: Vec<Slot>,
    pkts: Vec<TxPkt>,
    /// Index into `pkts` of each grant-copy op.
    owner: Vec<usize>,
    /// The grant-copy ops' allocation (empty between calls).
    ops: Vec<GrantCopy<'static>>,
}

impl Vif {
    /// Parse the packet whose first request, at ring index `start`, the
    /// caller copied out as `first` (once: the same copy was charged to the
    /// rate limit), with `work` requests produced from there. `Err` is a
    /// protocol violation (fatal).
    fn parse_packet(
        &mut self,
        q: &mut Queue,
        first: NetifTxRequest,
        start: u32,
        work: u32,
    ) -> Result<TxPkt, ProtocolViolation> {
        let slots = &mut self.tx_scratch.slots;
        let first_slot = slots.len();
        slots.push(Slot {
            req: first,
            extra: false,
        });
        let mut n: u32 = 1;
        let mut pkt = TxPkt {
            first_slot,
            n_slots: 0,
            total: first.size,
            first_len: 0,
            flags: first.flags,
            gso: None,
            mcast: None,
            drop: None,
            in_batch: false,
        };

        if first.flags & NETTXF_EXTRA_INFO != 0 {
            loop {
                if n >= work {
                    return Err(ProtocolViolation::MissingExtraInfo);
                }
                let req = q.tx.copy_request(start.wrapping_add(n));
                n += 1;
                slots.push(Slot { req, extra: true });
                let extra = NetifExtraInfo::from_tx_request(&req);
                match extra.kind {
                    XEN_NETIF_EXTRA_TYPE_GSO => {
                        let mss = extra.gso_size();
                        if mss == 0 {
                            return Err(ProtocolViolation::ZeroGsoSize);
                        }
                        let kind = match extra.gso_type() {
                            XEN_NETIF_GSO_TYPE_TCPV4 => GsoType::TcpV4,
                            XEN_NETIF_GSO_TYPE_TCPV6 => GsoType::TcpV6,
                            t => return Err(ProtocolViolation::BadGsoType(t)),
                        };
                        pkt.gso = Some(Gso { kind, mss });
                    }
                    XEN_NETIF_EXTRA_TYPE_MCAST_ADD => {
                        pkt.mcast = Some(McastOp::Add(extra.mcast_addr()));
                    }
                    XEN_NETIF_EXTRA_TYPE_MCAST_DEL => {
                        pkt.mcast = Some(McastOp::Del(extra.mcast_addr()));
                    }
                    XEN_NETIF_EXTRA_TYPE_HASH => {} // a hint we do not use
                    t => return Err(ProtocolViolation::InvalidExtraType(t)),
                }
                if extra.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                    break;
                }
            }
        }
        if pkt.mcast.is_some() {
            // The request only carries the extras; its size, and data
            // slots a confused frontend chained to it, are not a packet.
            pkt.n_slots = n as usize;
            return Ok(pkt);
        }

        let mut more = first.flags & NETTXF_MORE_DATA != 0;
        let mut data_slots = 1usize;
        let mut remaining = first.size;
        while more {
            if n >= work {
                return Err(ProtocolViolation::TruncatedPacket { produced: work });
            }
            if data_slots + 1 >= FATAL_SLOTS {
                return Err(ProtocolViolation::TooManySlots {
                    slots: data_slots + 1,
                    threshold: FATAL_SLOTS,
                });
            }
            let txp = q.tx.copy_request(start.wrapping_add(n));
            n += 1;
            data_slots += 1;
            slots.push(Slot {
                req: txp,
                extra: false,
            });
            if pkt.drop.is_none() && data_slots > MAX_SLOTS {
                pkt.drop = Some(DropReason::TooManySlots);
            }
            if pkt.drop.is_none() && txp.size > remaining {
                pkt.drop = Some(DropReason::Malformed);
            }
            remaining = remaining.saturating_sub(txp.size);
            if usize::from(txp.offset) + usize::from(txp.size) > XEN_PAGE_SIZE {
                return Err(ProtocolViolation::SlotCrossesPage {
                    offset: txp.offset,
                    size: txp.size,
                });
            }
            more = txp.flags & NETTXF_MORE_DATA != 0;
        }
        pkt.first_len = remaining;
        if usize::from(first.offset) + usize::from(remaining) > XEN_PAGE_SIZE {
            return Err(ProtocolViolation::FirstSlotCrossesPage {
                offset: first.offset,
                size: remaining,
            });
        }
        if pkt.drop.is_none() && remaining < ETH_HLEN {
            // Also catches total < ETH_HLEN, and all-zero-length packets
            // (XSA-448): the Ethernet header must be in the first slot.
            pkt.drop = Some(DropReason::Malformed);
        }
        pkt.n_slots = n as usize;
        Ok(pkt)
    }

    /// Process guest TX into `batch`. `Ok(true)` if more requests remain
    /// after filling the batch; `Err` is a protocol violation.
    pub(super) fn guest_tx(
        &mut self,
        q: &mut Queue,
        batch: &mut PacketBatch,
    ) -> Result<bool, ProtocolViolation> {
        let (prod, pending) =
            q.tx.pending()
                .map_err(|overflow| ProtocolViolation::RingOverflow {
                    ring: RingName::Tx,
                    overflow,
                })?;
        let room = MAX_BURST.saturating_sub(batch.len());
        self.tx_scratch.slots.clear();
        self.tx_scratch.pkts.clear();
        if pending == 0 {
            q.tx_seen_at = None;
            return Ok(false);
        }
        let start_cons = q.tx.req_cons;
        let mut cons = start_cons;
        let mut accepted = 0;
        let rate = self.tx_rate.get();
        // When the backend first saw the oldest request it takes now: this
        // pass, or the earlier one that had to leave it in the ring.
        let now = Instant::now();
        let seen = *q.tx_seen_at.get_or_insert(now);
        let mut throttled = false;
        while accepted < room {
            let work = prod.wrapping_sub(cons);
            if work == 0 {
                break;
            }
            // One copy of the first request out of shared memory: Linux
            // `tx_credit_exceeded` charges its size (the packet's) before
            // anything is consumed, and the same copy is parsed, so a guest
            // cannot be charged for one size and send another.
            let first = q.tx.copy_request(cons);
            // (Without a rate this also forgets an old rate's window.)
            if !self.credit.take(rate, u64::from(first.size), now) {
                VifMetrics::add(&self.metrics.rx_rate_limited, 1);
                throttled = true;
                break;
            }
            let pkt = self.parse_packet(q, first, cons, work)?;
            // n_slots <= work <= RING_SIZE, so this fits in u32.
            cons = cons.wrapping_add(pkt.n_slots as u32);
            if pkt.drop.is_none() && pkt.mcast.is_none() {
                accepted += 1;
            }
            self.tx_scratch.pkts.push(pkt);
        }
        q.tx.req_cons = cons;

        let base = batch.len();
        self.copy_packets(batch);
        self.finish_packets(batch, base);
        self.respond(q);
        let handed = batch.len().saturating_sub(base) as u64;
        if handed > 0 {
            let waited = u64::try_from(seen.elapsed().as_nanos()).unwrap_or(u64::MAX);
            VifMetrics::add(&self.metrics.rx_wait_ns, waited.saturating_mul(handed));
        }
        // What is left was in the ring at this pass at the latest (the
        // older requests were taken first).
        q.tx_seen_at = if prod == cons {
            None
        } else if cons != start_cons {
            Some(now)
        } else {
            Some(seen)
        };
        Ok(prod != cons && !throttled)
    }

    /// Grant-copy all slots of all accepted packets into batch buffers,
    /// in one [`GrantOps::copy`] call.
    fn copy_packets(&mut self, batch: &mut PacketBatch) {
        let domid = self.frontend.domid;
        let Scratch {
            slots,
            pkts,
            owner,
            ops: ops_buf,
        } = &mut self.tx_scratch;
        owner.clear();
        let base = batch.len();
        for pkt in pkts
            .iter_mut()
            .filter(|p| p.drop.is_none() && p.mcast.is_none())
        {
            let Some(p) = batch.push_slot() else {
                break; // cannot happen: at most `room` packets are accepted
            };
            p.resize(usize::from(pkt.total));
            pkt.in_batch = true;
        }
        let mut bufs = batch
            .packets_mut()
            .get_mut(base..)
            .unwrap_or(&mut [])
            .iter_mut();
        let mut ops: Vec<GrantCopy<'_>> = recycle_ops(std::mem::take(ops_buf));
        for (i, pkt) in pkts.iter_mut().enumerate() {
            if !pkt.in_batch {
                continue;
            }
            let Some(p) = bufs.next() else { break };
            let mut rest: &mut [u8] = p.data_mut();
            let chain = slots
                .get(pkt.first_slot..pkt.first_slot + pkt.n_slots)
                .unwrap_or(&[]);
            let mut first = true;
            for s in chain.iter().filter(|s| !s.extra) {
                let len = if first { pkt.first_len } else { s.req.size };
                first = false;
                let len = usize::from(len);
                if len == 0 {
                    continue;
                }
                if len > rest.len() {
                    pkt.drop = Some(DropReason::Malformed); // sizes were checked; defensive
                    break;
                }
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
                rest = tail;
                let addr = ForeignAddr {
                    domid,
                    gref: s.req.gref,
                    offset: s.req.offset,
                };
                ops.push(GrantCopy::from_guest(addr, head));
                owner.push(i);
            }
        }
        if !ops.is_empty() {
            GrantOps::copy(&mut *self.grants, &mut ops);
        }
        for (op, &i) in ops.iter().zip(owner.iter()) {
            if op.status != GNTST_OKAY {
                if let Some(pkt) = pkts.get_mut(i) {
                    pkt.drop = Some(DropReason::GrantError);
                }
            }
        }
        *ops_buf = recycle_ops(ops);
    }

    /// Set offload metadata, count, and remove failed packets from the
    /// batch (the packets from `base` on are the accepted ones, in order).
    fn finish_packets(&mut self, batch: &mut PacketBatch, base: usize) {
        let gen = self.security.generation();
        if gen != self.security_gen {
            self.policy = self.security.policy();
            self.security_gen = gen;
        }
        let mut bi = base; // batch index of the next accepted packet
        let mut keep = base; // batch index where the next good packet goes
        for k in 0..self.tx_scratch.pkts.len() {
            let pkt = self.tx_scratch.pkts[k];
            if let Some(op) = pkt.mcast {
                if self.mcast.apply(op).is_err() {
                    self.tx_scratch.pkts[k].drop = Some(DropReason::McastRefused);
                    self.count_drop(DropReason::McastRefused, &pkt);
                } else {
                    let c = match op {
                        McastOp::Add(_) => &self.metrics.rx_mcast_add,
                        McastOp::Del(_) => &self.metrics.rx_mcast_del,
                    };
                    VifMetrics::add(c, 1);
                }
                continue;
            }
            let had_slot = pkt.in_batch && bi < batch.len();
            let mut drop = pkt.drop;
            if !had_slot && drop.is_none() {
                drop = Some(DropReason::Malformed); // defensive: never happens
            }
            if had_slot && drop.is_none() {
                if let Some(p) = batch.packets_mut().get_mut(bi) {
                    let violation = self.policy.as_ref().and_then(|pol| pol.check(p.data()));
                    if let Some(v) = violation {
                        drop = Some(DropReason::Security(v));
                    } else {
                        match offloads(p.data(), pkt.flags, pkt.gso) {
                            Some(csum) => {
                                p.csum = csum;
                                p.gso = pkt.gso;
                            }
                            None => drop = Some(DropReason::Csum),
                        }
                    }
                }
            }
            if drop != pkt.drop {
                self.tx_scratch.pkts[k].drop = drop;
            }
            match drop {
                None => {
                    VifMetrics::add(&self.metrics.rx_packets, 1);
                    VifMetrics::add(&self.metrics.rx_bytes, u64::from(pkt.total));
                    if keep != bi {
                        batch.packets_mut().swap(keep, bi);
                    }
                    keep += 1;
                }
                Some(reason) => self.count_drop(reason, &pkt),
            }
            if had_slot {
                bi += 1;
            }
        }
        while batch.len() > keep {
            batch.pop();
        }
    }

    fn count_drop(&mut self, reason: DropReason, pkt: &TxPkt) {
        let m = &self.metrics;
        let (counter, log, what) = match reason {
            DropReason::Malformed => (&m.rx_malformed, LogReason::Malformed, "malformed packet"),
            DropReason::TooManySlots => (
                &m.rx_too_many_slots,
                LogReason::TooManySlots,
                "too many slots",
            ),
            DropReason::GrantError => (
                &m.rx_grant_errors,
                LogReason::GrantError,
                "grant copy failed",
            ),
            DropReason::Csum => (
                &m.rx_csum_unparseable,
                LogReason::Csum,
                "checksum offload on unparseable headers",
            ),
            DropReason::McastRefused => (
                &m.mcast_refused,
                LogReason::Mcast,
                "multicast subscription refused (not a group address, or 64 groups already)",
            ),
            DropReason::Security(v) => {
                let (counter, what) = match v {
                    Violation::Mac => (&m.rx_spoofed_mac, "source MAC is not the vif's (port security)"),
                    Violation::Ip => (
                        &m.rx_spoofed_ip,
                        "IPv4 or IPv6 source address is not among the vif's (port security)",
                    ),
                    Violation::Arp => (
                        &m.rx_spoofed_arp,
                        "ARP sender MAC or address is not the vif's (port security)",
                    ),
                    Violation::Nd => (
                        &m.rx_spoofed_nd,
                        "neighbour discovery link-layer option or target is not the vif's (port security)",
                    ),
                    Violation::Dhcp => (&m.rx_rogue_dhcp, "DHCP server message from a guest (port security)"),
                    Violation::Ra => (
                        &m.rx_rogue_ra,
                        "router advertisement or redirect from a guest (port security)",
                    ),
                };
                let log = match v {
                    Violation::Dhcp | Violation::Ra => LogReason::Guard,
                    _ => LogReason::Spoof,
                };
                (counter, log, what)
            }
        };
        VifMetrics::add(counter, 1);
        // Only the log line's limiter (one clock read) remains per drop.
        self.log_drop(
            log,
            format_args!(
                "dropped guest packet: {what} (size {}, {} slots)",
                pkt.total, pkt.n_slots
            ),
        );
    }

    /// One response per consumed slot, in ring order; push and note
    /// whether to notify.
    fn respond(&mut self, q: &mut Queue) {
        let Scratch { slots, pkts, .. } = &self.tx_scratch;
        for pkt in pkts {
            let chain = slots
                .get(pkt.first_slot..pkt.first_slot + pkt.n_slots)
                .unwrap_or(&[]);
            for s in chain {
                let status = if s.extra {
                    NETIF_RSP_NULL
                } else if pkt.drop.is_some() {
                    NETIF_RSP_ERROR
                } else {
                    NETIF_RSP_OKAY
                };
                q.tx.put_response(NetifTxResponse {
                    id: s.req.id,
                    status,
                });
            }
        }
        let pushed = pkts.len();
        let notify = q.tx.push_responses();
        if let Some(c) = self.channels.get_mut(q.tx_chan) {
            c.note(pushed, notify);
        }
    }
}

/// Checksum state for a received frame, or `None` if checksum offload was
/// requested on headers we cannot parse.
fn offloads(frame: &[u8], flags: u16, gso: Option<Gso>) -> Option<xennet_datapath::Csum> {
    if flags & NETTXF_CSUM_BLANK != 0 || gso.is_some() {
        let loc = locate_l4(frame)?;
        let tcp = loc.proto == IpProtocol::Tcp;
        if let Some(g) = gso {
            let ok = match g.kind {
                GsoType::TcpV4 => tcp && !loc.ipv6,
                GsoType::TcpV6 => tcp && loc.ipv6,
                // No netif GSO type maps to it; checked for completeness.
                GsoType::UdpL4 => !tcp,
            };
            if !ok {
                return None;
            }
        }
        return Some(Csum::Partial {
            start: u16::try_from(loc.l4).ok()?,
            offset: loc.csum_offset(),
        });
    }
    if flags & NETTXF_DATA_VALIDATED != 0 {
        return Some(Csum::Validated);
    }
    Some(Csum::None)
}
