//! Guest RX: packets from the switch into the frontend's RX ring (Linux
//! `rx.c`), by grant copy into the pages the frontend posted.
//!
//! Each packet takes one RX request per 4 KiB of data (data at offset 0,
//! `NETRXF_more_data` on all but the last), plus one for a GSO extra and
//! one for a hash extra (when the frontend configured a hash on the
//! control ring) right
//! after the first slot when the frontend takes GSO. Each response goes in
//! the slot of the request it consumes. Packets that find too few requests
//! wait in a bounded backlog per queue (256 packets, 512 KiB); beyond it
//! they are dropped and counted (XSA-392). Control frames (ARP, ICMP,
//! ICMPv6, DHCP; see [`super::prio`]) that find the ring full wait in a
//! small priority backlog of their own (64 packets, 64 KiB), delivered
//! before the bulk one, so a guest whose RX path is saturated still
//! answers pings and neighbour solicitations at once; and a packet that waited
//! [`RX_DRAIN_TIMEOUT`] is dropped (Linux `rx_drain_timeout_msecs`), so a
//! guest that stops posting requests holds no memory for long. A frontend
//! that requested multicast control gets only the groups it subscribed to.

use std::time::{Duration, Instant};

use xennet_datapath::{Csum, GsoType, Packet};

use super::mcast::McastFilter;
use super::{
    FrontendConfig, LogReason, ProtocolViolation, Queue, RingName, Vif, RX_PRIO_BYTES,
    RX_PRIO_PACKETS, RX_QUEUE_BYTES, RX_QUEUE_PACKETS,
};
use crate::ctrl::HashConfig;
use crate::grant::{recycle_ops, ForeignAddr, GrantCopy, GrantOps, GNTST_OKAY};
use crate::metrics::VifMetrics;
use crate::ring::{
    BackRing, NetifExtraInfo, NetifRxRequest, NetifRxResponse, RxRing, NETIF_RSP_ERROR,
    NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
    XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_GSO_TYPE_TCPV4, XEN_NETIF_GSO_TYPE_TCPV6, XEN_PAGE_SIZE,
};
use crate::toeplitz::FlowHash;

/// How long a packet may wait in a queue's backlog for RX requests before
/// it is dropped (Linux `rx_drain_timeout_msecs`: 10 s).
pub const RX_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A packet to deliver to the guest and, once computed, the frontend's
/// hash of it (so that the Toeplitz hash that chose its queue also gives
/// its hash extra).
pub(super) trait RxItem {
    /// The packet.
    fn packet(&self) -> &Packet;
    /// `Some(hash)` when [`HashConfig::flow_hash`] was computed already
    /// (`hash` itself may be `None`: no configured type covers it).
    fn flow_hash(&self) -> Option<Option<FlowHash>> {
        None
    }
}

impl RxItem for &Packet {
    fn packet(&self) -> &Packet {
        self
    }
}

/// A packet with its hash computed (by [`super::Vif::send`] to pick
/// its queue).
#[derive(Debug, Clone, Copy)]
pub(super) struct Hashed<'a> {
    pub(super) pkt: &'a Packet,
    pub(super) hash: Option<FlowHash>,
}

impl RxItem for Hashed<'_> {
    fn packet(&self) -> &Packet {
        self.pkt
    }
    fn flow_hash(&self) -> Option<Option<FlowHash>> {
        Some(self.hash)
    }
}

/// A packet in a queue's backlog, when it got there, and its hash if
/// computed.
#[derive(Debug)]
pub(super) struct Queued {
    pkt: Packet,
    at: Instant,
    hash: Option<Option<FlowHash>>,
}

impl RxItem for Queued {
    fn packet(&self) -> &Packet {
        &self.pkt
    }
    fn flow_hash(&self) -> Option<Option<FlowHash>> {
        self.hash
    }
}

impl Queued {
    /// The packet, out of the backlog.
    pub(super) fn into_packet(self) -> Packet {
        self.pkt
    }

    /// When the packet joined the backlog.
    pub(super) fn since(&self) -> Instant {
        self.at
    }
}

/// One packet's share of the RX ring.
#[derive(Debug)]
struct Plan {
    /// Index of the packet in the caller's slice.
    pkt: usize,
    /// Index in `reqs` of the first consumed request.
    first_req: usize,
    data_slots: usize,
    /// Extra-info slots after the first data slot: GSO, then hash.
    extras: [Option<NetifExtraInfo>; 2],
    failed: bool,
}

/// [`deliver`]'s vectors, kept from call to call so that sending to a
/// guest allocates nothing in the steady state (all empty between calls).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    plans: Vec<Plan>,
    reqs: Vec<NetifRxRequest>,
    ops: Vec<GrantCopy<'static>>,
    owner: Vec<usize>,
}

/// What [`deliver`] did.
#[derive(Debug, Default)]
struct Delivered {
    /// Packets taken from the front of the slice (delivered or dropped).
    handled: usize,
    /// Responses pushed, and whether to notify.
    pushed: usize,
    notify: bool,
    /// Packets whose grant copy failed.
    failed: usize,
}

/// Deliver packets from the front of `pkts` while RX requests last.
#[allow(clippy::too_many_arguments)]
fn deliver<T: RxItem>(
    ring: &mut BackRing<RxRing>,
    grants: &mut dyn GrantOps,
    fe: &FrontendConfig,
    hash: &HashConfig,
    mcast: &McastFilter,
    metrics: &VifMetrics,
    scratch: &mut Scratch,
    pkts: &[T],
) -> Result<Delivered, ProtocolViolation> {
    let Scratch {
        plans,
        reqs,
        ops: ops_buf,
        owner,
    } = scratch;
    plans.clear();
    reqs.clear();
    owner.clear();
    let (_, mut avail) = ring
        .pending()
        .map_err(|overflow| ProtocolViolation::RingOverflow {
            ring: RingName::Rx,
            overflow,
        })?;
    let mut out = Delivered::default();
    let mut cons = ring.req_cons;
    for (i, item) in pkts.iter().enumerate() {
        let p = item.packet();
        let len = p.len();
        let data_slots = len.div_ceil(XEN_PAGE_SIZE).max(1);
        if len == 0 || (data_slots > 1 && !fe.sg) {
            VifMetrics::add(&metrics.tx_unsendable, 1);
            out.handled += 1;
            continue;
        }
        if !mcast.admits(fe, p.data()) {
            VifMetrics::add(&metrics.tx_mcast_filtered, 1);
            out.handled += 1;
            continue;
        }
        let extra = p.gso.and_then(|g| {
            let t = match g.kind {
                GsoType::TcpV4 if fe.gso_tcpv4 => XEN_NETIF_GSO_TYPE_TCPV4,
                GsoType::TcpV6 if fe.gso_tcpv6 => XEN_NETIF_GSO_TYPE_TCPV6,
                _ => return None,
            };
            Some(NetifExtraInfo::gso(g.mss, t))
        });
        // Room first (counting a hash extra if one is configured), so that
        // a packet waiting for a full ring is not hashed on every retry.
        // data_slots <= 17 (MAX_FRAME / 4096 + 1), so this cannot overflow.
        let most = data_slots + usize::from(extra.is_some()) + usize::from(hash.active());
        if most as u32 > avail {
            VifMetrics::add(&metrics.rx_ring_full, 1);
            break;
        }
        // The hash the frontend configured on the control ring, as Linux
        // netback's XEN_NETIF_EXTRA_TYPE_HASH.
        let hash_extra = if hash.active() {
            item.flow_hash()
                .unwrap_or_else(|| hash.flow_hash(p.data()))
                .map(HashConfig::extra_of)
        } else {
            None
        };
        let n_extras = usize::from(extra.is_some()) + usize::from(hash_extra.is_some());
        let need = (data_slots + n_extras) as u32;
        plans.push(Plan {
            pkt: i,
            first_req: reqs.len(),
            data_slots,
            extras: if extra.is_some() {
                [extra, hash_extra]
            } else {
                [hash_extra, None]
            },
            failed: false,
        });
        for _ in 0..need {
            reqs.push(ring.copy_request(cons));
            cons = cons.wrapping_add(1);
        }
        avail -= need;
        out.handled += 1;
    }
    ring.req_cons = cons;
    if plans.is_empty() {
        return Ok(out);
    }

    // Data slot `s` of a plan uses request first_req + s, shifted by the
    // number of extras after the first slot.
    let n_extras = |pl: &Plan| pl.extras.iter().flatten().count();
    let req_of = |pl: &Plan, s: usize| pl.first_req + s + if s > 0 { n_extras(pl) } else { 0 };
    let mut ops: Vec<GrantCopy<'_>> = recycle_ops(std::mem::take(ops_buf));
    for (k, pl) in plans.iter().enumerate() {
        let Some(p) = pkts.get(pl.pkt) else { continue };
        for (s, chunk) in p.packet().data().chunks(XEN_PAGE_SIZE).enumerate() {
            let Some(req) = reqs.get(req_of(pl, s)) else {
                continue;
            };
            let addr = ForeignAddr {
                domid: fe.domid,
                gref: req.gref,
                offset: 0,
            };
            ops.push(GrantCopy::to_guest(addr, chunk));
            owner.push(k);
        }
    }
    grants.copy(&mut ops);
    for (op, &k) in ops.iter().zip(owner.iter()) {
        if op.status != GNTST_OKAY {
            if let Some(pl) = plans.get_mut(k) {
                pl.failed = true;
            }
        }
    }
    *ops_buf = recycle_ops(ops);

    for pl in plans.iter() {
        let Some(p) = pkts.get(pl.pkt) else { continue };
        let p = p.packet();
        let len = p.len();
        let csum_flags = match p.csum {
            Csum::Partial { .. } => NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED,
            Csum::Validated => NETRXF_DATA_VALIDATED,
            Csum::None => 0,
        };
        for s in 0..pl.data_slots {
            let id = reqs.get(req_of(pl, s)).map_or(0, |r| r.id);
            let bytes = len.saturating_sub(s * XEN_PAGE_SIZE).min(XEN_PAGE_SIZE);
            let mut flags = if s + 1 < pl.data_slots {
                NETRXF_MORE_DATA
            } else {
                0
            };
            if s == 0 {
                flags |= csum_flags;
                if n_extras(pl) > 0 {
                    flags |= NETRXF_EXTRA_INFO;
                }
            }
            let status = if pl.failed {
                NETIF_RSP_ERROR
            } else {
                i16::try_from(bytes).unwrap_or(NETIF_RSP_ERROR)
            };
            ring.put_response(NetifRxResponse {
                id,
                offset: 0,
                flags,
                status,
            });
            if s == 0 {
                let n = n_extras(pl);
                for (k, extra) in pl.extras.iter().flatten().enumerate() {
                    let mut e = *extra;
                    if k + 1 < n {
                        e.flags |= XEN_NETIF_EXTRA_FLAG_MORE;
                    }
                    ring.put_response_as(e);
                }
            }
        }
        if pl.failed {
            out.failed += 1;
            VifMetrics::add(&metrics.tx_grant_errors, 1);
        } else {
            VifMetrics::add(&metrics.tx_packets, 1);
            VifMetrics::add(&metrics.tx_bytes, len as u64);
        }
    }
    out.pushed = plans.len();
    out.notify = ring.push_responses();
    Ok(out)
}

impl Vif {
    /// Send packets to the guest: flush the queue, deliver directly while
    /// requests last, queue the rest (bounded).
    pub(super) fn guest_rx<T: RxItem>(&mut self, q: &mut Queue, pkts: &[T]) {
        if q.backlogged() {
            self.flush_rx_queue(q);
        }
        if self.disabled {
            return;
        }
        let mut start = 0;
        if !q.backlogged() {
            match deliver(
                &mut q.rx,
                &mut *self.grants,
                &self.frontend,
                &self.hash,
                &self.mcast,
                &self.metrics,
                &mut self.rx_scratch,
                pkts,
            ) {
                Ok(d) => {
                    start = d.handled;
                    self.note_delivered(q, &d);
                }
                Err(v) => {
                    self.fatal(v);
                    return;
                }
            }
        }
        let rest = pkts.get(start..).unwrap_or(&[]);
        if !rest.is_empty() {
            let now = Instant::now();
            for p in rest {
                self.enqueue(q, p, now);
            }
        }
        // Ask for an event when the frontend posts more requests; if it
        // already did, use them now.
        if q.backlogged() && q.rx.final_check_for_requests() {
            self.flush_rx_queue(q);
        }
    }

    fn note_delivered(&mut self, q: &Queue, d: &Delivered) {
        if let Some(c) = self.channels.get_mut(q.rx_chan) {
            c.note(d.pushed, d.notify);
        }
        if d.failed > 0 {
            self.log_drop(
                LogReason::RxGrantError,
                format_args!("grant copy into the guest failed for {} packets", d.failed),
            );
        }
    }

    fn enqueue<T: RxItem>(&mut self, q: &mut Queue, item: &T, now: Instant) {
        let p = item.packet();
        if !self.mcast.admits(&self.frontend, p.data()) {
            // Not worth a backlog slot (deliver would drop it).
            VifMetrics::add(&self.metrics.tx_mcast_filtered, 1);
            return;
        }
        // Classified only here, when the ring is already full: the
        // direct path never parses.
        let prio = self.rx_control_first && super::prio::is_control(p.data());
        let (backlog, bytes, max_pkts, max_bytes) = if prio {
            (
                &mut q.rx_prio,
                &mut q.rx_prio_bytes,
                RX_PRIO_PACKETS,
                RX_PRIO_BYTES,
            )
        } else {
            (
                &mut q.rx_queue,
                &mut q.rx_queue_bytes,
                RX_QUEUE_PACKETS,
                RX_QUEUE_BYTES,
            )
        };
        if backlog.len() >= max_pkts || *bytes + p.len() > max_bytes {
            let (counter, reason, what) = if prio {
                (
                    &self.metrics.tx_prio_dropped,
                    LogReason::RxPrioFull,
                    "guest RX priority queue full, dropping control frame",
                )
            } else {
                (
                    &self.metrics.tx_queue_full,
                    LogReason::RxQueueFull,
                    "guest RX queue full, dropping packet",
                )
            };
            VifMetrics::add(counter, 1);
            self.log_drop(reason, format_args!("{what}"));
            return;
        }
        let mut pkt = self.rx_pool.pop().unwrap_or_default();
        pkt.clone_from_packet(p);
        *bytes += pkt.len();
        backlog.push_back(Queued {
            pkt,
            at: now,
            hash: item.flow_hash(),
        });
        VifMetrics::add(&self.metrics.tx_queued, 1);
        if prio {
            VifMetrics::add(&self.metrics.tx_prio_queued, 1);
        }
    }

    /// Deliver queued packets while RX requests last, after dropping those
    /// that waited longer than the drain timeout: the priority backlog
    /// first, then, once it is empty, the bulk backlog.
    pub(super) fn flush_rx_queue(&mut self, q: &mut Queue) {
        let now = Instant::now();
        for prio in [true, false] {
            while q
                .backlog(prio)
                .0
                .front()
                .is_some_and(|h| now.saturating_duration_since(h.at) >= self.rx_drain)
            {
                self.dequeue(q, prio, now);
                VifMetrics::add(&self.metrics.tx_expired, 1);
            }
        }
        for prio in [true, false] {
            if q.backlog(prio).0.is_empty() {
                continue;
            }
            let queued = if prio {
                q.rx_prio.make_contiguous()
            } else {
                q.rx_queue.make_contiguous()
            };
            let res = deliver(
                &mut q.rx,
                &mut *self.grants,
                &self.frontend,
                &self.hash,
                &self.mcast,
                &self.metrics,
                &mut self.rx_scratch,
                queued,
            );
            match res {
                Ok(d) => {
                    self.note_delivered(q, &d);
                    for _ in 0..d.handled {
                        self.dequeue(q, prio, now);
                    }
                    if prio {
                        VifMetrics::add(&self.metrics.tx_prio_delivered, d.pushed as u64);
                    }
                }
                Err(v) => {
                    self.fatal(v);
                    return;
                }
            }
            if !q.backlog(prio).0.is_empty() {
                // The ring is full again: bulk waits behind control.
                return;
            }
        }
    }

    /// Take the head of a backlog (the priority one when `prio`;
    /// delivered, dropped or expired), counting the time it waited, and
    /// keep its buffer for reuse.
    fn dequeue(&mut self, q: &mut Queue, prio: bool, now: Instant) {
        let (backlog, bytes) = q.backlog(prio);
        let Some(h) = backlog.pop_front() else {
            return;
        };
        *bytes = bytes.saturating_sub(h.pkt.len());
        let waited = now.saturating_duration_since(h.at).as_nanos();
        VifMetrics::add(
            &self.metrics.tx_backlog_wait_ns,
            u64::try_from(waited).unwrap_or(u64::MAX),
        );
        if self.rx_pool.len() < RX_QUEUE_PACKETS {
            self.rx_pool.push(h.pkt);
        }
    }
}

impl Queue {
    /// The priority backlog (`prio`) or the bulk one, with its byte count.
    fn backlog(&mut self, prio: bool) -> (&mut std::collections::VecDeque<Queued>, &mut usize) {
        if prio {
            (&mut self.rx_prio, &mut self.rx_prio_bytes)
        } else {
            (&mut self.rx_queue, &mut self.rx_queue_bytes)
        }
    }
}
