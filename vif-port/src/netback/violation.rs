//! Protocol violations by a frontend: what makes netback disable a vif
//! (Linux netback's `xenvif_fatal_tx_err` cases, `io/netif.h`'s rules).
//! Each is one variant carrying the offending values, counted per variant
//! in [`crate::VifMetrics::violations`] (named by
//! [`ProtocolViolation::name`]).

use std::fmt;

/// Which shared ring a request count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingName {
    /// A guest TX ring (`netif_tx_sring`).
    Tx,
    /// A guest RX ring (`netif_rx_sring`).
    Rx,
    /// The control ring (`xen_netif_ctrl_sring`).
    Ctrl,
}

impl fmt::Display for RingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingName::Tx => "TX",
            RingName::Rx => "RX",
            RingName::Ctrl => "control",
        })
    }
}

/// `req_prod - req_cons` larger than the ring: the frontend claims
/// requests that cannot exist (`RING_REQUEST_PROD_OVERFLOW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingOverflow {
    /// The frontend's `req_prod`.
    pub req_prod: u32,
    /// The backend's `req_cons`.
    pub req_cons: u32,
    /// Slots in the ring.
    pub size: u32,
}

/// A frontend broke the netif protocol; its vif is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// More requests pending than the ring holds.
    #[error("{ring} ring: impossible request count: req_prod {}, req_cons {}, ring of {}", .overflow.req_prod, .overflow.req_cons, .overflow.size)]
    RingOverflow {
        /// The ring.
        ring: RingName,
        /// The counts.
        overflow: RingOverflow,
    },
    /// `NETTXF_extra_info` set, but the extra slot was not produced.
    #[error("missing extra info")]
    MissingExtraInfo,
    /// A GSO extra with `gso.size` 0.
    #[error("GSO size must not be zero")]
    ZeroGsoSize,
    /// A GSO extra of a type netif.h does not define for TX
    /// (`XEN_NETIF_GSO_TYPE_*`).
    #[error("bad GSO type {0}")]
    BadGsoType(u8),
    /// An extra slot of an unknown `XEN_NETIF_EXTRA_TYPE_*`.
    #[error("invalid extra type {0}")]
    InvalidExtraType(u8),
    /// `NETTXF_more_data` on the last request produced.
    #[error("packet needs more than the {produced} requests produced")]
    TruncatedPacket {
        /// Requests produced from the packet's first.
        produced: u32,
    },
    /// A packet using `slots` slots, at least `threshold` (Linux
    /// netback's `fatal_skb_slots`, 20).
    #[error("malicious frontend using {slots} slots, threshold {threshold}")]
    TooManySlots {
        /// Data slots the packet uses.
        slots: usize,
        /// The fatal threshold.
        threshold: usize,
    },
    /// A data slot whose `offset + size` passes the end of its page.
    #[error("slot crosses page boundary: offset {offset} size {size}")]
    SlotCrossesPage {
        /// The slot's offset (bytes).
        offset: u16,
        /// The slot's size (bytes).
        size: u16,
    },
    /// The first slot's `offset` plus the bytes it carries (its size less
    /// the following slots') passes the end of its page.
    #[error("first slot crosses page boundary: offset {offset} size {size}")]
    FirstSlotCrossesPage {
        /// The slot's offset (bytes).
        offset: u16,
        /// The bytes it carries.
        size: u16,
    },
}

impl ProtocolViolation {
    /// Number of variants (the length of the per-variant counters).
    pub const KINDS: usize = 9;

    /// Every variant's counter name, by [`ProtocolViolation::index`].
    pub const NAMES: [&'static str; Self::KINDS] = [
        "ring_overflow",
        "missing_extra_info",
        "zero_gso_size",
        "bad_gso_type",
        "invalid_extra_type",
        "truncated_packet",
        "too_many_slots",
        "slot_crosses_page",
        "first_slot_crosses_page",
    ];

    /// The variant's index in [`ProtocolViolation::NAMES`].
    pub fn index(&self) -> usize {
        match self {
            ProtocolViolation::RingOverflow { .. } => 0,
            ProtocolViolation::MissingExtraInfo => 1,
            ProtocolViolation::ZeroGsoSize => 2,
            ProtocolViolation::BadGsoType(_) => 3,
            ProtocolViolation::InvalidExtraType(_) => 4,
            ProtocolViolation::TruncatedPacket { .. } => 5,
            ProtocolViolation::TooManySlots { .. } => 6,
            ProtocolViolation::SlotCrossesPage { .. } => 7,
            ProtocolViolation::FirstSlotCrossesPage { .. } => 8,
        }
    }

    /// The variant's counter name.
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_security_keeps_the_mac_and_turns_off() {
        let s = crate::netback::PortSecurity::default();
        assert_eq!(s.allowed(), None);
        let mac = [0x00, 0x16, 0x3e, 0xab, 0xcd, 0xef];
        s.set_mac(Some(mac));
        assert_eq!(s.allowed(), Some(mac));
        s.set_enabled(false);
        assert_eq!(s.allowed(), None);
        s.set_enabled(true);
        assert_eq!(s.allowed(), Some(mac));
        s.set_mac(None);
        assert_eq!(s.allowed(), None);
    }

    #[test]
    fn names_and_messages() {
        let v = ProtocolViolation::RingOverflow {
            ring: RingName::Tx,
            overflow: RingOverflow {
                req_prod: 1000,
                req_cons: 0,
                size: 256,
            },
        };
        assert_eq!(v.name(), "ring_overflow");
        assert_eq!(
            v.to_string(),
            "TX ring: impossible request count: req_prod 1000, req_cons 0, ring of 256"
        );
        assert_eq!(
            ProtocolViolation::FirstSlotCrossesPage { offset: 1, size: 2 }.name(),
            "first_slot_crosses_page"
        );
    }
}
