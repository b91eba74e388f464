//! A hostile frontend: pushes malformed requests on purpose (`xennet-guest
//! --hostile CASE` and the tests). Each case names what a correct backend
//! must do with it.

use std::fmt;
use std::str::FromStr;

use crate::netfront::Netfront;
use crate::ring::{NetifTxRequest, NETTXF_MORE_DATA, RING_SIZE};

/// A protocol violation or malformed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostileCase {
    /// `req_prod` more than a ring ahead of the backend: fatal.
    ProdOverflow,
    /// A one-slot packet with a grant reference outside the grant table:
    /// dropped with an error response.
    BadGref,
    /// A slot with `offset + size` beyond the 4 KiB page: fatal.
    OffsetOverflow,
    /// A packet whose slots are all zero-length (XSA-448): dropped with
    /// error responses.
    ZeroLength,
    /// A packet of 20 data slots (`fatal_skb_slots`): fatal.
    TwentySlots,
    /// A packet of 19 data slots (over `XEN_NETIF_NR_SLOTS_MIN`): dropped
    /// with error responses.
    NineteenSlots,
    /// [`STORM_EVENTS`] notifications on every event channel as fast as
    /// possible: the backend accepts at most its event rate per channel
    /// (coalescing and counting the rest) and the vif keeps working.
    EventStorm,
}

/// Notifications per channel in [`HostileCase::EventStorm`].
pub const STORM_EVENTS: u32 = 1_000_000;

impl HostileCase {
    /// All cases.
    pub const ALL: [HostileCase; 7] = [
        HostileCase::ProdOverflow,
        HostileCase::BadGref,
        HostileCase::OffsetOverflow,
        HostileCase::ZeroLength,
        HostileCase::TwentySlots,
        HostileCase::NineteenSlots,
        HostileCase::EventStorm,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            HostileCase::ProdOverflow => "prod-overflow",
            HostileCase::BadGref => "bad-gref",
            HostileCase::OffsetOverflow => "offset-overflow",
            HostileCase::ZeroLength => "zero-length",
            HostileCase::TwentySlots => "twenty-slots",
            HostileCase::NineteenSlots => "nineteen-slots",
            HostileCase::EventStorm => "event-storm",
        }
    }

    /// Whether a correct backend disables the vif for this case.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            HostileCase::ProdOverflow | HostileCase::OffsetOverflow | HostileCase::TwentySlots
        )
    }
}

impl fmt::Display for HostileCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Unknown hostile case name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hostile case {0:?} (expected one of prod-overflow, bad-gref, offset-overflow, zero-length, twenty-slots, nineteen-slots, event-storm)")]
pub struct UnknownCase(pub String);

impl FromStr for HostileCase {
    type Err = UnknownCase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostileCase::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCase(s.to_string()))
    }
}

/// A chain of `n` slots of `slot_size` bytes each using TX buffers from
/// id 200 on (ids a well-behaved netfront hands out last), with a valid
/// Ethernet-sized frame.
fn chain(nf: &mut Netfront, n: usize, slot_size: u16) -> Vec<NetifTxRequest> {
    let total = u16::try_from(n)
        .unwrap_or(u16::MAX)
        .saturating_mul(slot_size);
    (0..n)
        .map(|i| {
            let id = 200 + (i as u16 % 56);
            nf.write_tx_buffer(id, 0, &[0xab; 64]);
            NetifTxRequest {
                gref: Netfront::tx_buffer_gref(id),
                offset: 0,
                flags: if i + 1 < n { NETTXF_MORE_DATA } else { 0 },
                id,
                size: if i == 0 { total } else { slot_size },
            }
        })
        .collect()
}

/// Push the malformed requests of `case` on `nf`'s TX ring and notify (or,
/// for [`HostileCase::EventStorm`], only notify, many times).
pub fn run(case: HostileCase, nf: &mut Netfront) {
    match case {
        HostileCase::ProdOverflow => {
            let v = nf.tx_req_prod().wrapping_add(RING_SIZE + 44);
            nf.set_tx_req_prod(v);
        }
        HostileCase::BadGref => {
            let mut reqs = chain(nf, 1, 64);
            if let Some(r) = reqs.first_mut() {
                r.gref = 0x00ff_fff0;
            }
            nf.push_raw_tx(&reqs);
        }
        HostileCase::OffsetOverflow => {
            let mut reqs = chain(nf, 1, 200);
            if let Some(r) = reqs.first_mut() {
                r.offset = 4000;
            }
            nf.push_raw_tx(&reqs);
        }
        HostileCase::ZeroLength => {
            let reqs = chain(nf, 4, 0);
            nf.push_raw_tx(&reqs);
        }
        HostileCase::TwentySlots => {
            let reqs = chain(nf, 20, 64);
            nf.push_raw_tx(&reqs);
        }
        HostileCase::NineteenSlots => {
            let reqs = chain(nf, 19, 64);
            nf.push_raw_tx(&reqs);
        }
        HostileCase::EventStorm => {
            for _ in 0..STORM_EVENTS {
                nf.notify_all();
            }
        }
    }
}
