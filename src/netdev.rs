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
//! not read back (`PACKET_IGNORE_OUTGOING`, Linux 4.20). Frames move in
//! bursts of up to `MAX_BURST`: one `recvmmsg`/`sendmmsg` system call per
//! burst, sent frames are not copied (header and frame are two iovecs);
//! received frames still are, by the kernel, into 64 KiB packet buffers.
//! mmap'ed `TPACKET_V3` rings are the next step.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use xennet_datapath::buffer::{Csum, Gso, GsoType, MAX_BURST};
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

/// How frames cross the file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    /// An `AF_PACKET` socket bound to the device: `recvmmsg`/`sendmmsg`.
    Socket,
    /// The tap's own fd (OVS `internal` and `tap` interfaces): one
    /// `read`/`writev` per frame. Frames written go *into* the host's
    /// stack, frames read are what the host sent out of the device.
    Tap,
}

/// A Linux device as a port.
#[derive(Debug)]
pub struct Netdev {
    fd: OwnedFd,
    io: Io,
    /// The tap device this port made (dropped with the port).
    _tap: Option<crate::tap::TapDevice>,
    name: String,
    stats: PortStats,
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
            io: Io::Socket,
            _tap: None,
            name: name.to_string(),
            stats: PortStats::default(),
            drop_log: LogLimit::default(),
        })
    }

    /// Create (or attach to an existing) tap device `name` and use it as
    /// a port, as OVS's netdev-linux does for Interface types `internal`
    /// and `tap` in the userspace datapath: the switch writes its output
    /// into the host's stack and reads what the host sends out of the
    /// device. The device offers checksum and TCP segmentation offload
    /// (frames arrive as [`Csum::Partial`] and [`Gso`] packets), is
    /// persistent while the port lives and removed when it is dropped
    /// (OVS: `TUNSETPERSIST` 1 at construction, 0 at destruction). Its
    /// MAC address is set to `mac` when given.
    ///
    /// # Errors
    /// When `/dev/net/tun` cannot be opened (needs `CAP_NET_ADMIN`), the
    /// name is taken by another kind of device or another process holds
    /// the tap.
    pub fn open_tap(name: &str, mac: Option<[u8; 6]>) -> io::Result<Netdev> {
        let tap = crate::tap::TapDevice::create(name, crate::tap::TAP_OFFLOADS_ALL, true)?;
        if let Some(mac) = mac {
            if let Err(e) = crate::tap::set_mac(tap.name(), mac) {
                tracing::warn!("{name}: setting MAC address: {e}");
            }
        }
        let fd = tap.fd().try_clone_to_owned()?;
        Ok(Netdev {
            fd,
            io: Io::Tap,
            name: tap.name().to_owned(),
            _tap: Some(tap),
            stats: PortStats::default(),
            drop_log: LogLimit::default(),
        })
    }

    /// The tap's `recv`: one `read` per frame into the batch's free slots.
    fn recv_tap(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        while let Some(p) = batch.push_slot() {
            let buf = p.resize(MAX_FRAME);
            // SAFETY: `buf` is a writable buffer of the length given.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 {
                batch.pop();
                let e = io::Error::last_os_error();
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    self.stats.rx_errors += 1;
                    if self.drop_log.ready() {
                        tracing::warn!("{}: read: {e}", self.name);
                    }
                }
                return RecvStatus::Idle;
            }
            let n = r as usize;
            let last = batch.packets().len() - 1;
            let pkt = &mut batch.packets_mut()[last];
            // A tap never truncates: a frame larger than the buffer is
            // refused by the read, which reports EINVAL (counted above).
            if !self.finish_rx(pkt, n, false) {
                batch.pop();
            }
        }
        RecvStatus::More
    }

    /// The tap's `send`: one `writev` (header, frame) per frame. A tap
    /// that is down refuses frames (EIO): they count as `tx_dropped`, as
    /// in OVS.
    fn send_tap(&mut self, pkts: &[&Packet]) {
        for p in pkts {
            if write_tap(self.fd.as_fd(), p) {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += p.len() as u64;
            } else {
                self.stats.tx_dropped += 1;
            }
        }
    }

    /// Finish a frame of `n` bytes (virtio-net header included, as the
    /// kernel reported it with MSG_TRUNC, so possibly more than was
    /// stored) that recvmmsg put at the start of `pkt`: strip and apply
    /// the header. Returns false (and counts a drop) for frames we do not
    /// take.
    fn finish_rx(&mut self, pkt: &mut Packet, n: usize, truncated: bool) -> bool {
        // The packet buffer may hold less than asked for (it clamps to the
        // datapath's largest frame): what counts is what was stored.
        let offloads = if truncated || n > pkt.len() {
            Err("frame larger than the packet buffer")
        } else {
            rx_offloads(&pkt.data()[..n])
        };
        let (csum, gso) = match offloads {
            Ok(o) => o,
            Err(why) => {
                self.stats.rx_dropped += 1;
                self.warn_rate_limited(why, n);
                return false;
            }
        };
        pkt.resize(n);
        pkt.pull_front(VNET_HDR_LEN);
        pkt.csum = csum;
        pkt.gso = gso;
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += (n - VNET_HDR_LEN) as u64;
        true
    }
}

impl Netdev {
    /// Send up to [`MAX_BURST`] frames with one `sendmmsg`, each as two
    /// iovecs (its virtio-net header, then the frame, not copied).
    fn send_burst(&mut self, pkts: &[&Packet]) {
        let mut hdrs = [[0u8; VNET_HDR_LEN]; MAX_BURST];
        // SAFETY: iovec and mmsghdr are plain data; zero is a valid value.
        let mut iov: [[libc::iovec; 2]; MAX_BURST] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BURST] = unsafe { std::mem::zeroed() };
        let mut lens = [0usize; MAX_BURST];
        let mut m = 0;
        for p in pkts.iter().take(MAX_BURST) {
            let frame = p.data();
            if VNET_HDR_LEN + frame.len() > MAX_FRAME {
                self.stats.tx_dropped += 1;
                continue;
            }
            hdrs[m] = tx_vnet_hdr(p);
            let h = &mut hdrs[m];
            lens[m] = frame.len();
            iov[m][0].iov_base = h.as_mut_ptr().cast();
            iov[m][0].iov_len = VNET_HDR_LEN;
            // The kernel only reads from a sent iovec.
            iov[m][1].iov_base = frame.as_ptr().cast_mut().cast();
            iov[m][1].iov_len = frame.len();
            m += 1;
        }
        for i in 0..m {
            msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
            msgs[i].msg_hdr.msg_iovlen = 2;
        }
        let mut off = 0;
        while off < m {
            // SAFETY: `msgs[off..m]` point at iovecs over `hdrs` and the
            // frames of `pkts`, all alive across the call.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs[off..].as_mut_ptr(),
                    (m - off) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                let e = io::Error::last_os_error();
                if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS)) {
                    // The device queue is full: the rest would fail too.
                    self.stats.tx_dropped += (m - off) as u64;
                    return;
                }
                // This frame was refused: drop it, go on with the next.
                self.stats.tx_dropped += 1;
                off += 1;
                continue;
            }
            let r = r as usize;
            for &len in &lens[off..off + r] {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += len as u64;
            }
            off += r;
        }
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

/// The `virtio_net_hdr` for sending `p` (checksum offset, GSO type and
/// segment size, `hdr_len` up to the end of the TCP header), little-endian.
pub(crate) fn tx_vnet_hdr(p: &Packet) -> [u8; VNET_HDR_LEN] {
    let frame = p.data();
    let mut h = [0u8; VNET_HDR_LEN];
    let mut hdr = VnetHdr::default();
    if let Csum::Partial { start, offset } = p.csum {
        hdr.flags = VNET_F_NEEDS_CSUM;
        hdr.csum_start = start;
        hdr.csum_offset = offset;
    }
    hdr.emit(&mut h[..]);
    if let Some(g) = p.gso {
        let l4 = xennet_datapath::csum::locate_l4(frame).map(|loc| loc.l4);
        let cwr = l4
            .and_then(|l4| frame.get(l4 + 13))
            .is_some_and(|f| f & 0x80 != 0);
        h[1] = match g.kind {
            GsoType::TcpV4 => VNET_GSO_TCPV4,
            GsoType::TcpV6 => VNET_GSO_TCPV6,
        } | if cwr { VNET_GSO_ECN } else { 0 };
        let hdr_len = l4.map_or(0, |l4| l4 + tcp_header_len(frame, l4));
        h[2..4].copy_from_slice(&(hdr_len as u16).to_le_bytes());
        h[4..6].copy_from_slice(&g.mss.to_le_bytes());
    }
    h
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
        if self.io == Io::Tap {
            return self.recv_tap(batch);
        }
        let start = batch.len();
        while batch.push_slot().is_some() {}
        let slots = &mut batch.packets_mut()[start..];
        let want = slots.len();
        if want == 0 {
            return RecvStatus::More;
        }
        // SAFETY: iovec and mmsghdr are plain data; zero is a valid value.
        let mut iov: [libc::iovec; MAX_BURST] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BURST] = unsafe { std::mem::zeroed() };
        for (i, p) in slots.iter_mut().enumerate() {
            let buf = p.resize(MAX_FRAME);
            iov[i].iov_base = buf.as_mut_ptr().cast();
            iov[i].iov_len = buf.len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..want]` each point at one iovec describing a
        // writable buffer of a packet in `slots`, all alive and not
        // otherwise borrowed across the call.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        let got = if r < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                self.stats.rx_errors += 1;
                tracing::warn!("{}: recvmmsg: {e}", self.name);
            }
            0
        } else {
            r as usize
        };
        // Keep the frames we take at the front of the new slots.
        let mut kept = 0;
        for i in 0..got {
            let n = msgs[i].msg_len as usize;
            let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            if self.finish_rx(&mut slots[i], n, truncated) {
                slots.swap(kept, i);
                kept += 1;
            }
        }
        for _ in kept..want {
            batch.pop();
        }
        if got == want {
            RecvStatus::More
        } else {
            RecvStatus::Idle
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        if self.io == Io::Tap {
            return self.send_tap(pkts);
        }
        for chunk in pkts.chunks(MAX_BURST) {
            self.send_burst(chunk);
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

/// Write `p` to a tap opened with `IFF_VNET_HDR`: its virtio-net header
/// (offloads as [`tx_vnet_hdr`] says) and the frame in one `writev`.
/// False if the kernel refused it (a tap that is down: EIO).
pub(crate) fn write_tap(fd: std::os::fd::BorrowedFd<'_>, p: &Packet) -> bool {
    let hdr = tx_vnet_hdr(p);
    let iov = [std::io::IoSlice::new(&hdr), std::io::IoSlice::new(p.data())];
    nix::sys::uio::writev(fd, &iov).is_ok()
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
            io: Io::Socket,
            _tap: None,
            name: "test".into(),
            stats: PortStats::default(),
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
        let mut batch = PacketBatch::new();
        peer.send(&vec![0u8; cap + 1]).unwrap();
        // One that fits is taken whole, without its virtio-net header.
        peer.send(&vec![0u8; cap]).unwrap();
        assert_eq!(dev.recv(&mut batch), RecvStatus::Idle);
        assert_eq!(dev.stats.rx_dropped, 1);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.packets()[0].data().len(), cap - VNET_HDR_LEN);
        assert_eq!(dev.stats.rx_packets, 1);
        // Nothing more to read.
        batch.clear();
        assert_eq!(dev.recv(&mut batch), RecvStatus::Idle);
        assert!(batch.is_empty());
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
