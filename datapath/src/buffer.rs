//! Packet buffers and batches.
//!
//! A [`Packet`] owns one Ethernet frame (no FCS) plus the offload state that
//! travels with it: whether its L4 checksum is still to be filled in
//! ([`Csum::Partial`], the netif `NETTXF_csum_blank` flag and the virtio-net
//! `VIRTIO_NET_HDR_F_NEEDS_CSUM` flag) and whether it is a GSO super-frame
//! ([`Gso`], the netif `XEN_NETIF_EXTRA_TYPE_GSO` extra).
//!
//! A [`PacketBatch`] carries up to [`MAX_BURST`] packets between a port and
//! the forwarding thread; its buffers are reused from batch to batch so that
//! the steady state allocates nothing.

/// Packets per batch, as Open vSwitch's `NETDEV_MAX_BURST`.
pub const MAX_BURST: usize = 32;

/// Bytes kept free in front of the frame so that a VLAN tag (4 bytes) or
/// other header can be pushed without moving the frame.
pub const HEADROOM: usize = 64;

/// Largest frame a packet buffer holds, in bytes: a 64 KiB GSO frame
/// (`XEN_NETIF_MAX_TX_SIZE` is 0xFFFF) plus room for a VLAN tag.
pub const MAX_FRAME: usize = 65_535 + 4;

/// OpenFlow port number as the datapath sees it (OpenFlow 1.3 §7.2.1
/// `ofp_port_no`); xennet uses the same number for datapath and OpenFlow.
pub type OfPort = u32;

/// The OpenFlow `OFPP_LOCAL` port number.
pub const OFPP_LOCAL: OfPort = 0xffff_fffe;

/// Checksum state of a frame's L4 (TCP/UDP) checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Csum {
    /// Nothing is known: receivers must verify the checksum themselves.
    #[default]
    None,
    /// The checksum field is not filled in yet. `start` is the offset (bytes
    /// from the frame start) where checksumming begins, `offset` the offset
    /// of the 16-bit checksum field from `start`; the field holds the
    /// pseudo-header sum, as Linux `CHECKSUM_PARTIAL`.
    Partial {
        /// Bytes from the start of the frame to the L4 header.
        start: u16,
        /// Bytes from `start` to the checksum field.
        offset: u16,
    },
    /// The sender vouches that the checksum is correct (netif
    /// `NETTXF_data_validated`, virtio `VIRTIO_NET_HDR_F_DATA_VALID`).
    Validated,
}

/// Kind of GSO super-frame (netif `XEN_NETIF_GSO_TYPE_*`, virtio-net
/// `VIRTIO_NET_HDR_GSO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoType {
    /// TCP over IPv4 (`XEN_NETIF_GSO_TYPE_TCPV4`).
    TcpV4,
    /// TCP over IPv6 (`XEN_NETIF_GSO_TYPE_TCPV6`).
    TcpV6,
    /// UDP segmentation over IPv4 or IPv6 (virtio-net
    /// `VIRTIO_NET_HDR_GSO_UDP_L4`, Linux `SKB_GSO_UDP_L4`, as the
    /// `UDP_SEGMENT` socket option makes): each segment is a whole UDP
    /// datagram of `mss` payload bytes, the last one shorter. Not IP
    /// fragmentation (UFO). The netif protocol has no such type, and no
    /// port takes it: the datapath always segments it before output.
    UdpL4,
}

/// A GSO super-frame: to be cut into segments of at most `mss` payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    /// Segmentation type.
    pub kind: GsoType,
    /// Maximum segment size in bytes: TCP payload per segment, or UDP
    /// payload per datagram for [`GsoType::UdpL4`] (Linux `gso_size`).
    pub mss: u16,
}

/// Tunnel metadata of a decapsulated packet (OVS `struct flow_tnl`):
/// copied into the flow key's `tun_*` fields by extraction, and what an
/// output to a tunnel port encapsulates with when the flow set it.
/// All zero for a packet that did not come through a tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TunnelMeta {
    /// Tunnel key: VNI (24 bits) for VXLAN and Geneve, GRE key (32 bits).
    pub id: u64,
    /// Outer source address: IPv4 in the low 32 bits, or IPv6.
    pub src: u128,
    /// Outer destination address, as `src`.
    pub dst: u128,
    /// `tun_flags` (`FLOW_TNL_F_OAM` = 1, as OVS's `NXM_NX_TUN_FLAGS`).
    pub flags: u16,
    /// Outer TOS/traffic class byte.
    pub tos: u8,
    /// Outer TTL/hop limit.
    pub ttl: u8,
    /// Outer UDP source port (VXLAN, Geneve).
    pub tp_src: u16,
    /// Outer UDP destination port.
    pub tp_dst: u16,
    /// Geneve option data as the key holds it ([`crate::flow::Field::TunOpts`]
    /// words 0 and 1, big-endian): where each `tun_metadata<i>` lies is the
    /// bridge's TLV map's choice (OVS `flow_tnl.metadata.opts`).
    pub metadata: [u128; 2],
    /// Which `tun_metadata<i>` are present (bit i; OVS
    /// `metadata.present.map`).
    pub md_present: u64,
}

/// Connection-tracking state of a packet (OVS `struct pkt_metadata`'s
/// `ct_*` fields), as the tracker left it; copied into the key's `ct_*`
/// fields by extraction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtMeta {
    /// `ct_state` bits (`CS_NEW` 0x01 .. `CS_DST_NAT` 0x80, OVS
    /// `enum ct_state` in lib/packets.h).
    pub state: u32,
    /// Zone the packet was tracked in.
    pub zone: u16,
    /// `ct_mark` of the connection.
    pub mark: u32,
    /// `ct_label` of the connection.
    pub label: u128,
    /// Original-direction tuple of the connection (`ct_nw_src` ..
    /// `ct_tp_dst`); addresses as the key stores them (IPv4 in the low
    /// 32 bits).
    pub nw_src: u128,
    /// Original-direction destination address.
    pub nw_dst: u128,
    /// Original-direction IP protocol.
    pub nw_proto: u8,
    /// Original-direction L4 source port (ICMP: type).
    pub tp_src: u16,
    /// Original-direction L4 destination port (ICMP: code).
    pub tp_dst: u16,
}

/// What a packet carries besides its frame and `in_port` (OVS
/// `struct pkt_metadata`): set by tunnel decapsulation, connection
/// tracking and recirculation, read by flow extraction. A packet from a
/// port starts with all of it zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PacketMeta {
    /// Recirculation id (`recirc_id`): 0 on the first pass.
    pub recirc_id: u32,
    /// Datapath hash (`dp_hash`), 0 when not computed.
    pub dp_hash: u32,
    /// Packet mark (`pkt_mark`, the Linux skb mark).
    pub pkt_mark: u32,
    /// Tunnel metadata, zero when not tunnelled.
    pub tunnel: TunnelMeta,
    /// Connection-tracking state, zero when not tracked.
    pub ct: CtMeta,
    /// How the connection tracker reassembled this datagram from
    /// fragments; zero when it did not.
    pub frag: FragMeta,
}

/// The fragments a reassembled datagram arrived in (Linux
/// `IPCB(skb)->frag_max_size` / `IP6CB(skb)->frag_max_size`): output
/// cuts a datagram larger than `max_size` back into fragments of at
/// most that size ([`crate::fragment`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FragMeta {
    /// Largest original fragment, L3 bytes (IP header included); 0 when
    /// the packet was not reassembled.
    pub max_size: u16,
    /// The original IPv6 Fragment header's identification (IPv4 keeps
    /// its identification in the reassembled header).
    pub id: u32,
}

impl PacketMeta {
    /// True when nothing is set (a packet fresh from a port).
    #[inline]
    pub fn is_empty(&self) -> bool {
        *self == PacketMeta::default()
    }
}

/// One frame and its metadata.
pub struct Packet {
    buf: Vec<u8>,
    head: usize,
    len: usize,
    /// Port the packet came in on.
    pub in_port: OfPort,
    /// L4 checksum state.
    pub csum: Csum,
    /// GSO state, if this is a super-frame.
    pub gso: Option<Gso>,
    /// Tunnel, conntrack and recirculation metadata.
    pub md: PacketMeta,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len)
            .field("in_port", &self.in_port)
            .field("csum", &self.csum)
            .field("gso", &self.gso)
            .field("md", &self.md)
            .finish()
    }
}

impl Default for Packet {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Packet {
    /// A copy of the frame and its metadata in a buffer sized for the
    /// frame (at least a standard frame's, plus [`HEADROOM`]). Ports that
    /// receive straight into packets size their buffers for 64 KiB GSO
    /// frames; copying the whole buffer made every copy of a 64-byte
    /// frame (an output needing its checksum completed, a modified
    /// packet sent twice) move 64 KiB.
    fn clone(&self) -> Self {
        let mut p = Packet::with_capacity(self.len.max(2048));
        p.set_frame(self.data());
        p.in_port = self.in_port;
        p.csum = self.csum;
        p.gso = self.gso;
        p.md = self.md;
        p
    }
}

impl Packet {
    /// An empty packet with room for a standard frame.
    pub fn new() -> Self {
        Self::with_capacity(2048)
    }

    /// An empty packet whose buffer holds `capacity` frame bytes without
    /// growing (plus [`HEADROOM`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Packet {
            buf: vec![0; HEADROOM + capacity],
            head: HEADROOM,
            len: 0,
            in_port: 0,
            csum: Csum::None,
            gso: None,
            md: PacketMeta::default(),
        }
    }

    /// A packet holding a copy of `frame`.
    pub fn from_slice(frame: &[u8]) -> Self {
        let mut p = Self::with_capacity(frame.len().max(64));
        p.set_frame(frame);
        p
    }

    /// Forget the frame and metadata, keep the buffer.
    pub fn reset(&mut self) {
        self.head = HEADROOM.min(self.buf.len());
        self.len = 0;
        self.in_port = 0;
        self.csum = Csum::None;
        self.gso = None;
        self.md = PacketMeta::default();
    }

    /// Frame length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The frame, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Make the frame `len` bytes long (new bytes are zero or stale) and
    /// return it writable, for ports that read straight into the buffer.
    /// Lengths above [`MAX_FRAME`] are clamped.
    pub fn resize(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(MAX_FRAME);
        if self.head + len > self.buf.len() {
            self.buf.resize(self.head + len, 0);
        }
        self.len = len;
        self.data_mut()
    }

    /// Replace the frame with a copy of `frame` (clamped to [`MAX_FRAME`]).
    pub fn set_frame(&mut self, frame: &[u8]) {
        let n = frame.len().min(MAX_FRAME);
        self.head = HEADROOM.min(self.buf.len());
        self.resize(n).copy_from_slice(&frame[..n]);
    }

    /// Append bytes to the frame; returns false (and appends nothing) if
    /// the frame would exceed [`MAX_FRAME`].
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        let old = self.len;
        let Some(new) = old.checked_add(bytes.len()).filter(|n| *n <= MAX_FRAME) else {
            return false;
        };
        self.resize(new);
        self.buf[self.head + old..self.head + new].copy_from_slice(bytes);
        true
    }

    /// Insert `n` bytes in front of the frame (from the headroom when there
    /// is room, else by moving the frame) and return the new front.
    pub fn push_front(&mut self, n: usize) -> &mut [u8] {
        if self.head < n {
            let grow = HEADROOM + n;
            let mut buf = vec![0; grow + self.len.max(1)];
            buf[grow..grow + self.len].copy_from_slice(self.data());
            self.buf = buf;
            self.head = grow;
        }
        self.head -= n;
        self.len += n;
        if let Csum::Partial { start, offset } = self.csum {
            self.csum = Csum::Partial {
                start: start.saturating_add(n as u16),
                offset,
            };
        }
        &mut self.buf[self.head..self.head + n]
    }

    /// Remove `n` bytes from the front of the frame (at most its length).
    pub fn pull_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head += n;
        self.len -= n;
        if let Csum::Partial { start, offset } = self.csum {
            self.csum = Csum::Partial {
                start: start.saturating_sub(n as u16),
                offset,
            };
        }
    }

    /// Copy frame and metadata from `other`, reusing this buffer.
    pub fn clone_from_packet(&mut self, other: &Packet) {
        self.set_frame(other.data());
        self.in_port = other.in_port;
        self.csum = other.csum;
        self.gso = other.gso;
        self.md = other.md;
    }
}

/// Up to [`MAX_BURST`] packets, reused from batch to batch.
#[derive(Debug)]
pub struct PacketBatch {
    pkts: Vec<Packet>,
    len: usize,
}

impl Default for PacketBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBatch {
    /// An empty batch with [`MAX_BURST`] preallocated buffers.
    pub fn new() -> Self {
        PacketBatch {
            pkts: (0..MAX_BURST).map(|_| Packet::new()).collect(),
            len: 0,
        }
    }

    /// Number of packets in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch holds [`MAX_BURST`] packets.
    pub fn is_full(&self) -> bool {
        self.len >= MAX_BURST
    }

    /// Empty the batch (buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Take the next free buffer, reset, and count it as part of the batch.
    /// Returns `None` when the batch is full. A port that then fails to fill
    /// it calls [`PacketBatch::pop`].
    pub fn push_slot(&mut self) -> Option<&mut Packet> {
        if self.is_full() {
            return None;
        }
        let p = &mut self.pkts[self.len];
        p.reset();
        self.len += 1;
        Some(p)
    }

    /// Drop the last packet of the batch.
    pub fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// Keep only the packets for which `keep` is true, in order (their
    /// buffers move; dropped ones are reused); returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(&Packet) -> bool) -> usize {
        let mut kept = 0;
        for i in 0..self.len {
            if keep(&self.pkts[i]) {
                self.pkts.swap(kept, i);
                kept += 1;
            }
        }
        let dropped = self.len - kept;
        self.len = kept;
        dropped
    }

    /// The packets.
    pub fn packets(&self) -> &[Packet] {
        &self.pkts[..self.len]
    }

    /// The packets, writable.
    pub fn packets_mut(&mut self) -> &mut [Packet] {
        &mut self.pkts[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_copies_the_frame_not_the_receive_buffer() {
        let mut p = Packet::new();
        p.resize(MAX_FRAME);
        p.set_frame(&[7; 60]);
        p.pull_front(4);
        p.in_port = 3;
        p.csum = Csum::Partial {
            start: 30,
            offset: 6,
        };
        p.gso = Some(Gso {
            kind: GsoType::TcpV4,
            mss: 1448,
        });
        p.md.tunnel.id = 42;
        let c = p.clone();
        assert_eq!(c.data(), p.data());
        assert_eq!(
            (c.in_port, c.csum, c.gso, c.md),
            (p.in_port, p.csum, p.gso, p.md)
        );
        assert_eq!(c.buf.len(), HEADROOM + 2048);
        let big = Packet::from_slice(&[1; 9000]);
        assert_eq!(big.clone().data(), big.data());
    }

    #[test]
    fn retain_keeps_order_and_counts_the_dropped() {
        let mut b = PacketBatch::new();
        for n in [20usize, 5, 30, 0, 40] {
            b.push_slot().unwrap().set_frame(&vec![1; n]);
        }
        assert_eq!(b.retain(|p| p.len() >= 14), 2);
        let lens: Vec<usize> = b.packets().iter().map(Packet::len).collect();
        assert_eq!(lens, [20, 30, 40]);
    }

    #[test]
    fn push_and_pull_front_keep_partial_csum_in_place() {
        let mut p = Packet::from_slice(&[1, 2, 3, 4]);
        p.csum = Csum::Partial {
            start: 34,
            offset: 16,
        };
        p.push_front(4).copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(p.data(), &[9, 9, 9, 9, 1, 2, 3, 4]);
        assert_eq!(
            p.csum,
            Csum::Partial {
                start: 38,
                offset: 16
            }
        );
        p.pull_front(4);
        assert_eq!(p.data(), &[1, 2, 3, 4]);
    }

    #[test]
    fn push_front_beyond_headroom_moves_frame() {
        let mut p = Packet::from_slice(&[7; 10]);
        p.push_front(HEADROOM + 8);
        assert_eq!(p.len(), 10 + HEADROOM + 8);
        assert_eq!(&p.data()[HEADROOM + 8..], &[7; 10]);
    }

    #[test]
    fn batch_reuses_buffers() {
        let mut b = PacketBatch::new();
        for _ in 0..MAX_BURST {
            b.push_slot().unwrap().set_frame(&[1; 60]);
        }
        assert!(b.push_slot().is_none());
        b.clear();
        assert!(b.push_slot().unwrap().is_empty());
    }
}
