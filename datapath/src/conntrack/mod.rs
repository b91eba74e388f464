//! Connection tracking (OVS `lib/conntrack.c`, run by the `ct` action).
//!
//! One [`Conntrack`] serves the whole daemon, as OVS's userspace
//! conntrack serves its one datapath: every bridge's forwarding thread
//! holds a clone (the handle is an `Arc`), and so do the control-plane
//! commands (`dpctl/dump-conntrack`, `dpctl/flush-conntrack`, ...).
//!
//! [`Conntrack::execute`] looks a packet up in its zone, updates the
//! connection (creating it on `commit`), applies NAT, and leaves the
//! result in the packet's [`CtMeta`](crate::buffer::CtMeta), from which
//! flow extraction fills the key's `ct_*` fields after recirculation.
//!
//! This is the interface; the tracker behind it is being built (issue 17).
//! Today every IP packet comes out `+trk+new` and nothing is remembered.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::buffer::Packet;

/// `ct_state` bits (OVS `enum ct_state`, lib/packets.h; the NXM
/// `NXM_NX_CT_STATE` field).
pub mod cs {
    /// Start of a new connection.
    pub const NEW: u32 = 0x01;
    /// Part of an established connection.
    pub const EST: u32 = 0x02;
    /// Related to an established connection (e.g. an ICMP error).
    pub const REL: u32 = 0x04;
    /// In the reply direction.
    pub const RPL: u32 = 0x08;
    /// Invalid: could not be tracked, or failed the protocol checks.
    pub const INV: u32 = 0x10;
    /// Tracked (went through the `ct` action).
    pub const TRK: u32 = 0x20;
    /// Source NAT applied.
    pub const SNAT: u32 = 0x40;
    /// Destination NAT applied.
    pub const DNAT: u32 = 0x80;
}

/// Which side NAT rewrites (OVS `nat(src=...)` / `nat(dst=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Source NAT.
    Src,
    /// Destination NAT.
    Dst,
}

/// The `nat` argument of the `ct` action (OVS `struct nat_action_info_t`,
/// NXAST_NAT). `kind: None` (bare `nat`) applies the NAT of an existing
/// connection only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatArgs {
    /// Source or destination NAT; `None` for a bare `nat`.
    pub kind: Option<NatKind>,
    /// First address of the range (same family as the packet).
    pub addr_min: Option<IpAddr>,
    /// Last address of the range (inclusive); `addr_min` if one address.
    pub addr_max: Option<IpAddr>,
    /// First L4 port of the range; 0 for "keep the port if possible".
    pub port_min: u16,
    /// Last L4 port of the range (inclusive).
    pub port_max: u16,
    /// `persistent`: the same address for a client across connections.
    pub persistent: bool,
    /// `random` port selection (default `hash`).
    pub random: bool,
}

/// The arguments of one `ct` action (OVS `struct ovs_conntrack_info`,
/// NXAST_CT) that the tracker needs; `table=` (recirculation) is the
/// datapath's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtArgs {
    /// Zone (`zone=N` or read from a field at translation time).
    pub zone: u16,
    /// `commit`: create the connection if it is new.
    pub commit: bool,
    /// `force`: a committed connection in the other direction is ended
    /// and this packet starts a new one.
    pub force: bool,
    /// `nat(...)`.
    pub nat: Option<NatArgs>,
    /// `exec(set_field:V/M->ct_mark)` as (value, mask); only on commit.
    pub mark: Option<(u32, u32)>,
    /// `exec(set_field:V/M->ct_label)` as (value, mask); only on commit.
    pub label: Option<(u128, u128)>,
}

/// Tracker-wide counters (`dpctl/ct-stats-show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Connections in the table.
    pub connections: u64,
    /// Packets run through [`Conntrack::execute`].
    pub packets: u64,
    /// Packets that came out `+inv`.
    pub invalid: u64,
}

#[derive(Debug, Default)]
struct Inner {
    stats: CtStats,
}

/// The connection tracker; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct Conntrack {
    inner: Arc<Mutex<Inner>>,
}

impl Conntrack {
    /// An empty tracker with OVS's default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `pkt` through the tracker in `args.zone` (OVS
    /// `conntrack_execute`): sets `pkt.md.ct` (state, zone, mark, label,
    /// original tuple) and rewrites the packet for NAT. Never fails: a
    /// packet that cannot be tracked comes out `+trk+inv`.
    pub fn execute(&self, pkt: &mut Packet, args: &CtArgs, _now: Instant) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.stats.packets += 1;
        pkt.md.ct.state = cs::TRK | cs::NEW;
        pkt.md.ct.zone = args.zone;
    }

    /// Counters.
    pub fn stats(&self) -> CtStats {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stats
    }
}
