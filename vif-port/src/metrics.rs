//! Per-vif counters, readable from any thread.
//!
//! Directions are named from the **switch's** point of view, like
//! [`xennet_datapath::PortStats`]: `rx_*` counts traffic the guest
//! transmitted on its TX ring into the switch, `tx_*` counts traffic the
//! switch sent to the guest through its RX ring.
//!
//! [`VifMetrics::to_json`] gives an object with one member per counter:
//!
//! ```json
//! {"rx_packets": 10, "rx_bytes": 600, "rx_malformed": 0, ..., "notifications_suppressed": 3}
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use xennet_datapath::PortStats;

macro_rules! metrics {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Counters of one vif. Each is a monotonically increasing count.
        #[derive(Debug, Default)]
        pub struct VifMetrics {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
            /// Packets from the guest per queue (its TX rings), by queue index.
            pub queue_rx_packets: [AtomicU64; crate::netback::MAX_QUEUES],
            /// Packets to the guest per queue (its RX rings), by queue index;
            /// counted only for vifs with more than one queue.
            pub queue_tx_packets: [AtomicU64; crate::netback::MAX_QUEUES],
            /// Protocol violations by kind, indexed by
            /// [`crate::netback::ProtocolViolation::index`] (in the JSON:
            /// `violations`, an object of the non-zero ones by name).
            pub violations: [AtomicU64; crate::netback::ProtocolViolation::KINDS],
        }

        impl VifMetrics {
            /// Every scalar counter, in declaration order: its name (as in
            /// [`VifMetrics::to_json`] and `xennet/vif-stats`), its
            /// documentation (one line) and its value. The per-queue and
            /// per-violation arrays are not included.
            pub fn counters(&self) -> Vec<VifCounter> {
                vec![$( VifCounter {
                    name: stringify!($name),
                    doc: concat!($($doc),*),
                    value: self.$name.load(Ordering::Relaxed),
                }, )*]
            }

            /// All counters as a JSON object (`name: value`).
            pub fn to_json(&self) -> serde_json::Value {
                let mut m = serde_json::Map::new();
                for c in self.counters() {
                    m.insert(c.name.to_string(), c.value.into());
                }
                let n = (self.queues.load(Ordering::Relaxed) as usize).min(crate::netback::MAX_QUEUES);
                for (key, arr) in [("queue_rx_packets", &self.queue_rx_packets), ("queue_tx_packets", &self.queue_tx_packets)] {
                    let v: Vec<serde_json::Value> = arr.iter().take(n).map(|c| c.load(Ordering::Relaxed).into()).collect();
                    m.insert(key.to_string(), v.into());
                }
                let violations: serde_json::Map<String, serde_json::Value> = self
                    .violations
                    .iter()
                    .zip(crate::netback::ProtocolViolation::NAMES)
                    .map(|(c, name)| (name.to_string(), c.load(Ordering::Relaxed)))
                    .filter(|(_, n)| *n > 0)
                    .map(|(name, n)| (name, n.into()))
                    .collect();
                m.insert("violations".to_string(), violations.into());
                for (key, total, count) in [
                    ("rx_wait_avg_us", &self.rx_wait_ns, &self.rx_packets),
                    ("tx_backlog_wait_avg_us", &self.tx_backlog_wait_ns, &self.tx_queued),
                ] {
                    let (t, c) = (total.load(Ordering::Relaxed), count.load(Ordering::Relaxed));
                    let avg = if c == 0 { 0.0 } else { t as f64 / c as f64 / 1000.0 };
                    m.insert(key.to_string(), avg.into());
                }
                serde_json::Value::Object(m)
            }
        }
    };
}

metrics! {
    /// Packets received from the guest (its TX ring) and handed to the switch.
    rx_packets,
    /// Bytes of those packets.
    rx_bytes,
    /// Total time, in ns, from the backend pass that first found a guest
    /// packet's request in the TX ring to the packet's hand-over to the
    /// switch (batching, the `rate` credit and a busy backend all count;
    /// the scheduling delay before that pass does not). Divided by
    /// `rx_packets`: the average packet-to-backend time
    /// (`rx_wait_avg_us`).
    rx_wait_ns,
    /// Guest packets dropped as malformed (size < 14 bytes, first slot
    /// shorter than the Ethernet header, fragment larger than the remaining
    /// size); each got `NETIF_RSP_ERROR` responses.
    rx_malformed,
    /// Guest packets dropped for using more than 18 data slots
    /// (`XEN_NETIF_NR_SLOTS_MIN`) but fewer than 20.
    rx_too_many_slots,
    /// Guest packets dropped because a grant copy failed (bad gref, not
    /// granted to us, bad frame).
    rx_grant_errors,
    /// Guest packets with `NETTXF_csum_blank` or GSO whose headers could not
    /// be parsed to locate the checksum; dropped.
    rx_csum_unparseable,
    /// Times guest TX stopped for lack of credit under the vif's `rate`
    /// (its packets wait in the ring for the next window).
    rx_rate_limited,
    /// Multicast subscriptions (`XEN_NETIF_EXTRA_TYPE_MCAST_ADD`) accepted.
    rx_mcast_add,
    /// Multicast unsubscriptions (`XEN_NETIF_EXTRA_TYPE_MCAST_DEL`).
    rx_mcast_del,
    /// Multicast subscriptions refused with `NETIF_RSP_ERROR` (not a group
    /// address, or 64 groups already: Linux `XEN_NETBK_MCAST_MAX`).
    mcast_refused,
    /// Guest frames dropped by port security: their source MAC was not
    /// the vif's (`Vif::set_allowed_mac`); each got `NETIF_RSP_ERROR`.
    rx_spoofed_mac,
    /// Guest frames dropped by port security: an IPv4 or IPv6 source
    /// address not among the vif's `ip` addresses of that family (when the
    /// key lists some; IPv6 also allows the MAC's link-local address).
    rx_spoofed_ip,
    /// Guest ARP dropped by port security: the sender MAC not the vif's,
    /// or the sender address not among its IPv4 addresses (0.0.0.0, a
    /// probe, passes).
    rx_spoofed_arp,
    /// Guest neighbour discovery dropped by port security: a source or
    /// target link-layer option not the vif's MAC, options that do not
    /// parse, or an advertisement for an address not the vif's.
    rx_spoofed_nd,
    /// Guest DHCP server messages dropped (DHCP guard: UDP 67 to 68,
    /// DHCPv6 547 to 546) on a port not allowed to serve DHCP.
    rx_rogue_dhcp,
    /// Guest router advertisements and redirects dropped (RA guard), and
    /// IPv6 packets whose header chain the guard cannot follow (RFC 7113).
    rx_rogue_ra,
    /// Multicast frames not sent to a frontend that requested multicast
    /// control, because it did not subscribe to their group.
    tx_mcast_filtered,
    /// Protocol violations that disabled the vif (at most 1).
    fatal_errors,
    /// Packets the switch sent to the guest (its RX ring).
    tx_packets,
    /// Bytes of those packets.
    tx_bytes,
    /// Packets queued because the guest had posted too few RX requests.
    tx_queued,
    /// Packets dropped because the RX queue was full (256 packets or
    /// 512 KiB, XSA-392).
    tx_queue_full,
    /// Control frames (ARP, ICMP, ICMPv6, DHCP, DHCPv6) that found the
    /// guest's RX ring full and waited in the priority backlog, ahead of
    /// bulk frames (`Vif::set_rx_control_first`); also in `tx_queued`.
    tx_prio_queued,
    /// Priority-backlog frames delivered to the guest.
    tx_prio_delivered,
    /// Control frames dropped because the priority backlog was full (64
    /// packets or 64 KiB per queue).
    tx_prio_dropped,
    /// Packets dropped after waiting 10 s in the RX queue for the guest to
    /// post requests (Linux `rx_drain_timeout_msecs`).
    tx_expired,
    /// Total time, in ns, packets spent in the RX queue waiting for the
    /// guest's RX requests (delivered, dropped or expired); divided by
    /// `tx_queued`: the average backlog wait (`tx_backlog_wait_avg_us`).
    tx_backlog_wait_ns,
    /// Packets dropped because a grant copy into the guest failed.
    tx_grant_errors,
    /// Packets dropped because they cannot be delivered to this frontend
    /// (multi-slot without `feature-sg`, or empty).
    tx_unsendable,
    /// Packets dropped because the vif is disabled.
    tx_disabled_drops,
    /// Packets for the guest dropped while its rings were down (from its
    /// frontend's Closing to its reconnection with fresh rings; the port
    /// stays on its bridge): beyond the 256 packets or 512 KiB held for
    /// the fresh rings.
    tx_down_drops,
    /// Times the RX ring had no request for a packet.
    rx_ring_full,
    /// Event channel notifications sent to the guest.
    notifications_sent,
    /// Response pushes that needed no notification (event hold-off).
    notifications_suppressed,
    /// Notifications held back up to the coalescing window (32 µs) to
    /// batch more responses under high load (each sent later).
    notifications_deferred,
    /// Number of queues (set at connection, 0 while the rings are down
    /// for a reset; not a count).
    queues,
    /// Event channel wake-ups taken from the guest (each ready channel once
    /// per backend pass; notifications in between coalesce).
    events_received,
    /// Times an event channel exceeded its event rate and was masked until
    /// the next 1 ms tick (its events coalesced, its rings still served).
    event_throttles,
    /// Control ring requests served (`XEN_NETIF_CTRL_TYPE_*`).
    ctrl_requests,
    /// Control ring requests answered with an error status.
    ctrl_errors,
}

/// One scalar counter of a vif ([`VifMetrics::counters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VifCounter {
    /// The field's name (`rx_packets`).
    pub name: &'static str,
    /// The field's doc comment, its lines joined.
    pub doc: &'static str,
    /// Its value now. `queues` is a number, not a count; the fields
    /// ending in `_ns` are times in nanoseconds.
    pub value: u64,
}

impl VifMetrics {
    /// Add `n` to a counter.
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as port stats.
    pub fn port_stats(&self) -> PortStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PortStats {
            rx_packets: g(&self.rx_packets),
            rx_bytes: g(&self.rx_bytes),
            rx_dropped: g(&self.rx_malformed)
                + g(&self.rx_too_many_slots)
                + g(&self.rx_csum_unparseable),
            rx_errors: g(&self.rx_grant_errors) + g(&self.fatal_errors),
            tx_packets: g(&self.tx_packets),
            tx_bytes: g(&self.tx_bytes),
            tx_dropped: g(&self.tx_queue_full)
                + g(&self.tx_prio_dropped)
                + g(&self.tx_expired)
                + g(&self.tx_unsendable)
                + g(&self.tx_disabled_drops)
                + g(&self.tx_down_drops),
            tx_errors: g(&self.tx_grant_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_list_every_scalar_with_its_doc() {
        let m = VifMetrics::default();
        m.rx_packets.store(7, Ordering::Relaxed);
        m.rx_spoofed_mac.store(2, Ordering::Relaxed);
        let cs = m.counters();
        let json = m.to_json();
        for c in &cs {
            assert_eq!(json[c.name], c.value, "{}", c.name);
            assert!(!c.doc.trim().is_empty(), "{} has no doc", c.name);
            assert!(!c.doc.contains('\n'), "{}", c.name);
        }
        let rx = cs.iter().find(|c| c.name == "rx_packets").unwrap();
        assert_eq!(rx.value, 7);
        assert!(
            rx.doc.starts_with(" Packets received from the guest"),
            "{}",
            rx.doc
        );
        let spoofed = cs.iter().find(|c| c.name == "rx_spoofed_mac").unwrap();
        assert_eq!(spoofed.value, 2);
        // The scalars, the two per-queue arrays, the violations object and
        // the two averages.
        let obj = json.as_object().unwrap();
        assert_eq!(obj.len(), cs.len() + 5);
    }
}
