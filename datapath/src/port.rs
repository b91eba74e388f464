//! The [`Port`] trait: what the forwarding thread needs from any port (a Xen
//! vif, a tap device, a veth through AF_PACKET, an internal port).
//!
//! The forwarding thread waits on every port's [`Port::event_fd`] with
//! epoll, calls [`Port::recv`] when it is readable (or when the previous
//! call said there is more work), and hands each port the packets the
//! actions sent to it with [`Port::send`].

use std::os::fd::BorrowedFd;

use crate::buffer::{GsoType, Packet, PacketBatch};

/// What a [`Port::recv`] call left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvStatus {
    /// Nothing more to do until the event fd becomes readable again.
    Idle,
    /// More work is pending now (the batch filled up, or deferred output is
    /// waiting): call `recv` again without waiting for the event fd.
    More,
    /// The port is disabled (for instance a vif whose frontend broke the
    /// protocol); the forwarding thread stops polling it.
    Disabled,
}

/// Offloads a port accepts on output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortFeatures {
    /// Accepts frames whose L4 checksum is [`crate::Csum::Partial`]; when
    /// false the datapath fills the checksum in before [`Port::send`].
    pub csum_partial: bool,
    /// Accepts TCP GSO super-frames ([`GsoType::TcpV4`],
    /// [`GsoType::TcpV6`]); when false the datapath segments them.
    pub gso: bool,
}

impl PortFeatures {
    /// Whether [`Port::send`] takes a super-frame of kind `kind` as it is
    /// (else the datapath segments it first). No port takes
    /// [`GsoType::UdpL4`]: the Xen netif protocol has no UDP GSO type, and
    /// Linux ports keep to the TCP types so that one software path (in
    /// [`crate::gso`]) serves every port.
    pub fn takes_gso(&self, kind: GsoType) -> bool {
        self.gso && matches!(kind, GsoType::TcpV4 | GsoType::TcpV6)
    }
}

/// Per-port counters, as OpenFlow port stats (OpenFlow 1.3 §7.3.5.6) and
/// the OVS `Interface:statistics` column name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received from the port into the switch.
    pub rx_packets: u64,
    /// Bytes received from the port into the switch.
    pub rx_bytes: u64,
    /// Packets received but dropped by the port (malformed, over limits).
    pub rx_dropped: u64,
    /// Receive errors (protocol violations, grant failures).
    pub rx_errors: u64,
    /// Packets the switch sent out of the port.
    pub tx_packets: u64,
    /// Bytes the switch sent out of the port.
    pub tx_bytes: u64,
    /// Packets for the port that were dropped (queue full, peer gone).
    pub tx_dropped: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// A switch port as the forwarding thread drives it.
pub trait Port: Send + std::fmt::Debug {
    /// The interface name (`vif1.0`, `tap0`, ...).
    fn name(&self) -> &str;

    /// File descriptor that becomes readable when the port may have work.
    fn event_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Receive packets into `batch` (up to its free room) and do any
    /// deferred work (acknowledge events, flush queued output).
    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus;

    /// Send packets out of the port. The port copies what it keeps;
    /// packets it cannot take now are queued (bounded) or dropped and
    /// counted in `tx_dropped`.
    fn send(&mut self, pkts: &[&Packet]);

    /// Offloads accepted by [`Port::send`].
    fn features(&self) -> PortFeatures;

    /// Current counters.
    fn stats(&self) -> PortStats;
}
