//! Linux network devices as switch ports (OVS `Interface:type` ""):
//! an `AF_PACKET` socket bound to the device, with `PACKET_VNET_HDR` so
//! that checksum-partial and GSO frames from veth and tap devices are
//! carried as they are (each frame is preceded by a `struct
//! virtio_net_hdr`, `linux/virtio_net.h`). Open vSwitch's userspace
//! datapath without userspace TSO forwards such frames unfixed and TCP
//! stalls (PEERS.md §3); here they become [`Csum::Partial`] and [`Gso`]
//! packets that the datapath finishes only for ports that need it.
//!
//! The device is put in promiscuous mode and our own transmissions are
//! not read back (`PACKET_IGNORE_OUTGOING`, Linux 4.20). One `recv`/`send`
//! system call per frame: mmap'ed `TPACKET_V3` rings are the next step.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use xennet_datapath::buffer::{Csum, Gso, GsoType};
use xennet_datapath::{Packet, PacketBatch, Port, PortFeatures, PortStats, RecvStatus};

use crate::ratelimit::LogLimit;
use crate::tap::{VnetHdr, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HDR_LEN};

/// `PACKET_VNET_HDR` (linux/if_packet.h).
const PACKET_VNET_HDR: libc::c_int = 15;
/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
const VNET_GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
const VNET_GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`: the TCP segments carry CWR (Linux sets it
/// with `SKB_GSO_TCP_ECN` when a GSO frame has CWR set).
const VNET_GSO_ECN: u8 = 0x80;
/// Largest frame plus virtio-net header given to the kernel, in bytes: the
/// datapath's largest frame (a 64 KiB GSO frame plus a VLAN tag), so that
/// every frame the datapath hands us fits. A received frame must fit in
/// the packet buffer, header included (see `recv_one`).
const MAX_FRAME: usize = xennet_datapath::buffer::MAX_FRAME + VNET_HDR_LEN;

/// A Linux device as a port.
#[derive(Debug)]
pub struct Netdev {
    fd: OwnedFd,
    name: String,
    stats: PortStats,
    tx_buf: Vec<u8>,
    /// Rate limit of the log lines about dropped frames.
    drop_log: LogLimit,
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `val` lives across the call and its size is passed; the fd
    // is a valid socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Netdev {
    /// Open device `name` (which must exist in this network namespace).
    ///
    /// # Errors
    /// When the device does not exist or the socket cannot be set up
    /// (needs `CAP_NET_RAW`).
    pub fn open(name: &str) -> io::Result<Netdev> {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a plain C call with a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no network device {name}"),
            ));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) has no memory arguments.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
        // Older kernels lack it; then we also read our own output, which
        // MAC learning tolerates (it arrives on the port it left by).
        if let Err(e) = setsockopt_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) {
            tracing::warn!("{name}: PACKET_IGNORE_OUTGOING: {e}");
        }
        // SAFETY: sockaddr_ll is plain data; zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        // SAFETY: `mreq` lives across the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netdev {
            fd,
            name: name.to_string(),
            stats: PortStats::default(),
            tx_buf: vec![0; MAX_FRAME],
            drop_log: LogLimit::default(),
        })
    }

    fn recv_one(&mut self, pkt: &mut Packet) -> io::Result<bool> {
        // The packet buffer may hold less than asked for (it clamps to the
        // datapath's largest frame): what counts is what we hand the kernel.
        let buf = pkt.resize(MAX_FRAME);
        let cap = buf.len();
        // SAFETY: `buf` is a writable slice of `cap` bytes, and the kernel
        // writes at most `cap` bytes into it (MSG_TRUNC only changes the
        // length returned).
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                cap,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
                _ => Err(e),
            };
        }
        // With MSG_TRUNC, `n` is the frame's real length, which may exceed
        // what was copied: such a frame is incomplete and dropped.
        let n = n as usize;
        let offloads = if n > cap {
            Err("frame larger than the packet buffer")
        } else {
            rx_offloads(&buf[..n])
        };
        let (csum, gso) = match offloads {
            Ok(o) => o,
            Err(why) => {
                self.stats.rx_dropped += 1;
                self.warn_rate_limited(why, n);
                pkt.resize(0);
                return Ok(true);
            }
        };
        pkt.resize(n);
        pkt.pull_front(VNET_HDR_LEN);
        pkt.csum = csum;
        pkt.gso = gso;
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += (n - VNET_HDR_LEN) as u64;
        Ok(true)
    }

    /// Log a dropped frame, at most once a second per device.
    fn warn_rate_limited(&mut self, why: &str, len: usize) {
        if self.drop_log.ready() {
            tracing::warn!(
                "{}: dropped a received frame of {len} bytes: {why} ({} dropped so far)",
                self.name,
                self.stats.rx_dropped
            );
        }
    }
}

/// The offloads a received `virtio_net_hdr` (`linux/virtio_net.h`, in the
/// host's byte order for `AF_PACKET`, little-endian on every host xennet
/// supports) and frame of `rx.len()` bytes (header included) describe, or
/// why the frame is dropped: shorter than the header plus an Ethernet
/// header, a checksum offset outside the frame, or a GSO type we do not
/// segment (UDP fragmentation offload, UDP L4). The ECN bit of `gso_type`
/// needs nothing here: segmentation clears CWR after the first segment
/// either way.
fn rx_offloads(rx: &[u8]) -> Result<(Csum, Option<Gso>), &'static str> {
    if rx.len() < VNET_HDR_LEN + 14 {
        return Err("shorter than an Ethernet header");
    }
    let hdr = VnetHdr::parse(&rx[..VNET_HDR_LEN]);
    let frame_len = rx.len() - VNET_HDR_LEN;
    let gso_size = u16::from_le_bytes([rx[4], rx[5]]);
    let csum = if hdr.flags & VNET_F_NEEDS_CSUM != 0 {
        // The 16-bit checksum field must lie within the frame.
        let end = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset) + 2;
        if end > frame_len {
            return Err("checksum offset beyond the frame");
        }
        Csum::Partial {
            start: hdr.csum_start,
            offset: hdr.csum_offset,
        }
    } else if hdr.flags & VNET_F_DATA_VALID != 0 {
        Csum::Validated
    } else {
        Csum::None
    };
    let gso = match hdr.gso_type & !VNET_GSO_ECN {
        VNET_GSO_NONE => None,
        VNET_GSO_TCPV4 if gso_size > 0 => Some(Gso {
            kind: GsoType::TcpV4,
            mss: gso_size,
        }),
        VNET_GSO_TCPV6 if gso_size > 0 => Some(Gso {
            kind: GsoType::TcpV6,
            mss: gso_size,
        }),
        _ => return Err("unsupported GSO type"),
    };
    Ok((csum, gso))
}

impl Port for Netdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        while !batch.is_full() {
            let Some(pkt) = batch.push_slot() else { break };
            // Reborrow dance: take the packet out of the batch slot while
            // receiving into it.
            let mut p = std::mem::take(pkt);
            let got = self.recv_one(&mut p);
            let empty = p.is_empty();
            *pkt = p;
            match got {
                Ok(true) if !empty => {}
                Ok(true) => {
                    batch.pop();
                }
                Ok(false) => {
                    batch.pop();
                    return RecvStatus::Idle;
                }
                Err(e) => {
                    batch.pop();
                    self.stats.rx_errors += 1;
                    tracing::warn!("{}: recv: {e}", self.name);
                    return RecvStatus::Idle;
                }
            }
        }
        RecvStatus::More
    }

    fn send(&mut self, pkts: &[&Packet]) {
        for p in pkts {
            let frame = p.data();
            let n = VNET_HDR_LEN + frame.len();
            if n > self.tx_buf.len() {
                self.stats.tx_dropped += 1;
                continue;
            }
            let mut hdr = VnetHdr::default();
            if let Csum::Partial { start, offset } = p.csum {
                hdr.flags = VNET_F_NEEDS_CSUM;
                hdr.csum_start = start;
                hdr.csum_offset = offset;
            }
            hdr.emit(&mut self.tx_buf[..VNET_HDR_LEN]);
            if let Some(g) = p.gso {
                let l4 = xennet_datapath::csum::locate_l4(frame).map(|loc| loc.l4);
                let cwr = l4
                    .and_then(|l4| frame.get(l4 + 13))
                    .is_some_and(|f| f & 0x80 != 0);
                self.tx_buf[1] = match g.kind {
                    GsoType::TcpV4 => VNET_GSO_TCPV4,
                    GsoType::TcpV6 => VNET_GSO_TCPV6,
                } | if cwr { VNET_GSO_ECN } else { 0 };
                let hdr_len = l4.map_or(0, |l4| l4 + tcp_header_len(frame, l4));
                self.tx_buf[2..4].copy_from_slice(&(hdr_len as u16).to_le_bytes());
                self.tx_buf[4..6].copy_from_slice(&g.mss.to_le_bytes());
            }
            self.tx_buf[VNET_HDR_LEN..n].copy_from_slice(frame);
            // SAFETY: `tx_buf[..n]` is initialised and readable.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    self.tx_buf.as_ptr().cast(),
                    n,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                self.stats.tx_dropped += 1;
            } else {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += frame.len() as u64;
            }
        }
    }

    fn features(&self) -> PortFeatures {
        PortFeatures {
            csum_partial: true,
            gso: true,
        }
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// Length of the TCP header at `l4` (data offset field), 20 if unreadable.
fn tcp_header_len(frame: &[u8], l4: usize) -> usize {
    frame.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx(flags: u8, gso_type: u8, gso_size: u16, start: u16, offset: u16, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; VNET_HDR_LEN + len];
        b[0] = flags;
        b[1] = gso_type;
        b[4..6].copy_from_slice(&gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&start.to_le_bytes());
        b[8..10].copy_from_slice(&offset.to_le_bytes());
        b
    }

    #[test]
    fn received_virtio_headers() {
        // A TCPv4 GSO frame with the checksum field at 34 + 16.
        let (csum, gso) = rx_offloads(&rx(VNET_F_NEEDS_CSUM, 1, 1448, 34, 16, 100)).unwrap();
        assert_eq!(
            csum,
            Csum::Partial {
                start: 34,
                offset: 16
            }
        );
        assert_eq!(gso.map(|g| (g.kind, g.mss)), Some((GsoType::TcpV4, 1448)));
        // ECN is a flag on the TCP types.
        let (_, gso) = rx_offloads(&rx(0, 4 | VNET_GSO_ECN, 1428, 0, 0, 100)).unwrap();
        assert_eq!(gso.map(|g| g.kind), Some(GsoType::TcpV6));
        assert_eq!(
            rx_offloads(&rx(VNET_F_DATA_VALID, 0, 0, 0, 0, 60))
                .unwrap()
                .0,
            Csum::Validated
        );
        // UDP fragmentation offload, a TCP GSO without a segment size.
        assert!(rx_offloads(&rx(0, 3, 1400, 0, 0, 100)).is_err());
        assert!(rx_offloads(&rx(0, 1, 0, 0, 0, 100)).is_err());
        // The checksum field must lie inside the frame (98 + 2 = 100 fits).
        assert!(rx_offloads(&rx(VNET_F_NEEDS_CSUM, 0, 0, 90, 8, 100)).is_ok());
        assert!(rx_offloads(&rx(VNET_F_NEEDS_CSUM, 0, 0, 90, 9, 100)).is_err());
        assert!(rx_offloads(&rx(VNET_F_NEEDS_CSUM, 0, 0, u16::MAX, u16::MAX, 100)).is_err());
        // Runts.
        assert!(rx_offloads(&rx(0, 0, 0, 0, 0, 13)).is_err());
        assert!(rx_offloads(&[0u8; 3]).is_err());
    }

    /// A Netdev reading datagrams from the other end of a socket pair
    /// (MSG_TRUNC reports real lengths on Unix datagram sockets too).
    fn pair() -> (Netdev, std::os::unix::net::UnixDatagram) {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let dev = Netdev {
            fd: OwnedFd::from(ours),
            name: "test".into(),
            stats: PortStats::default(),
            tx_buf: vec![0; MAX_FRAME],
            drop_log: LogLimit::default(),
        };
        (dev, theirs)
    }

    #[test]
    fn a_frame_larger_than_the_packet_buffer_is_dropped() {
        let (mut dev, peer) = pair();
        // The packet buffer clamps to the datapath's largest frame, which
        // is smaller than this port's MAX_FRAME (it adds the virtio-net
        // header): a frame whose real length lies between them used to be
        // taken, cut short.
        let cap = xennet_datapath::buffer::MAX_FRAME;
        assert!(cap < MAX_FRAME);
        let mut p = Packet::default();
        peer.send(&vec![0u8; cap + 1]).unwrap();
        assert!(dev.recv_one(&mut p).unwrap());
        assert!(p.is_empty());
        assert_eq!(dev.stats.rx_dropped, 1);
        // One that fits is taken whole, without its virtio-net header.
        peer.send(&vec![0u8; cap]).unwrap();
        assert!(dev.recv_one(&mut p).unwrap());
        assert_eq!(p.data().len(), cap - VNET_HDR_LEN);
        assert_eq!(dev.stats.rx_packets, 1);
        // Nothing more to read.
        assert!(!dev.recv_one(&mut p).unwrap());
    }

    #[test]
    fn the_largest_datapath_frame_is_sent() {
        let (mut dev, peer) = pair();
        let mut p = Packet::default();
        p.resize(xennet_datapath::buffer::MAX_FRAME);
        dev.send(&[&p]);
        assert_eq!(dev.stats.tx_dropped, 0);
        assert_eq!(dev.stats.tx_packets, 1);
        let mut b = vec![0u8; MAX_FRAME + 1];
        assert_eq!(peer.recv(&mut b).unwrap(), MAX_FRAME);
    }
}
