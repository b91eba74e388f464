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
//! not read back (`PACKET_IGNORE_OUTGOING`, Linux 4.20).
//!
//! Frames are received through an mmap'ed `TPACKET_V2` ring by default
//! (Documentation/networking/packet_mmap.rst; `tpacket_rcv` in
//! net/packet/af_packet.c): `FRAMES` slots of `FRAME_SIZE` (2 KiB; 2 MiB
//! per port, pinned) into which the kernel writes each frame with its
//! virtio-net header right before the Ethernet header (at `tp_mac` − 10)
//! and hands the slot over at once (`TP_STATUS_USER`, and the socket polls
//! readable). `recv` copies frames out of the slots into the batch's packet
//! buffers without a system call and gives each slot back as soon as it is
//! read. A frame larger than a slot (a GSO super-frame, a jumbo frame) is
//! queued whole on the socket (`PACKET_COPY_THRESH`); its slot, cut short,
//! says `TP_STATUS_COPY`, and `recv` reads the frame there with
//! `recvmsg`, in its place in the order of arrival. Compared with
//! `recvmmsg` for every frame (the path before), the ring takes a system
//! call, an `skb` clone, queueing and a copy per frame off the forwarding
//! thread: about a quarter less switch CPU per new connection through the
//! connection tracker (README, "Connection tracking"), with no added
//! latency. Every offset and length the kernel wrote is checked against
//! the slot (a malformed slot counts as one `rx_errors`).
//!
//! The socket's receive buffer, where frames larger than a slot wait (and
//! what `recvmmsg` reads where no ring can be set up), is raised to
//! `RCVBUF_BYTES` (2 MiB, which the kernel doubles to 4 MiB of `skb`
//! truesize; `SO_RCVBUFFORCE`, else `SO_RCVBUF` capped by
//! `net.core.rmem_max`, with one info line): the default 208 KiB
//! (`rmem_default`) holds only a few 64 KiB GSO frames, and when a burst
//! from a fast sender finds it full the kernel drops frames, which TCP
//! pays for in retransmits. It is a limit, not memory set aside. Frames
//! the kernel drops for want of room (in the ring or the buffer) count as
//! `rx_dropped` (`PACKET_STATISTICS`).
//!
//! Frames are sent on a second socket of the device that only sends
//! (`Netdev::tx`: nobody waits on it, so the kernel has no waiter to wake
//! as each sent frame is freed), through a `TPACKET_V2` transmit ring
//! (`TxRing`: `TX_FRAMES` slots of 2 KiB, 512 KiB per port, pinned; Linux
//! 6.1 or later): each frame is copied behind its virtio-net header into
//! the next free slot, and one `send` with no data has the kernel send
//! the burst (`tpacket_snd`), without the message headers, iovecs and
//! returned lengths `sendmmsg` copies per frame: about 15 % less switch
//! CPU per forwarded UDP 64 B packet through the connection tracker
//! (README, "Connection tracking"). A frame the kernel refuses stays in
//! the ring with the kernel's head on it and would block the frames
//! behind it, so it is made one the kernel skips (`PACKET_LOSS`, see
//! `TxRing`) and counted in `tx_dropped`. GSO super-frames (whose payload
//! the kernel would send from the slot's pages, see `Netdev::send`) and
//! frames larger than a slot or than the device's MTU (which the ring's
//! sending does not check) go out with `sendmmsg` on the receiving
//! socket, after the ring's frames before them; so do all frames where
//! the ring cannot be set up, on the sending socket (header and frame as
//! two iovecs, not copied).
//!
//! On request (`Interface` `options:rx-ring=true`, `rx_ring = true` in the
//! TOML configuration) a port receives through a `TPACKET_V3` ring of
//! blocks instead: `RING_BLOCKS` blocks of `RING_BLOCK_SIZE` bytes (2 MiB
//! per port, pinned) that the kernel fills with frames of any size and
//! hands over when a block is full or `RING_RETIRE_MS` after it was
//! opened; `recv` reads a block's frames as the frame ring's and the
//! socket's `POLLIN` says a block is ready. A frame the kernel had to cut
//! (larger than a block) counts as `rx_dropped`. Ring frames carry the
//! virtio-net header from Linux 4.6 on (commit 58d19b19cd99): on older
//! kernels (`/proc/sys/kernel/osrelease`), and where a ring cannot be set
//! up (no memory), the port warns once and receives with `recvmmsg`.
//! Either ring reads the socket's pending error (`SO_ERROR`, set when the
//! device goes down) when woken with nothing to read, since reading a ring
//! makes no system call that would take it.
//!
//! The block ring is not the default because of the retire timeout: a block
//! that does not fill is handed over only after 1 ms (the smallest
//! setting; on kernels whose retire timer still counts jiffies, before
//! the hrtimer conversion of about 6.18, one tick: up to 4 ms at HZ=250),
//! and that timer keeps firing while the port is idle, so a lone frame (a
//! ping, a TCP handshake, a request/response exchange) waits up to that
//! long at each ring port it enters. Measured through the switch between
//! two veths (README, "Performance"; 5 alternating runs each on a loaded
//! 2-core machine, with `recvmmsg` then the default): ping averaged
//! 0.10-0.34 ms with `recvmmsg` and the 2 MiB buffer, 0.7-1.9 ms with the
//! block ring; TCP retransmits per 10 s run were 0-49 with the 2 MiB
//! buffer, 35k-65k with the block ring and 744k-797k with the default
//! 208 KiB buffer (likely because a ring block of 256 KiB holds only three
//! 64 KiB GSO frames, so the ring queues about 24 of them, the 4 MiB
//! buffer about 60); TCP was 7.0-7.9 Gbit/s with the 2 MiB buffer, 5.4-6.8
//! with the block ring, and UDP 64 B rates overlapped. The block ring
//! costs the switch less CPU per frame at low rates, where it wakes the
//! switch once per block rather than once per frame (3.2-3.9 against
//! 4.3-5.7 us at a fixed 78k UDP 64 B frames/s): it suits ports that carry
//! much small-frame traffic and no latency-sensitive flows.
//!
//! The kernel takes the VLAN tag out of every frame before a packet
//! socket sees it (`__netif_receive_skb_core`) and reports it beside the
//! frame (`tp_vlan_tci`/`tp_vlan_tpid` in the ring's frame header, a
//! `PACKET_AUXDATA` control message with `recvmmsg`); both paths put it
//! back after the MAC addresses, as OVS's netdev-linux does, so trunk
//! ports see the frames as they were sent.
//!
//! AF_XDP is not used: its frames come without the socket buffer's
//! metadata. XDP programs can read a frame's receive hash, timestamp
//! and VLAN tag (the XDP RX metadata kfuncs, Documentation/networking/
//! xdp-rx-metadata.rst, as of Linux 6.15; the test machines run 6.18),
//! but not whether its checksum is partial (and where) or its GSO type
//! and segment size, and AF_XDP transmit metadata has no segmentation
//! offload; so TCP from a veth or tap would have to be segmented and
//! checksummed by its sender (offloads off), which is what this port
//! exists to avoid.

use std::cell::Cell;
use std::ffi::CString;
use std::io;
use std::mem::{offset_of, size_of};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use libc::{
    PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, PACKET_LOSS, PACKET_RX_RING, PACKET_STATISTICS,
    PACKET_TX_RING, PACKET_VERSION, PACKET_VNET_HDR, TP_STATUS_KERNEL, TP_STATUS_SENDING,
    TP_STATUS_SEND_REQUEST, TP_STATUS_USER, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID,
    TP_STATUS_WRONG_FORMAT,
};
use xennet_datapath::buffer::{Csum, Gso, GsoType, MAX_BURST};
use xennet_datapath::{Packet, PacketBatch, Port, PortFeatures, PortStats, RecvStatus};

use crate::ratelimit::LogLimit;
use crate::tap::{VnetHdr, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HDR_LEN};

/// Size of one receive ring block, in bytes: a 64 KiB GSO frame, its
/// `tpacket3_hdr`, `sockaddr_ll` and virtio-net header fit in one (the
/// kernel cuts a frame larger than a block, see `read_block`), three of
/// them in this size. A multiple of every page size Linux uses.
const RING_BLOCK_SIZE: usize = 256 * 1024;
/// Blocks in the receive ring: 2 MiB per port.
const RING_BLOCKS: usize = 8;
/// Receive buffer asked for a `recvmmsg` socket, in bytes (the kernel
/// doubles it for `skb` overhead: `sk_rcvbuf` limits the truesize of
/// queued frames, not their length). The ring's size, so that both
/// receive paths absorb bursts of about the same number of frame bytes
/// (a 64 KiB GSO frame has a truesize of about 66-70 KiB; the default
/// 208 KiB `rmem_default` holds three of them).
const RCVBUF_BYTES: usize = RING_BLOCKS * RING_BLOCK_SIZE;
/// `tp_frame_size` of the ring request: unused by `TPACKET_V3`'s
/// variable-sized frames, but the kernel checks that it divides the block
/// and is at least the frame header.
const RING_FRAME_SIZE: usize = 2048;
/// `tp_retire_blk_tov`, in ms: the kernel hands over a block that is not
/// full after this long, which bounds the latency the ring adds.
const RING_RETIRE_MS: u32 = 1;
/// `tp_frame_size` of the frame ring (`TPACKET_V2`, the default receive
/// path), in bytes: a frame of up to 1972 bytes (an MTU 1500 frame with
/// two VLAN tags) fits after the kernel's 76 bytes of `tpacket2_hdr`,
/// `sockaddr_ll` and virtio-net header; a larger one (a GSO or jumbo
/// frame) is queued whole on the socket instead (`PACKET_COPY_THRESH`).
const FRAME_SIZE: usize = 2048;
/// `tp_block_size` of the frame ring: 32 frames, a multiple of every page
/// size Linux uses (frames do not cross blocks; with whole frames in a
/// block, frame `i` is at `i * FRAME_SIZE`).
const FRAME_BLOCK_SIZE: usize = 64 * 1024;
/// Frames in the frame ring: 2 MiB per port, as the block ring.
const FRAMES: usize = RING_BLOCKS * RING_BLOCK_SIZE / FRAME_SIZE;
/// Slots in the transmit ring (`TPACKET_V2`, of [`FRAME_SIZE`] bytes in
/// blocks of [`FRAME_BLOCK_SIZE`]): 512 KiB per port. Each slot stays
/// taken until the kernel frees the frame sent from it, as the socket's
/// send buffer (212992 bytes by default, about 270 small frames) bounds
/// frames in flight with `sendmmsg`.
const TX_FRAMES: usize = 256;
/// Where the data of a transmit slot starts: `TPACKET2_HDRLEN` less the
/// `sockaddr_ll` the kernel counts in it (Linux `tpacket_parse_header`
/// without `PACKET_TX_HAS_OFF`), which is the aligned slot header, 32
/// bytes.
const TP2_TX_DATA: usize = TP2_HDR_LEN;
/// The largest frame a transmit slot takes after its virtio-net header;
/// larger ones are sent with `sendmmsg`.
const TX_SLOT_FRAME: usize = FRAME_SIZE - TP2_TX_DATA - VNET_HDR_LEN;
/// Ethernet header length: shorter frames are not put in the transmit
/// ring (the kernel refuses them, see `Netdev::send`).
const ETH_HLEN: usize = 14;
/// A VLAN tag's length, which a frame may add to the MTU.
const VLAN_HLEN: usize = 4;
/// Byte offsets in a frame ring slot (`struct tpacket2_hdr`, from libc's
/// layout of linux/if_packet.h): `tp_status` (`TP_STATUS_USER` while the
/// frame is ours, `TP_STATUS_COPY` when the whole frame waits on the
/// socket, the VLAN bits), `tp_len`, `tp_snaplen` (bytes stored),
/// `tp_mac` (the frame's offset from the slot), `tp_vlan_tci`,
/// `tp_vlan_tpid`.
const TP2_STATUS: usize = offset_of!(libc::tpacket2_hdr, tp_status);
/// See [`TP2_STATUS`].
const TP2_LEN: usize = offset_of!(libc::tpacket2_hdr, tp_len);
/// See [`TP2_STATUS`].
const TP2_SNAPLEN: usize = offset_of!(libc::tpacket2_hdr, tp_snaplen);
/// See [`TP2_STATUS`].
const TP2_MAC: usize = offset_of!(libc::tpacket2_hdr, tp_mac);
/// See [`TP2_STATUS`].
const TP2_VLAN_TCI: usize = offset_of!(libc::tpacket2_hdr, tp_vlan_tci);
/// See [`TP2_STATUS`].
const TP2_VLAN_TPID: usize = offset_of!(libc::tpacket2_hdr, tp_vlan_tpid);
/// The slot header's size, `TPACKET_ALIGN`ed (32).
const TP2_HDR_LEN: usize =
    size_of::<libc::tpacket2_hdr>().next_multiple_of(libc::TPACKET_ALIGNMENT);
/// Byte offsets in a ring block (`struct tpacket_block_desc`, whose
/// `struct tpacket_hdr_v1` holds `block_status`, `num_pkts` and
/// `offset_to_first_pkt`) and in a frame header (`struct tpacket3_hdr`:
/// `tp_next_offset`, 0 for the last frame of a block; `tp_snaplen`, bytes
/// stored; `tp_len`, bytes of the frame; `tp_status`; `tp_mac`, the
/// frame's offset from this header; `hv1.tp_vlan_tci`, a `u32` whose low
/// 16 bits are the TCI; `hv1.tp_vlan_tpid`), from libc's layouts of
/// linux/if_packet.h. Blocks are read as bytes (bounds-checked), not as
/// structs, since the kernel writes them.
const BLK_HDR: usize = offset_of!(libc::tpacket_block_desc, hdr);
/// See [`BLK_HDR`].
const BLK_STATUS: usize = BLK_HDR + offset_of!(libc::tpacket_hdr_v1, block_status);
/// See [`BLK_HDR`].
const BLK_NUM_PKTS: usize = BLK_HDR + offset_of!(libc::tpacket_hdr_v1, num_pkts);
/// See [`BLK_HDR`].
const BLK_FIRST: usize = BLK_HDR + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
/// See [`BLK_HDR`].
const TP3_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
/// See [`BLK_HDR`].
const TP3_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
/// See [`BLK_HDR`].
const TP3_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
/// See [`BLK_HDR`].
const TP3_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);
/// See [`BLK_HDR`].
const TP3_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);
/// See [`BLK_HDR`].
const TP3_VLAN_TCI: usize =
    offset_of!(libc::tpacket3_hdr, hv1) + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci);
/// See [`BLK_HDR`].
const TP3_VLAN_TPID: usize =
    offset_of!(libc::tpacket3_hdr, hv1) + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid);
/// The frame header's size, `TPACKET_ALIGN`ed (48).
const TP3_HDR_LEN: usize =
    size_of::<libc::tpacket3_hdr>().next_multiple_of(libc::TPACKET_ALIGNMENT);
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
const VNET_GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
const VNET_GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: UDP segmentation (whole datagrams of
/// `gso_size` payload bytes), Linux `SKB_GSO_UDP_L4`; what a veth hands
/// over from an application using the `UDP_SEGMENT` socket option
/// (Linux 6.2 and later describe it to packet sockets).
const VNET_GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: the TCP segments carry CWR (Linux sets it
/// with `SKB_GSO_TCP_ECN` when a GSO frame has CWR set).
const VNET_GSO_ECN: u8 = 0x80;
/// Largest frame plus virtio-net header given to the kernel, in bytes: the
/// datapath's largest frame (a 64 KiB GSO frame plus a VLAN tag), so that
/// every frame the datapath hands us fits. A received frame must fit in
/// the packet buffer, header included (see `recv_one`).
const MAX_FRAME: usize = xennet_datapath::buffer::MAX_FRAME + VNET_HDR_LEN;

/// The file descriptor frames cross, and what owns it.
#[derive(Debug)]
enum Backing {
    /// An `AF_PACKET` socket bound to the device: `recvmmsg`/`sendmmsg`
    /// (or the receive ring).
    Socket(OwnedFd),
    /// The tap this port made (OVS `internal` and `tap` interfaces),
    /// through its own fd: one `read`/`writev` per frame. Frames written go
    /// *into* the host's stack, frames read are what the host sent out of
    /// the device. Dropped with the port.
    Tap(crate::tap::TapDevice),
}

/// How a Linux device port receives frames (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxPath {
    /// A `TPACKET_V2` ring of 2 KiB frames, each handed over as soon as
    /// it is written; larger frames wait whole on the socket. The default.
    FrameRing,
    /// A `TPACKET_V3` ring of 256 KiB blocks, handed over when full or
    /// 1 ms after opening (`options:rx-ring=true`).
    BlockRing,
    /// `recvmmsg` from the socket's receive buffer: where no ring can be
    /// set up.
    Recvmmsg,
}

/// A receive ring mapped from an `AF_PACKET` socket
/// (Documentation/networking/packet_mmap.rst).
#[derive(Debug)]
enum RxRing {
    Frames(FrameRing),
    Blocks(BlockRing),
}

/// Set ring `req` (a `tpacket_req` for `TPACKET_V2`, a `tpacket_req3` for
/// `TPACKET_V3`) of `version` up on `fd` as `ring` (`PACKET_RX_RING` on a
/// packet socket not yet bound, `PACKET_TX_RING`), with `PACKET_VNET_HDR`
/// already set (the kernel refuses it once a ring exists), and map its
/// `len` bytes.
///
/// # Errors
/// What `PACKET_VERSION`, `ring` (e.g. ENOMEM, EINVAL on
/// kernels before 3.2) or `mmap` report.
fn map_ring<R>(
    fd: &OwnedFd,
    version: libc::tpacket_versions,
    ring: libc::c_int,
    req: &R,
    len: usize,
) -> io::Result<NonNull<u8>> {
    setsockopt_int(fd, libc::SOL_PACKET, PACKET_VERSION, version as libc::c_int)?;
    // SAFETY: `req` lives across the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            ring,
            (req as *const R).cast(),
            size_of::<R>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = NonZeroUsize::new(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a fresh shared mapping of the socket's ring, at an address
    // of the kernel's choosing; nothing else refers to it.
    let base = unsafe {
        nix::sys::mman::mmap(
            None,
            len,
            nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
            nix::sys::mman::MapFlags::MAP_SHARED,
            fd.as_fd(),
            0,
        )
    }
    .map_err(io::Error::from)?;
    Ok(base.cast())
}

/// A ring mapped from a packet socket: `count` units (frame slots or
/// blocks) of `unit` bytes each, each with its status word (`u32`,
/// 4-byte aligned) at byte `status_at` of the unit. Unmapped when dropped.
#[derive(Debug)]
struct RingMap {
    base: NonNull<u8>,
    unit: usize,
    count: usize,
    status_at: usize,
}

// SAFETY: the mapping belongs to this value alone (the kernel is the only
// other party); moving it to another thread moves that ownership.
unsafe impl Send for RingMap {}

impl RingMap {
    /// The status word of unit `i` (`i < self.count`).
    fn status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.count);
        // SAFETY: units are 16-byte aligned (TPACKET_ALIGNMENT; blocks
        // are page aligned) within the mapping and longer than their
        // header, so the word is in bounds and aligned. The kernel reads
        // and writes it concurrently, which is what an atomic is for.
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(i * self.unit + self.status_at)
                .cast::<AtomicU32>()
        }
    }

    /// Unit `i` as bytes.
    ///
    /// # Safety
    /// The unit must be ours (its status, loaded with `Acquire`, has
    /// `TP_STATUS_USER`) for as long as the slice lives: drop it before
    /// giving the unit back.
    unsafe fn bytes<'a>(&self, i: usize) -> &'a [u8] {
        debug_assert!(i < self.count);
        // SAFETY: in bounds of the mapping; the caller guarantees the
        // kernel does not write the unit while the slice lives.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(i * self.unit), self.unit) }
    }

    /// Unit `i` as bytes to write.
    ///
    /// # Safety
    /// The unit must be ours (a transmit slot whose status, loaded with
    /// `Acquire`, is `TP_STATUS_AVAILABLE`) for as long as the slice
    /// lives: drop it before handing the unit to the kernel.
    unsafe fn bytes_mut<'a>(&mut self, i: usize) -> &'a mut [u8] {
        debug_assert!(i < self.count);
        // SAFETY: in bounds of the mapping; the caller guarantees the
        // kernel does not touch the unit while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(i * self.unit), self.unit) }
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `map_ring` (or a test's), not used
        // after this; no slice of it outlives a `recv`.
        let _ = unsafe { nix::sys::mman::munmap(self.base.cast(), self.unit * self.count) };
    }
}

/// A `TPACKET_V2` receive ring: `frames` slots of `frame_size` bytes, each
/// owned by the kernel (which writes a frame into it) until it sets
/// `TP_STATUS_USER` in the slot's status, then by us until we set
/// `TP_STATUS_KERNEL` again. Slots are handed over in ring order, each as
/// soon as it is written, so the ring adds no latency.
#[derive(Debug)]
struct FrameRing {
    map: RingMap,
    /// The slot read next.
    frame: usize,
}

impl FrameRing {
    /// Set the ring up on `fd` (see [`map_ring`]), with
    /// `PACKET_COPY_THRESH` so that a frame larger than a slot is queued
    /// whole on the socket (its slot, cut short, says `TP_STATUS_COPY`).
    ///
    /// # Errors
    /// As [`map_ring`], and what `PACKET_COPY_THRESH` reports.
    fn map(fd: &OwnedFd) -> io::Result<FrameRing> {
        setsockopt_int(fd, libc::SOL_PACKET, libc::PACKET_COPY_THRESH, 1)?;
        Ok(FrameRing {
            map: map_frames(fd, PACKET_RX_RING, FRAMES)?,
            frame: 0,
        })
    }
}

/// Set a `TPACKET_V2` ring of `frames` slots of [`FRAME_SIZE`] bytes (in
/// blocks of [`FRAME_BLOCK_SIZE`]) up on `fd` as `ring` (`PACKET_RX_RING`,
/// `PACKET_TX_RING`) and map it (see [`map_ring`]).
///
/// # Errors
/// As [`map_ring`].
fn map_frames(fd: &OwnedFd, ring: libc::c_int, frames: usize) -> io::Result<RingMap> {
    let req = libc::tpacket_req {
        tp_block_size: FRAME_BLOCK_SIZE as u32,
        tp_block_nr: (frames * FRAME_SIZE / FRAME_BLOCK_SIZE) as u32,
        tp_frame_size: FRAME_SIZE as u32,
        tp_frame_nr: frames as u32,
    };
    let base = map_ring(
        fd,
        libc::tpacket_versions::TPACKET_V2,
        ring,
        &req,
        frames * FRAME_SIZE,
    )?;
    Ok(RingMap {
        base,
        unit: FRAME_SIZE,
        count: frames,
        status_at: TP2_STATUS,
    })
}

/// A `TPACKET_V2` transmit ring (Linux `tpacket_snd`, read in its
/// source): we write a frame into the slot at `tail` when its status is
/// `TP_STATUS_AVAILABLE` and set `TP_STATUS_SEND_REQUEST`; a `send` with
/// no data has the kernel send the requested slots in ring order, from
/// its own head, until one is not requested. A slot it took says
/// `TP_STATUS_SENDING` until the frame is freed, then
/// `TP_STATUS_AVAILABLE` again. A frame it could not send stays
/// requested, and the kernel's head stays on it: it would be sent again
/// on every later `send`, and nothing behind it before it. So a frame the
/// kernel refuses is dropped by making it one the kernel skips: with
/// `PACKET_LOSS`, a slot of a malformed frame is made available and
/// passed over, and one shorter than its virtio-net header (`tp_len` 0)
/// is malformed.
#[derive(Debug)]
struct TxRing {
    map: RingMap,
    /// The slot written next.
    tail: usize,
    /// The first slot requested and not yet seen taken: the kernel's head.
    head: usize,
    /// Slots requested from `head` on.
    queued: usize,
    /// Per slot, the length of the frame in it for the port's counters
    /// (bytes; 0: dropped, to be skipped).
    lens: Box<[u32]>,
}

/// Whether the kernel took the transmit slot whose `tp_status` is
/// `status` (sent the frame, or skipped it).
fn tx_taken(status: u32) -> bool {
    status & (TP_STATUS_SEND_REQUEST | TP_STATUS_WRONG_FORMAT) == 0
}

impl TxRing {
    /// Set the ring up on `fd` (see [`map_frames`]), with `PACKET_LOSS`.
    ///
    /// # Errors
    /// As [`map_ring`], and what `PACKET_LOSS` reports.
    fn map(fd: &OwnedFd) -> io::Result<TxRing> {
        setsockopt_int(fd, libc::SOL_PACKET, PACKET_LOSS, 1)?;
        Ok(TxRing {
            map: map_frames(fd, PACKET_TX_RING, TX_FRAMES)?,
            tail: 0,
            head: 0,
            queued: 0,
            lens: vec![0; TX_FRAMES].into_boxed_slice(),
        })
    }

    /// Put `frame` (at most [`TX_SLOT_FRAME`] bytes, not GSO) behind
    /// virtio-net header `hdr` in the next slot and request it; false when
    /// that slot is not free (the ring is full).
    fn push(&mut self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> bool {
        let i = self.tail;
        let status = self.map.status(i).load(Ordering::Acquire);
        if status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING | TP_STATUS_WRONG_FORMAT) != 0 {
            return false;
        }
        let len = VNET_HDR_LEN + frame.len();
        {
            // SAFETY: the slot is available: the kernel neither reads nor
            // writes it until we request it below, after the slice is gone.
            let slot = unsafe { self.map.bytes_mut(i) };
            slot[TP2_LEN..TP2_LEN + 4].copy_from_slice(&(len as u32).to_ne_bytes());
            let data = &mut slot[TP2_TX_DATA..TP2_TX_DATA + len];
            data[..VNET_HDR_LEN].copy_from_slice(hdr);
            // hdr_len: the whole frame is copied into the buffer the kernel
            // sends (as `sendmmsg` does with a frame under a page), none of
            // it left in the slot's page, so the slot is free to reuse when
            // the kernel says so.
            data[2..4].copy_from_slice(&(frame.len() as u16).to_le_bytes());
            data[VNET_HDR_LEN..].copy_from_slice(frame);
        }
        self.lens[i] = frame.len() as u32;
        self.map
            .status(i)
            .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tail = (i + 1) % self.map.count;
        self.queued += 1;
        true
    }

    /// Count the slots from `head` the kernel took (the frames sent, in
    /// `stats`) and move `head` past them.
    fn settle(&mut self, stats: &mut PortStats) {
        while self.queued > 0 && tx_taken(self.map.status(self.head).load(Ordering::Acquire)) {
            let len = self.lens[self.head];
            if len != 0 {
                stats.tx_packets += 1;
                stats.tx_bytes += u64::from(len);
            }
            self.head = (self.head + 1) % self.map.count;
            self.queued -= 1;
        }
    }

    /// Drop up to `n` requested frames from `head` on (counted in
    /// `stats`): each becomes one the kernel skips (`tp_len` 0, see the
    /// type's docs).
    fn drop_queued(&mut self, n: usize, stats: &mut PortStats) {
        let mut left = n;
        for k in 0..self.queued {
            if left == 0 {
                break;
            }
            let i = (self.head + k) % self.map.count;
            if self.lens[i] == 0 {
                continue; // already dropped
            }
            self.lens[i] = 0;
            {
                // SAFETY: a requested slot the kernel stopped before (it
                // touches requested slots only within our `send`).
                let slot = unsafe { self.map.bytes_mut(i) };
                slot[TP2_LEN..TP2_LEN + 4].copy_from_slice(&0u32.to_ne_bytes());
            }
            self.map
                .status(i)
                .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
            stats.tx_dropped += 1;
            left -= 1;
        }
    }
}

/// A `TPACKET_V3` receive ring: `blocks` blocks of `block_size` bytes,
/// each owned by the kernel (which fills it) until it sets
/// `TP_STATUS_USER` in the block's status, then by us until we set
/// `TP_STATUS_KERNEL` again. Blocks are handed over in ring order.
#[derive(Debug)]
struct BlockRing {
    map: RingMap,
    /// The block read next.
    block: usize,
    /// Where reading stopped inside `block` when a batch filled up:
    /// frames left and the offset of the next one.
    cursor: Option<(u32, usize)>,
    /// Blocks given back to the kernel so far.
    released: u64,
}

impl BlockRing {
    /// Set the ring up on `fd` (see [`map_ring`]).
    ///
    /// # Errors
    /// As [`map_ring`].
    fn map(fd: &OwnedFd) -> io::Result<BlockRing> {
        let req = libc::tpacket_req3 {
            tp_block_size: RING_BLOCK_SIZE as u32,
            tp_block_nr: RING_BLOCKS as u32,
            tp_frame_size: RING_FRAME_SIZE as u32,
            tp_frame_nr: (RING_BLOCK_SIZE / RING_FRAME_SIZE * RING_BLOCKS) as u32,
            tp_retire_blk_tov: RING_RETIRE_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let base = map_ring(
            fd,
            libc::tpacket_versions::TPACKET_V3,
            PACKET_RX_RING,
            &req,
            RING_BLOCK_SIZE * RING_BLOCKS,
        )?;
        Ok(BlockRing {
            map: RingMap {
                base,
                unit: RING_BLOCK_SIZE,
                count: RING_BLOCKS,
                status_at: BLK_STATUS,
            },
            block: 0,
            cursor: None,
            released: 0,
        })
    }
}

/// Host-order `u32` at `off` of `b`, if in bounds.
fn rd32(b: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let w = b.get(off..end)?;
    Some(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
}

/// Host-order `u16` at `off` of `b`, if in bounds.
fn rd16(b: &[u8], off: usize) -> Option<u16> {
    let end = off.checked_add(2)?;
    let w = b.get(off..end)?;
    Some(u16::from_ne_bytes([w[0], w[1]]))
}

/// The 4 bytes of a VLAN tag the kernel reported out of band (`tpid_valid`:
/// `tpid` is meaningful, else 802.1Q), to put back after the MAC
/// addresses.
fn vlan_tag(tpid_valid: bool, tci: u16, tpid: u16) -> [u8; 4] {
    let tpid = if tpid_valid && tpid != 0 {
        tpid
    } else {
        0x8100
    };
    let [a, b] = tpid.to_be_bytes();
    let [c, d] = tci.to_be_bytes();
    [a, b, c, d]
}

/// Put VLAN tag `tag` back into `pkt` after its MAC addresses (from the
/// headroom: the frame does not move); a checksum-partial start moves
/// with the frame. The caller checked that the result fits a packet.
fn insert_vlan(pkt: &mut Packet, tag: [u8; 4]) {
    if pkt.len() < 12 {
        return;
    }
    pkt.push_front(4);
    let d = pkt.data_mut();
    d.copy_within(4..16, 0);
    d[12..16].copy_from_slice(&tag);
}

/// A Linux device as a port.
#[derive(Debug)]
pub struct Netdev {
    /// The receive ring (sockets only; `None`: `recvmmsg`). Declared
    /// before `backing` so that it is unmapped before the socket closes.
    ring: Option<RxRing>,
    /// A second packet socket on the device that only sends (bound with
    /// protocol 0, it receives nothing), or `None`: send on `backing`'s.
    /// The forwarding thread's epoll watches the receiving socket, and
    /// the kernel wakes a socket's waiters each time a frame it sent is
    /// freed (`sock_wfree` → `sock_def_write_space`): sending there took
    /// the socket's wait-queue lock and ran the epoll callback once per
    /// frame sent (5 % of the forwarding thread under a new-connection
    /// burst, `perf record`); nobody waits on this one.
    tx: Option<TxSocket>,
    backing: Backing,
    name: String,
    stats: PortStats,
    /// Rate limit of the log lines about dropped frames.
    drop_log: LogLimit,
    /// Frames the kernel dropped for want of room (in the ring or the
    /// socket's receive buffer), summed over `PACKET_STATISTICS` reads
    /// (each read resets the kernel's count).
    kernel_drops: Cell<u64>,
}

/// The socket a port sends on apart from the receiving one, and its
/// transmit ring where it has one (then frames too large for a slot go
/// out on the receiving socket: `sendmmsg` on a socket with a transmit
/// ring sends the ring, not the message).
#[derive(Debug)]
struct TxSocket {
    /// Declared before `fd` so that it is unmapped before the socket
    /// closes.
    ring: Option<TxRing>,
    fd: OwnedFd,
    /// The largest frame put in the ring (bytes): a slot's room, or the
    /// device's MTU with an Ethernet header and a VLAN tag if less (as
    /// `sendmmsg` allows; the ring's sending does not check the MTU with
    /// virtio-net headers on, and some devices would send a longer frame).
    ring_frame: usize,
    /// When the device's MTU was read for `ring_frame` (once a second).
    mtu_read: Instant,
}

impl TxSocket {
    fn new(ring: Option<TxRing>, fd: OwnedFd, name: &str) -> TxSocket {
        let mut tx = TxSocket {
            ring,
            fd,
            ring_frame: TX_SLOT_FRAME,
            mtu_read: Instant::now(),
        };
        tx.read_mtu(name);
        tx
    }

    /// Set `ring_frame` from the device's MTU (kept if it cannot be read).
    fn read_mtu(&mut self, name: &str) {
        self.mtu_read = Instant::now();
        match device_mtu(&self.fd, name) {
            Ok(mtu) => self.ring_frame = (mtu + ETH_HLEN + VLAN_HLEN).min(TX_SLOT_FRAME),
            Err(e) => tracing::debug!("{name}: SIOCGIFMTU: {e}"),
        }
    }
}

/// The MTU of device `name` in bytes (`SIOCGIFMTU` on socket `fd`, in the
/// socket's network namespace).
///
/// # Errors
/// What `ioctl` reports (ENODEV when the device is gone); `InvalidInput`
/// for a name too long for `ifreq`.
fn device_mtu(fd: &OwnedFd, name: &str) -> io::Result<usize> {
    // SAFETY: ifreq is plain data; zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (d, &b) in req.ifr_name.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: `req` lives across the call; SIOCGIFMTU reads its
    // NUL-terminated name and writes its MTU.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the union's MTU member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// A socket of device `ifindex` that only sends, with a transmit ring
/// where this kernel is one we use it on (`tx_ring_supported`) and the
/// ring can be set up (else it warns once and sends with `sendmmsg`).
///
/// # Errors
/// When no socket can be opened or bound.
fn sending_socket(name: &str, ifindex: u32) -> io::Result<TxSocket> {
    let open = || packet_socket().and_then(|fd| bind_packet(&fd, ifindex, 0).map(|()| fd));
    let fd = open()?;
    if !tx_ring_supported() {
        return Ok(TxSocket::new(None, fd, name));
    }
    match TxRing::map(&fd) {
        Ok(ring) => {
            tracing::info!(
                "{name}: sending through a TPACKET_V2 ring ({TX_FRAMES} frames of \
                 {FRAME_SIZE} bytes; frames over {TX_SLOT_FRAME} bytes with sendmmsg)"
            );
            Ok(TxSocket::new(Some(ring), fd, name))
        }
        Err(e) => {
            tracing::warn!("{name}: no transmit ring ({e}): sending with sendmmsg");
            // A fresh socket: on one with a ring set up but not mapped,
            // sendmmsg would send the ring instead of its messages.
            drop(fd);
            Ok(TxSocket::new(None, open()?, name))
        }
    }
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

/// Raise `fd`'s receive buffer to [`RCVBUF_BYTES`]: `SO_RCVBUFFORCE`,
/// else (without `CAP_NET_ADMIN`) `SO_RCVBUF`, which the kernel caps at
/// `net.core.rmem_max`, with an info line naming the cap. Returns the
/// buffer the kernel reports (`SO_RCVBUF`: twice what was set, for `skb`
/// overhead), in bytes; 0 if it cannot be read.
fn set_rcvbuf(fd: &OwnedFd, name: &str) -> usize {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    if let Err(e) = setsockopt(fd, sockopt::RcvBufForce, &RCVBUF_BYTES) {
        let r = setsockopt(fd, sockopt::RcvBuf, &RCVBUF_BYTES);
        tracing::info!(
            "{name}: SO_RCVBUFFORCE: {e}; SO_RCVBUF {} KiB{}, at most net.core.rmem_max",
            RCVBUF_BYTES / 1024,
            match r {
                Ok(()) => String::new(),
                Err(e) => format!(" failed ({e})"),
            }
        );
    }
    getsockopt(fd, sockopt::RcvBuf).unwrap_or(0)
}

/// Whether the transmit ring is used on this kernel: Linux 6.1 or later,
/// whose `tpacket_snd` behaves as `TxRing` describes (read in its
/// source); older kernels send with `sendmmsg`.
fn tx_ring_supported() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .is_ok_and(|release| kernel_at_least(&release, (6, 1)))
}

/// Whether this kernel writes the virtio-net header into receive ring
/// frames (Linux 4.6, commit 58d19b19cd99; without it the 10 bytes before
/// a ring frame are not one), from `/proc/sys/kernel/osrelease`; false if
/// that cannot be read.
fn rings_carry_vnet_hdr() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .is_ok_and(|release| kernel_at_least(&release, (4, 6)))
}

/// Whether kernel release string `release` ("6.18.0-1-amd64") is at least
/// version `major.minor`; false if it does not start with two numbers.
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut nums = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (nums.next().flatten(), nums.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// A fresh `AF_PACKET` raw socket (non-blocking, close-on-exec, protocol
/// 0: it receives nothing until bound with a protocol) with
/// `PACKET_VNET_HDR`, which must come before a ring (the kernel refuses
/// it once a ring exists).
///
/// # Errors
/// What `socket` (needs `CAP_NET_RAW`) or `setsockopt` reports.
fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory arguments.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh socket nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    Ok(fd)
}

/// Bind packet socket `fd` to device `ifindex`, receiving frames of
/// `protocol` (an ethertype, host order; `ETH_P_ALL` for all, 0 for none).
///
/// # Errors
/// What `bind` reports (e.g. ENODEV).
fn bind_packet(fd: &OwnedFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Netdev {
    /// Open device `name` (which must exist in this network namespace),
    /// receiving through the block ring if `rx_ring` (OVS-style
    /// `options:rx-ring=true`), else through the frame ring: see
    /// [`Netdev::open_with`].
    ///
    /// # Errors
    /// As [`Netdev::open_with`].
    pub fn open(name: &str, rx_ring: bool) -> io::Result<Netdev> {
        let path = if rx_ring {
            RxPath::BlockRing
        } else {
            RxPath::FrameRing
        };
        Self::open_with(name, path)
    }

    /// Open device `name` (which must exist in this network namespace),
    /// receiving by `path`; where a ring cannot be set up (old kernel, no
    /// memory) it warns once and receives with `recvmmsg`. The socket's
    /// receive buffer (what `recvmmsg` reads, and where the frame ring
    /// puts frames larger than a slot) is raised to `RCVBUF_BYTES`
    /// (2 MiB). One info line says which path the port uses.
    ///
    /// # Errors
    /// When the device does not exist or the socket cannot be set up
    /// (needs `CAP_NET_RAW`).
    pub fn open_with(name: &str, path: RxPath) -> io::Result<Netdev> {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a plain C call with a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no network device {name}"),
            ));
        }
        let path = if path != RxPath::Recvmmsg && !rings_carry_vnet_hdr() {
            tracing::warn!(
                "{name}: this kernel's receive rings carry no virtio-net header \
                 (Linux 4.6 or later): receiving with recvmmsg"
            );
            RxPath::Recvmmsg
        } else {
            path
        };
        // The socket receives nothing until `bind` below, so no frame of
        // another device is queued meanwhile (or, with the ring, left in a
        // receive queue nobody reads).
        let fd = packet_socket()?;
        let ring = match path {
            RxPath::Recvmmsg => Ok(None),
            RxPath::FrameRing => FrameRing::map(&fd).map(|r| Some(RxRing::Frames(r))),
            RxPath::BlockRing => BlockRing::map(&fd).map(|r| Some(RxRing::Blocks(r))),
        };
        let ring = match ring {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{name}: no {path:?} receive ring ({e}): receiving with recvmmsg");
                // A fresh socket, without the version or ring half set.
                drop(fd);
                return Self::open_with(name, RxPath::Recvmmsg);
            }
        };
        // The rings report VLAN tags the kernel took out of frames in each
        // frame's header; recvmmsg (also for frames the frame ring leaves
        // on the socket) in a control message.
        let rcvbuf = if !matches!(ring, Some(RxRing::Blocks(_))) {
            if let Err(e) = setsockopt_int(&fd, libc::SOL_PACKET, PACKET_AUXDATA, 1) {
                tracing::warn!("{name}: PACKET_AUXDATA (VLAN tags will be lost): {e}");
            }
            set_rcvbuf(&fd, name)
        } else {
            0
        };
        // Older kernels lack it; then we also read our own output, which
        // MAC learning tolerates (it arrives on the port it left by),
        // except what other sockets send: then we send on this one.
        let ignores_outgoing =
            match setsockopt_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("{name}: PACKET_IGNORE_OUTGOING: {e}");
                    false
                }
            };
        bind_packet(&fd, ifindex, libc::ETH_P_ALL as u16)?;
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
        match ring {
            Some(RxRing::Blocks(_)) => tracing::info!(
                "{name}: receiving through a TPACKET_V3 ring ({RING_BLOCKS} blocks of {} KiB)",
                RING_BLOCK_SIZE / 1024
            ),
            Some(RxRing::Frames(_)) => tracing::info!(
                "{name}: receiving through a TPACKET_V2 ring ({FRAMES} frames of {FRAME_SIZE} bytes; \
                 larger frames through the socket receive buffer of {} KiB)",
                rcvbuf / 1024
            ),
            None => tracing::info!(
                "{name}: receiving with recvmmsg (socket receive buffer {} KiB)",
                rcvbuf / 1024
            ),
        }
        // Sent frames go out through a socket of their own (see `tx`), or
        // this one if that cannot be set up (or would read them back).
        let tx = match ignores_outgoing.then(|| sending_socket(name, ifindex)) {
            None => None,
            Some(Ok(tx)) => Some(tx),
            Some(Err(e)) => {
                tracing::warn!(
                    "{name}: no socket for sending apart ({e}): sending on the receiving one"
                );
                None
            }
        };
        Ok(Netdev {
            ring,
            tx,
            backing: Backing::Socket(fd),
            name: name.to_string(),
            stats: PortStats::default(),
            drop_log: LogLimit::default(),
            kernel_drops: Cell::new(0),
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
        Ok(Netdev {
            ring: None,
            tx: None,
            name: tap.name().to_owned(),
            backing: Backing::Tap(tap),
            stats: PortStats::default(),
            drop_log: LogLimit::default(),
            kernel_drops: Cell::new(0),
        })
    }

    /// The descriptor frames cross (the socket, or the tap's).
    fn fd(&self) -> BorrowedFd<'_> {
        match &self.backing {
            Backing::Socket(fd) => fd.as_fd(),
            Backing::Tap(tap) => tap.fd(),
        }
    }

    /// The descriptor frames are sent on: the sending socket, else the
    /// receiving one (or the tap's).
    fn tx_fd(&self) -> BorrowedFd<'_> {
        match &self.tx {
            Some(TxSocket { ring: None, fd, .. }) => fd.as_fd(),
            _ => self.fd(),
        }
    }

    fn is_tap(&self) -> bool {
        matches!(self.backing, Backing::Tap(_))
    }

    /// The tap's `recv`: one `read` per frame into the batch's free slots.
    fn recv_tap(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        while let Some(p) = batch.push_slot() {
            let buf = p.resize(MAX_FRAME);
            // SAFETY: `buf` is a writable buffer of the length given.
            let r =
                unsafe { libc::read(self.fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
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
            if !self.finish_rx(pkt, n, false, None) {
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
            if write_tap(self.fd(), p) {
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
    fn finish_rx(
        &mut self,
        pkt: &mut Packet,
        n: usize,
        truncated: bool,
        vlan: Option<[u8; 4]>,
    ) -> bool {
        // The packet buffer may hold less than asked for (it clamps to the
        // datapath's largest frame): what counts is what was stored.
        let stored = (!truncated).then(|| pkt.data().get(..n)).flatten();
        let Some(offloads) = self.rx_accept(stored, n, vlan) else {
            return false;
        };
        pkt.resize(n);
        pkt.pull_front(VNET_HDR_LEN);
        self.rx_apply(pkt, offloads, vlan);
        true
    }

    /// The offloads of a received frame of `n` bytes (virtio-net header
    /// included) whose bytes are `rx` (`None`: not all stored), or `None`
    /// after counting and logging its drop: too large for a packet buffer
    /// once its VLAN tag is back, or a header we do not take.
    fn rx_accept(
        &mut self,
        rx: Option<&[u8]>,
        n: usize,
        vlan: Option<[u8; 4]>,
    ) -> Option<(Csum, Option<Gso>)> {
        let tag_len = if vlan.is_some() { 4 } else { 0 };
        let offloads = match rx {
            Some(rx)
                if n.saturating_sub(VNET_HDR_LEN) + tag_len
                    <= xennet_datapath::buffer::MAX_FRAME =>
            {
                rx_offloads(rx)
            }
            _ => Err("frame larger than the packet buffer"),
        };
        match offloads {
            Ok(o) => Some(o),
            Err(why) => {
                self.stats.rx_dropped += 1;
                self.warn_rate_limited(why, n);
                None
            }
        }
    }

    /// Give a received frame (header stripped) its offloads and VLAN tag
    /// back, and count it.
    fn rx_apply(
        &mut self,
        p: &mut Packet,
        (csum, gso): (Csum, Option<Gso>),
        vlan: Option<[u8; 4]>,
    ) {
        p.csum = csum;
        p.gso = gso;
        if let Some(tag) = vlan {
            insert_vlan(p, tag);
        }
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += p.len() as u64;
    }
}

impl Netdev {
    /// The frame ring's `recv`: copy frames out of the slots the kernel
    /// handed over, in ring order, into the batch's free slots, giving
    /// each back once read; a slot that says `TP_STATUS_COPY` stands for
    /// the next frame queued on the socket, read there. With nothing in
    /// the ring, the socket's pending error is taken (see
    /// `take_socket_error`). The socket itself is not read then: the kernel
    /// queues a frame there before it hands over the frame's slot
    /// (`tpacket_rcv`), so a frame found there early would be read before
    /// its turn.
    fn recv_frames(&mut self, batch: &mut PacketBatch, mut ring: FrameRing) -> RecvStatus {
        let mut seen = 0;
        let status = loop {
            if batch.is_full() {
                break RecvStatus::More;
            }
            let i = ring.frame;
            // Acquire: the frame the kernel wrote before handing the slot
            // over is visible once we see its status.
            let st = ring.map.status(i).load(Ordering::Acquire);
            if st & TP_STATUS_USER == 0 {
                if seen == 0 {
                    self.take_socket_error();
                }
                break RecvStatus::Idle;
            }
            seen += 1;
            // SAFETY: slot `i` is ours until the status store below, and
            // the slice is not used after it.
            let slot = unsafe { ring.map.bytes(i) };
            self.read_slot(slot, st, batch);
            // Release: we are done reading the slot before the kernel may
            // write it again.
            ring.map
                .status(i)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            ring.frame = (i + 1) % ring.map.count;
        };
        self.ring = Some(RxRing::Frames(ring));
        status
    }

    /// Take the frame of ring slot `slot` (ours, status `st`) into
    /// `batch`, which has room for it. Every offset and length the kernel
    /// wrote is checked against the slot.
    fn read_slot(&mut self, slot: &[u8], st: u32, batch: &mut PacketBatch) {
        if st & libc::TP_STATUS_COPY != 0 {
            // The whole frame is on the socket, queued before the slot
            // was handed over (tpacket_rcv).
            if self.recv_socket(batch, 1).0 == 0 {
                self.stats.rx_errors += 1;
                if self.drop_log.ready() {
                    tracing::warn!(
                        "{}: a receive ring slot says its frame is on the socket, which has none",
                        self.name
                    );
                }
            }
            return;
        }
        let (Some(snaplen), Some(len), Some(mac)) = (
            rd32(slot, TP2_SNAPLEN),
            rd32(slot, TP2_LEN),
            rd16(slot, TP2_MAC),
        ) else {
            return self.bad_slot("header");
        };
        if snaplen != len {
            // Larger than a slot, and the socket had no room for it
            // either (its receive buffer was full).
            self.stats.rx_dropped += 1;
            return self.warn_rate_limited("frame larger than a ring slot", len as usize);
        }
        let mac = usize::from(mac);
        if mac < TP2_HDR_LEN + VNET_HDR_LEN {
            return self.bad_slot("frame offset inside the slot header");
        }
        // The virtio-net header lies right before the frame.
        let Some(rx) = slot.get(mac - VNET_HDR_LEN..mac.saturating_add(snaplen as usize)) else {
            return self.bad_slot("frame beyond the slot");
        };
        let vlan = (st & TP_STATUS_VLAN_VALID != 0).then(|| {
            vlan_tag(
                st & TP_STATUS_VLAN_TPID_VALID != 0,
                rd16(slot, TP2_VLAN_TCI).unwrap_or(0),
                rd16(slot, TP2_VLAN_TPID).unwrap_or(0),
            )
        });
        self.take_frame(rx, vlan, batch);
    }

    /// Count and log a malformed ring slot (its frame is lost).
    fn bad_slot(&mut self, why: &str) {
        self.bad_ring_unit("slot", why);
    }

    /// Count a malformed receive ring `unit` ("slot", "block") as one
    /// `rx_errors` and log it, at most once a second per device.
    fn bad_ring_unit(&mut self, unit: &str, why: &str) {
        self.stats.rx_errors += 1;
        if self.drop_log.ready() {
            tracing::warn!(
                "{}: dropped a malformed receive ring {unit}: {why}",
                self.name
            );
        }
    }

    /// The block ring's `recv`: copy frames out of the blocks the kernel
    /// handed over, in ring order, into the batch's free slots; give each
    /// block back as soon as all its frames are read. When the batch fills
    /// up in the middle of a block, the block stays ours and the next call
    /// goes on from there.
    fn recv_blocks(&mut self, batch: &mut PacketBatch, mut ring: BlockRing) -> RecvStatus {
        let mut blocks_seen = 0;
        let status = loop {
            if batch.is_full() {
                break RecvStatus::More;
            }
            let b = ring.block;
            // Acquire: the frames the kernel wrote before handing the
            // block over are visible once we see its status.
            if ring.map.status(b).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                if blocks_seen == 0 {
                    // Woken up with nothing to read: perhaps by an error.
                    self.take_socket_error();
                }
                break RecvStatus::Idle;
            }
            blocks_seen += 1;
            // SAFETY: block `b` is ours until the status store below, and
            // `blk` is not used after it.
            let blk = unsafe { ring.map.bytes(b) };
            if !self.read_block(blk, &mut ring.cursor, batch) {
                break RecvStatus::More;
            }
            ring.cursor = None;
            // Release: we are done reading the block before the kernel
            // may fill it again.
            ring.map
                .status(b)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            ring.block = (b + 1) % ring.map.count;
            ring.released += 1;
        };
        self.ring = Some(RxRing::Blocks(ring));
        status
    }

    /// Read the frames of block `blk` (ours) from `cursor` (or its first
    /// frame) into `batch`. Returns true when the block is done with (every
    /// frame read, or the block is malformed: then its remaining frames
    /// are lost and it counts as one `rx_errors`), false when the batch
    /// filled up first (`cursor` then says where to go on). Every offset
    /// and length the kernel wrote is checked against the block.
    fn read_block(
        &mut self,
        blk: &[u8],
        cursor: &mut Option<(u32, usize)>,
        batch: &mut PacketBatch,
    ) -> bool {
        let (mut left, mut off) = match *cursor {
            Some(c) => c,
            None => match (rd32(blk, BLK_NUM_PKTS), rd32(blk, BLK_FIRST)) {
                (Some(n), Some(first)) => (n, first as usize),
                _ => return self.bad_block("block header"),
            },
        };
        while left > 0 {
            if batch.is_full() {
                *cursor = Some((left, off));
                return false;
            }
            let (Some(next), Some(snaplen), Some(len), Some(mac)) = (
                rd32(blk, off.saturating_add(TP3_NEXT)),
                rd32(blk, off.saturating_add(TP3_SNAPLEN)),
                rd32(blk, off.saturating_add(TP3_LEN)),
                rd16(blk, off.saturating_add(TP3_MAC)),
            ) else {
                return self.bad_block("frame header beyond the block");
            };
            if snaplen != len {
                // The kernel stored only part of a frame larger than a
                // block (tpacket_rcv clamps `tp_snaplen`).
                self.stats.rx_dropped += 1;
                self.warn_rate_limited("frame larger than a ring block", len as usize);
            } else {
                // The virtio-net header lies right before the frame.
                let mac = usize::from(mac);
                if mac < TP3_HDR_LEN + VNET_HDR_LEN {
                    return self.bad_block("frame offset inside the frame header");
                }
                let start = off.saturating_add(mac - VNET_HDR_LEN);
                let end = off.saturating_add(mac).saturating_add(snaplen as usize);
                let Some(rx) = blk.get(start..end) else {
                    return self.bad_block("frame beyond the block");
                };
                let vlan = match rd32(blk, off.saturating_add(TP3_STATUS)) {
                    Some(st) if st & TP_STATUS_VLAN_VALID != 0 => Some(vlan_tag(
                        st & TP_STATUS_VLAN_TPID_VALID != 0,
                        rd32(blk, off.saturating_add(TP3_VLAN_TCI)).unwrap_or(0) as u16,
                        rd16(blk, off.saturating_add(TP3_VLAN_TPID)).unwrap_or(0),
                    )),
                    _ => None,
                };
                self.take_frame(rx, vlan, batch);
            }
            left -= 1;
            if left > 0 {
                if next == 0 {
                    return self.bad_block("frame count beyond the last frame");
                }
                if (next as usize) < TP3_HDR_LEN {
                    return self.bad_block("frames overlap");
                }
                off = off.saturating_add(next as usize);
            }
        }
        true
    }

    /// Take the socket's pending error (`SO_ERROR`): the kernel sets one
    /// (ENETDOWN) when the device goes down, and until something reads it
    /// the socket polls as readable, which would keep the forwarding
    /// thread spinning, since reading the ring makes no system call (a
    /// failing `recvmmsg` takes it). Counted as `rx_errors` and logged.
    fn take_socket_error(&mut self) {
        let err = nix::sys::socket::getsockopt(&self.fd(), nix::sys::socket::sockopt::SocketError)
            .unwrap_or(0);
        if err != 0 {
            self.stats.rx_errors += 1;
            if self.drop_log.ready() {
                tracing::warn!("{}: {}", self.name, io::Error::from_raw_os_error(err));
            }
        }
    }

    /// Count and log a malformed ring block; returns true (done with it).
    fn bad_block(&mut self, why: &str) -> bool {
        self.bad_ring_unit("block", why);
        true
    }

    /// Take a frame from the ring, `rx` being its virtio-net header and
    /// the frame, `vlan` the tag the kernel took out of it: copy it into a
    /// new packet of `batch` with the offloads the header describes and
    /// the tag back in place, or drop and count it as `finish_rx` does.
    fn take_frame(&mut self, rx: &[u8], vlan: Option<[u8; 4]>, batch: &mut PacketBatch) {
        let Some(offloads) = self.rx_accept(Some(rx), rx.len(), vlan) else {
            return;
        };
        let Some(p) = batch.push_slot() else {
            return;
        };
        p.set_frame(rx.get(VNET_HDR_LEN..).unwrap_or(&[]));
        self.rx_apply(p, offloads, vlan);
    }

    /// Frames the kernel dropped since the last call (`PACKET_STATISTICS`
    /// `tp_drops`, the same field in `tpacket_stats` and
    /// `tpacket_stats_v3`); 0 if the socket cannot tell (not a packet
    /// socket).
    fn read_kernel_drops(&self) -> u64 {
        if self.is_tap() {
            return 0;
        }
        // tp_packets, tp_drops, tp_freeze_q_cnt (V3 only).
        let mut st = [0u32; 3];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` is writable for `len` bytes, `len` is updated by the
        // kernel to what it wrote.
        let r = unsafe {
            libc::getsockopt(
                self.fd().as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r < 0 || (len as usize) < 8 {
            return 0;
        }
        u64::from(st[1])
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
                    self.tx_fd().as_raw_fd(),
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
                // This frame was refused (EMSGSIZE for a frame over the
                // device's MTU): drop it, go on with the next.
                self.stats.tx_dropped += 1;
                warn_refused(&mut self.drop_log, &self.name, lens[off], &e, &self.stats);
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

    /// The largest frame the transmit ring takes now (`TxSocket::ring_frame`,
    /// the MTU read again once a second).
    fn ring_frame_limit(&mut self) -> usize {
        let Some(tx) = self.tx.as_mut() else {
            return 0;
        };
        if tx.mtu_read.elapsed() >= Duration::from_secs(1) {
            tx.read_mtu(&self.name);
        }
        tx.ring_frame
    }

    /// Send `pkts` (each fits a slot) through the transmit ring, if any.
    fn send_ring(&mut self, pkts: &[&Packet]) {
        let Netdev {
            tx,
            stats,
            drop_log,
            name,
            ..
        } = self;
        let Some(TxSocket {
            ring: Some(ring),
            fd,
            ..
        }) = tx
        else {
            return;
        };
        if pkts.is_empty() {
            return;
        }
        for p in pkts {
            let hdr = tx_vnet_hdr(p);
            if !ring.push(&hdr, p.data()) {
                // Full: the kernel sends what is requested (and slots of
                // frames freed meanwhile are free again).
                kick(ring, fd, stats, drop_log, name);
                if !ring.push(&hdr, p.data()) {
                    stats.tx_dropped += 1;
                }
            }
        }
        kick(ring, fd, stats, drop_log, name);
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

/// Log a frame of `len` bytes the kernel refused to send with `err` (it
/// is counted in `stats.tx_dropped`), at most once a second per device.
fn warn_refused(log: &mut LogLimit, name: &str, len: usize, err: &io::Error, stats: &PortStats) {
    if log.ready() {
        tracing::warn!(
            "{name}: the kernel refused a frame of {len} bytes: {err} ({} dropped on send so far)",
            stats.tx_dropped
        );
    }
}

/// Have the kernel send the requested slots of `ring` (a `send` on `fd`
/// with no data and `MSG_DONTWAIT`: it never waits), then count what it
/// took. Where it stopped short: after `EAGAIN` (the socket's send buffer
/// is full), or with the device down or gone, the rest would fail too and
/// is dropped; after another error (the device dropped the frame: over
/// its MTU, or its queue full, `ENOBUFS`) that one frame is dropped and
/// the rest sent, unless the previous try also ended so and this one sent
/// nothing (a full queue): then the rest is dropped too. Dropped frames
/// are skipped by the next `send` (see [`TxRing`]), here at once where the
/// kernel can.
fn kick(ring: &mut TxRing, fd: &OwnedFd, stats: &mut PortStats, log: &mut LogLimit, name: &str) {
    let mut refused = false;
    // Each round sends or drops at least one frame, but for one that only
    // clears the dropped ones.
    for _ in 0..=ring.queued + 1 {
        if ring.queued == 0 {
            return;
        }
        // SAFETY: a send of no bytes; with a transmit ring the kernel reads
        // the ring, which is mapped for as long as `ring` lives.
        let r = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        let err = (r < 0).then(io::Error::last_os_error);
        let sent = stats.tx_packets;
        ring.settle(stats);
        let sent_none = stats.tx_packets == sent;
        if ring.queued == 0 {
            return;
        }
        if ring.lens[ring.head] == 0 {
            // The kernel stopped before a frame dropped earlier, which it
            // skips unless the device is down (or gone): so are the frames
            // after it, and they are dropped too, or they would go out
            // late once it is up. The next send skips them.
            if err.is_some() {
                ring.drop_queued(ring.queued, stats);
                return;
            }
            continue;
        }
        match err.as_ref().and_then(io::Error::raw_os_error) {
            None | Some(libc::EAGAIN | libc::ENETDOWN | libc::ENXIO | libc::ENODEV) => {
                ring.drop_queued(ring.queued, stats);
            }
            Some(_) if refused && sent_none => ring.drop_queued(ring.queued, stats),
            Some(_) => {
                refused = true;
                let len = ring.lens[ring.head];
                ring.drop_queued(1, stats);
                if let Some(e) = &err {
                    warn_refused(log, name, len as usize, e, stats);
                }
            }
        }
    }
}

/// The `virtio_net_hdr` for sending `p` (checksum offset, GSO type and
/// segment size, `hdr_len` up to the end of the TCP header), little-endian.
/// TCP GSO only: a UDP GSO frame (which the datapath segments before any
/// port sees it) gets no GSO type.
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
            // Never here: no port takes UDP GSO (PortFeatures::takes_gso),
            // the datapath segments it before output.
            GsoType::UdpL4 => return h,
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
/// header, a checksum offset outside the frame, a GSO type we do not
/// segment (UDP fragmentation offload), a GSO frame without a segment
/// size, or a UDP L4 GSO frame that is not UDP over IPv4/IPv6 (the
/// datapath could not segment it). The ECN bit of `gso_type` needs nothing
/// here: segmentation clears CWR after the first segment either way.
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
        VNET_GSO_UDP_L4 if gso_size > 0 => {
            let frame = &rx[VNET_HDR_LEN..];
            let loc = xennet_datapath::csum::locate_l4(frame);
            if !loc.is_some_and(|l| l.proto == xennet_datapath::packet::IpProtocol::Udp) {
                return Err("UDP GSO frame that is not UDP over IPv4/IPv6");
            }
            Some(Gso {
                kind: GsoType::UdpL4,
                mss: gso_size,
            })
        }
        _ => return Err("unsupported GSO type"),
    };
    Ok((csum, gso))
}

impl Netdev {
    /// Receive up to `max` frames from the socket with one `recvmmsg`
    /// into the batch's free slots. Returns the frames taken and whether
    /// the socket may hold more (it filled every slot asked for).
    fn recv_socket(&mut self, batch: &mut PacketBatch, max: usize) -> (usize, RecvStatus) {
        let start = batch.len();
        for _ in 0..max {
            if batch.push_slot().is_none() {
                break;
            }
        }
        let slots = &mut batch.packets_mut()[start..];
        let want = slots.len();
        if want == 0 {
            return (0, RecvStatus::More);
        }
        // SAFETY: iovec and mmsghdr are plain data; zero is a valid value.
        let mut iov: [libc::iovec; MAX_BURST] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BURST] = unsafe { std::mem::zeroed() };
        let mut cmsgs = [CmsgBuf([0; CMSG_BUF_LEN]); MAX_BURST];
        for (i, p) in slots.iter_mut().enumerate() {
            let buf = p.resize(MAX_FRAME);
            iov[i].iov_base = buf.as_mut_ptr().cast();
            iov[i].iov_len = buf.len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = cmsgs[i].0.as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = CMSG_BUF_LEN as _;
        }
        // SAFETY: `msgs[..want]` each point at one iovec describing a
        // writable buffer of a packet in `slots` and at a control buffer
        // of `cmsgs`, all alive and not otherwise borrowed across the call.
        let r = unsafe {
            libc::recvmmsg(
                self.fd().as_raw_fd(),
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
            let vlan = auxdata_vlan(&msgs[i].msg_hdr);
            if self.finish_rx(&mut slots[i], n, truncated, vlan) {
                slots.swap(kept, i);
                kept += 1;
            }
        }
        for _ in kept..want {
            batch.pop();
        }
        let status = if got == want {
            RecvStatus::More
        } else {
            RecvStatus::Idle
        };
        (kept, status)
    }
}

impl Port for Netdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        if self.is_tap() {
            return self.recv_tap(batch);
        }
        match self.ring.take() {
            Some(RxRing::Frames(r)) => self.recv_frames(batch, r),
            Some(RxRing::Blocks(r)) => self.recv_blocks(batch, r),
            None => self.recv_socket(batch, MAX_BURST).1,
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        if self.is_tap() {
            return self.send_tap(pkts);
        }
        if !matches!(self.tx, Some(TxSocket { ring: Some(_), .. })) {
            for chunk in pkts.chunks(MAX_BURST) {
                self.send_burst(chunk);
            }
            return;
        }
        // Runs of frames that fit a slot through the ring, of others with
        // sendmmsg, in order: the ring is sent before anything after it.
        // GSO frames never go through the ring: the kernel sends their
        // payload from the slot's pages, and frees the slot (its skb
        // destructor) as soon as the receiving stack orphans the skb,
        // while a socket may still hold those pages.
        let limit = self.ring_frame_limit();
        let fits = |p: &&Packet| p.gso.is_none() && (ETH_HLEN..=limit).contains(&p.len());
        let mut rest = pkts;
        while !rest.is_empty() {
            let n = rest.iter().take_while(|p| fits(p)).count();
            self.send_ring(&rest[..n]);
            rest = &rest[n..];
            let n = rest.iter().take_while(|p| !fits(p)).count();
            for chunk in rest[..n].chunks(MAX_BURST) {
                self.send_burst(chunk);
            }
            rest = &rest[n..];
        }
    }

    fn features(&self) -> PortFeatures {
        PortFeatures {
            csum_partial: true,
            gso: true,
        }
    }

    fn stats(&self) -> PortStats {
        let drops = self.kernel_drops.get() + self.read_kernel_drops();
        self.kernel_drops.set(drops);
        PortStats {
            rx_dropped: self.stats.rx_dropped + drops,
            ..self.stats
        }
    }
}

/// Room for one `PACKET_AUXDATA` control message (`CMSG_SPACE` of a
/// 20-byte `tpacket_auxdata` is 40 on 64-bit Linux) and some spare.
const CMSG_BUF_LEN: usize = 64;

/// A control message buffer, aligned as `struct cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF_LEN]);

/// The VLAN tag a `PACKET_AUXDATA` control message of a received `msg`
/// reports (`TP_STATUS_VLAN_VALID`), if any.
fn auxdata_vlan(msg: &libc::msghdr) -> Option<[u8; 4]> {
    // SAFETY: `msg` was filled by recvmmsg: `msg_control` points at our
    // buffer and `msg_controllen` says how much of it the kernel wrote;
    // the CMSG macros stay within that length.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !c.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/NXTHDR lies within
        // the control buffer.
        let h = unsafe { &*c };
        // SAFETY: a plain computation on a constant.
        let min = unsafe { libc::CMSG_LEN(size_of::<libc::tpacket_auxdata>() as u32) } as usize;
        if h.cmsg_level == libc::SOL_PACKET
            && h.cmsg_type == PACKET_AUXDATA
            && h.cmsg_len as usize >= min
        {
            // SAFETY: the header says its data holds a whole
            // `tpacket_auxdata`, within the buffer; the read needs no
            // alignment.
            let aux: libc::tpacket_auxdata =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            if aux.tp_status & TP_STATUS_VLAN_VALID == 0 {
                return None;
            }
            return Some(vlan_tag(
                aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0,
                aux.tp_vlan_tci,
                aux.tp_vlan_tpid,
            ));
        }
        // SAFETY: as for CMSG_FIRSTHDR; null after the last header.
        c = unsafe { libc::CMSG_NXTHDR(msg, c) };
    }
    None
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

    /// `VIRTIO_NET_HDR_GSO_UDP_L4` on a UDP/IPv4 or UDP/IPv6 frame is a
    /// UDP GSO frame; without a segment size, or on a TCP frame or one
    /// that is not IP, it is dropped.
    #[test]
    fn received_udp_gso_headers() {
        let hdr = |gso_size: u16, frame: &[u8]| {
            let mut b = rx(VNET_F_NEEDS_CSUM, VNET_GSO_UDP_L4, gso_size, 34, 6, 0);
            b.extend_from_slice(frame);
            b
        };
        // Ethernet, IPv4 or IPv6, then an 8-byte UDP or 20-byte TCP
        // header (protocol 17 or 6) and 3000 zero bytes.
        let frame = |v6: bool, proto: u8| {
            let l4 = if proto == 17 { 8 } else { 20 };
            let l4_len = (l4 + 3000) as u16;
            let mut f = vec![2u8; 12];
            if v6 {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&l4_len.to_be_bytes());
                f.extend_from_slice(&[proto, 64]);
                f.extend_from_slice(&[1; 32]);
            } else {
                f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
                f.extend_from_slice(&(l4_len + 20).to_be_bytes());
                f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
                f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            }
            let mut h = vec![0u8; l4];
            if proto == 17 {
                h[4..6].copy_from_slice(&l4_len.to_be_bytes());
            } else {
                h[12] = 5 << 4;
            }
            f.extend_from_slice(&h);
            f.resize(f.len() + 3000, 0);
            f
        };
        let (udp4, udp6, tcp4) = (frame(false, 17), frame(true, 17), frame(false, 6));
        for f in [&udp4, &udp6] {
            let (csum, gso) = rx_offloads(&hdr(1400, f)).unwrap();
            assert_eq!(
                gso,
                Some(Gso {
                    kind: GsoType::UdpL4,
                    mss: 1400
                })
            );
            assert_eq!(
                csum,
                Csum::Partial {
                    start: 34,
                    offset: 6
                }
            );
            assert!(rx_offloads(&hdr(0, f)).is_err());
        }
        assert!(rx_offloads(&hdr(1400, &tcp4)).is_err());
        assert!(rx_offloads(&hdr(1400, &[0u8; 3042])).is_err());
        assert!(rx_offloads(&hdr(1400, &udp4[..100])).is_err(), "cut short");
        // Sending: UDP GSO never leaves as a GSO type.
        let mut p = Packet::from_slice(&udp4);
        p.gso = Some(Gso {
            kind: GsoType::UdpL4,
            mss: 1400,
        });
        assert_eq!(tx_vnet_hdr(&p)[1..6], [VNET_GSO_NONE, 0, 0, 0, 0]);
    }

    /// A Netdev reading datagrams from the other end of a socket pair
    /// (MSG_TRUNC reports real lengths on Unix datagram sockets too).
    fn pair() -> (Netdev, std::os::unix::net::UnixDatagram) {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let dev = Netdev {
            ring: None,
            tx: None,
            backing: Backing::Socket(OwnedFd::from(ours)),
            name: "test".into(),
            stats: PortStats::default(),
            drop_log: LogLimit::default(),
            kernel_drops: Cell::new(0),
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
    fn kernel_releases_are_compared() {
        assert!(kernel_at_least("6.18.0-1-amd64\n", (4, 6)));
        assert!(kernel_at_least("4.6.0", (4, 6)));
        assert!(kernel_at_least("5.0", (4, 6)));
        assert!(!kernel_at_least("4.5.7-200.fc23.x86_64", (4, 6)));
        assert!(!kernel_at_least("3.10.0-1160.el7.x86_64", (4, 6)));
        assert!(!kernel_at_least("6", (4, 6)));
        assert!(!kernel_at_least("", (4, 6)));
        assert!(!kernel_at_least("linux-6.1", (4, 6)));
        // This machine's kernel (the tests need the rings).
        assert!(rings_carry_vnet_hdr());
    }

    #[test]
    fn runts_are_dropped() {
        let (mut dev, peer) = pair();
        peer.send(&[0u8; 3]).unwrap();
        peer.send(&[0u8; VNET_HDR_LEN + 13]).unwrap();
        let mut batch = PacketBatch::new();
        assert_eq!(dev.recv(&mut batch), RecvStatus::Idle);
        assert!(batch.is_empty());
        assert_eq!(dev.stats.rx_dropped, 2);
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

#[cfg(test)]
mod ring_tests {
    use super::*;
    use nix::sys::mman::{MapFlags, ProtFlags};

    const BS: usize = 16 * 1024;
    /// Where the kernel puts the frame on a `SOCK_RAW` ring with a
    /// virtio-net header: TPACKET_ALIGN(48 + 20 + 16) + 10 - 14.
    const MAC: usize = 92;

    /// A ring of `blocks` blocks of `BS` bytes in anonymous memory, all
    /// the kernel's, for feeding `recv_ring` hand-made blocks.
    fn fake_ring(blocks: usize) -> BlockRing {
        BlockRing {
            map: fake_map(BS, blocks, BLK_STATUS),
            block: 0,
            cursor: None,
            released: 0,
        }
    }

    /// `count` units of `unit` bytes in anonymous memory, all the
    /// kernel's (zero status).
    fn fake_map(unit: usize, count: usize, status_at: usize) -> RingMap {
        // SAFETY: a fresh private anonymous mapping.
        let base = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                NonZeroUsize::new(unit * count).unwrap(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .unwrap();
        RingMap {
            base: base.cast(),
            unit,
            count,
            status_at,
        }
    }

    /// Unit `i` of `map`, writable (the test's own mapping).
    fn unit_mut(map: &mut RingMap, i: usize) -> &mut [u8] {
        assert!(i < map.count);
        // SAFETY: in bounds of the test's own mapping, which nobody else
        // writes; the returned borrow ties up `map`.
        unsafe { std::slice::from_raw_parts_mut(map.base.as_ptr().add(i * map.unit), map.unit) }
    }

    fn block_mut(ring: &mut BlockRing, b: usize) -> &mut [u8] {
        unit_mut(&mut ring.map, b)
    }

    fn put32(blk: &mut [u8], off: usize, v: u32) {
        blk[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    /// Write a frame header, virtio-net header and frame at `off` as
    /// tpacket_rcv does; returns the offset of the next frame.
    fn put_frame(
        blk: &mut [u8],
        off: usize,
        vnet: [u8; VNET_HDR_LEN],
        frame: &[u8],
        snaplen: usize,
    ) -> usize {
        let size = (MAC + snaplen).next_multiple_of(8);
        put32(blk, off + TP3_NEXT, size as u32);
        put32(blk, off + TP3_SNAPLEN, snaplen as u32);
        put32(blk, off + TP3_LEN, frame.len() as u32);
        blk[off + TP3_MAC..off + TP3_MAC + 2].copy_from_slice(&(MAC as u16).to_ne_bytes());
        blk[off + MAC - VNET_HDR_LEN..off + MAC].copy_from_slice(&vnet);
        blk[off + MAC..off + MAC + snaplen].copy_from_slice(&frame[..snaplen]);
        off + size
    }

    /// Hand block `b` to "user space" with `n` frames from offset 48.
    fn hand_over(ring: &mut BlockRing, b: usize, n: u32, first: u32) {
        let blk = block_mut(ring, b);
        put32(blk, BLK_NUM_PKTS, n);
        put32(blk, BLK_FIRST, first);
        ring.map.status(b).store(TP_STATUS_USER, Ordering::Release);
    }

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[12] = 0x08;
        f[13] = 0x00;
        f
    }

    /// The second batch of both ring tests: frame 100 (9th) came with a
    /// partial checksum, frame 102 (10th) with its 802.1ad tag put back.
    fn partial_and_tagged(batch: &PacketBatch) {
        let p100 = &batch.packets()[8];
        assert_eq!(
            p100.csum,
            Csum::Partial {
                start: 34,
                offset: 16
            }
        );
        assert_eq!(p100.data(), &frame(100, 80)[..]);
        let mut f102 = frame(102, 64);
        f102.splice(12..12, [0x88, 0xa8, 0x20, 0x05]);
        assert_eq!(batch.packets()[9].data(), &f102[..]);
    }

    /// A port reading `ring` (its socket, one end of a Unix pair, is
    /// never read: the ring holds what it receives).
    fn dev_with(ring: RxRing) -> Netdev {
        dev_with_socket(ring).0
    }

    /// As `dev_with`, also returning the other end of the port's socket
    /// (what is sent there is queued on the port's socket).
    fn dev_with_socket(ring: RxRing) -> (Netdev, std::os::unix::net::UnixDatagram) {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let dev = Netdev {
            ring: Some(ring),
            tx: None,
            backing: Backing::Socket(OwnedFd::from(ours)),
            name: "test".into(),
            stats: PortStats::default(),
            drop_log: LogLimit::default(),
            kernel_drops: Cell::new(0),
        };
        (dev, theirs)
    }

    /// The port's block ring.
    fn blocks(dev: &mut Netdev) -> &mut BlockRing {
        match dev.ring.as_mut() {
            Some(RxRing::Blocks(r)) => r,
            r => panic!("not a block ring: {r:?}"),
        }
    }

    #[test]
    fn ring_blocks_are_read_across_calls_and_malformed_ones_dropped() {
        let mut ring = fake_ring(8);
        let none = [0u8; VNET_HDR_LEN];
        let mut partial = none;
        partial[0] = VNET_F_NEEDS_CSUM;
        partial[6..8].copy_from_slice(&34u16.to_le_bytes());
        partial[8..10].copy_from_slice(&16u16.to_le_bytes());
        // Block 0: 40 frames, more than a batch.
        let blk = block_mut(&mut ring, 0);
        let mut off = 48;
        for i in 0..40u8 {
            off = put_frame(
                blk,
                off,
                none,
                &frame(i, 60 + usize::from(i)),
                60 + usize::from(i),
            );
        }
        hand_over(&mut ring, 0, 40, 48);
        // Block 1: a checksum-partial frame, a cut one, a good one.
        let blk = block_mut(&mut ring, 1);
        let off = put_frame(blk, 48, partial, &frame(100, 80), 80);
        let off = put_frame(blk, off, none, &frame(101, 3000), 1000);
        put_frame(blk, off, none, &frame(102, 64), 64);
        // ... reported with an 802.1ad tag (TCI 0x2005) taken out of it.
        put32(
            blk,
            off + TP3_STATUS,
            TP_STATUS_USER | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID,
        );
        put32(blk, off + TP3_VLAN_TCI, 0x2005);
        blk[off + TP3_VLAN_TPID..off + TP3_VLAN_TPID + 2].copy_from_slice(&0x88a8u16.to_ne_bytes());
        hand_over(&mut ring, 1, 3, 48);
        // Block 2: a good frame, then one whose header lies past the end.
        let blk = block_mut(&mut ring, 2);
        put_frame(blk, 48, none, &frame(103, 64), 64);
        put32(blk, 48 + TP3_NEXT, (BS - 48 - 4) as u32);
        hand_over(&mut ring, 2, 5, 48);
        // Block 3: the first frame far outside the block.
        hand_over(&mut ring, 3, 1, u32::MAX);
        // Block 4: a frame offset and length pointing outside the block.
        let blk = block_mut(&mut ring, 4);
        put_frame(blk, 48, none, &frame(104, 64), 64);
        blk[48 + TP3_MAC..48 + TP3_MAC + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        hand_over(&mut ring, 4, 1, 48);
        // Block 5: a good frame claiming to be the last, two counted.
        let blk = block_mut(&mut ring, 5);
        put_frame(blk, 48, none, &frame(105, 64), 64);
        put32(blk, 48 + TP3_NEXT, 0);
        hand_over(&mut ring, 5, 2, 48);
        // Block 6 stays the kernel's.

        let mut dev = dev_with(RxRing::Blocks(ring));
        let mut batch = PacketBatch::new();
        assert_eq!(dev.recv(&mut batch), RecvStatus::More);
        assert_eq!(batch.len(), MAX_BURST);
        let ring = blocks(&mut dev);
        assert_eq!(ring.block, 0);
        assert_eq!(ring.cursor.map(|c| c.0), Some(40 - MAX_BURST as u32));
        assert_eq!(ring.map.status(0).load(Ordering::Acquire), TP_STATUS_USER);
        let mut tags: Vec<u8> = batch.packets().iter().map(|p| p.data()[0]).collect();
        for p in batch.packets() {
            assert_eq!(p.len(), 60 + usize::from(p.data()[0]));
        }
        batch.clear();
        assert_eq!(dev.recv(&mut batch), RecvStatus::Idle);
        tags.extend(batch.packets().iter().map(|p| p.data()[0]));
        let want: Vec<u8> = (0..40).chain([100, 102, 103, 105]).collect();
        assert_eq!(tags, want);
        partial_and_tagged(&batch);
        assert_eq!(dev.stats.rx_packets, 44);
        assert_eq!(dev.stats.rx_dropped, 1, "the cut frame");
        assert_eq!(dev.stats.rx_errors, 4, "blocks 2 to 5");
        let ring = blocks(&mut dev);
        for b in 0..6 {
            assert_eq!(
                ring.map.status(b).load(Ordering::Acquire),
                TP_STATUS_KERNEL,
                "block {b}"
            );
        }
        assert_eq!((ring.block, ring.released, ring.cursor), (6, 6, None));
        // The ring wraps around: blocks 6, 7, then 0 again.
        for (b, tag) in [(6, 110), (7, 111), (0, 112)] {
            let blk = block_mut(ring, b);
            put_frame(blk, 48, none, &frame(tag, 70), 70);
            hand_over(ring, b, 1, 48);
        }
        batch.clear();
        assert_eq!(dev.recv(&mut batch), RecvStatus::Idle);
        let tags: Vec<u8> = batch.packets().iter().map(|p| p.data()[0]).collect();
        assert_eq!(tags, [110, 111, 112]);
        // A tag would not fit a frame of the largest size: dropped.
        let mut rx = none.to_vec();
        rx.extend_from_slice(&frame(113, xennet_datapath::buffer::MAX_FRAME - 2));
        batch.clear();
        let dropped = dev.stats.rx_dropped;
        dev.take_frame(&rx, Some([0x81, 0, 0, 1]), &mut batch);
        assert!(batch.is_empty());
        assert_eq!(dev.stats.rx_dropped, dropped + 1);
        assert_eq!(blocks(&mut dev).block, 1);
    }

    /// Where the kernel puts the frame in a `TPACKET_V2` slot of a
    /// `SOCK_RAW` ring with a virtio-net header:
    /// TPACKET_ALIGN(32 + 20 + 16) + 10 - 14.
    const MAC2: usize = 76;

    /// A frame ring of `frames` slots in anonymous memory, all the
    /// kernel's, for feeding `recv` hand-made slots.
    fn fake_frames(frames: usize) -> FrameRing {
        FrameRing {
            map: fake_map(FRAME_SIZE, frames, TP2_STATUS),
            frame: 0,
        }
    }

    /// Write a frame into slot `i` as tpacket_rcv does (`snaplen` bytes
    /// of it stored at `mac`) and hand the slot over with `status`.
    fn put_slot(
        ring: &mut FrameRing,
        i: usize,
        (vnet, frame, snaplen, mac): ([u8; VNET_HDR_LEN], &[u8], usize, usize),
        status: u32,
    ) {
        let slot = unit_mut(&mut ring.map, i);
        put32(slot, TP2_LEN, frame.len() as u32);
        put32(slot, TP2_SNAPLEN, snaplen as u32);
        slot[TP2_MAC..TP2_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
        let stored = mac
            .checked_sub(VNET_HDR_LEN)
            .and_then(|start| slot.get_mut(start..mac + snaplen));
        if let Some(d) = stored {
            d[..VNET_HDR_LEN].copy_from_slice(&vnet);
            d[VNET_HDR_LEN..].copy_from_slice(&frame[..snaplen]);
        }
        ring.map.status(i).store(status, Ordering::Release);
    }

    /// The port's frame ring.
    fn frames(dev: &mut Netdev) -> &mut FrameRing {
        match dev.ring.as_mut() {
            Some(RxRing::Frames(r)) => r,
            r => panic!("not a frame ring: {r:?}"),
        }
    }

    #[test]
    fn ring_slots_are_read_in_order_and_malformed_ones_dropped() {
        const N: usize = 64;
        let mut ring = fake_frames(N);
        let none = [0u8; VNET_HDR_LEN];
        let mut partial = none;
        partial[0] = VNET_F_NEEDS_CSUM;
        partial[6..8].copy_from_slice(&34u16.to_le_bytes());
        partial[8..10].copy_from_slice(&16u16.to_le_bytes());
        let user = TP_STATUS_USER;
        // Slots 0-39: more frames than a batch.
        for i in 0..40u8 {
            let f = frame(i, 60 + usize::from(i));
            put_slot(&mut ring, i.into(), (none, &f, f.len(), MAC2), user);
        }
        let f = frame(100, 80);
        put_slot(&mut ring, 40, (partial, &f, 80, MAC2), user);
        // Cut short with no copy on the socket (its buffer was full).
        let f = frame(101, 3000);
        put_slot(&mut ring, 41, (none, &f, FRAME_SIZE - MAC2, MAC2), user);
        // Reported with an 802.1ad tag (TCI 0x2005) taken out of it.
        let f = frame(102, 64);
        let vlan = user | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
        put_slot(&mut ring, 42, (none, &f, 64, MAC2), vlan);
        {
            let slot = unit_mut(&mut ring.map, 42);
            slot[TP2_VLAN_TCI..TP2_VLAN_TCI + 2].copy_from_slice(&0x2005u16.to_ne_bytes());
            slot[TP2_VLAN_TPID..TP2_VLAN_TPID + 2].copy_from_slice(&0x88a8u16.to_ne_bytes());
        }
        // A frame offset inside the slot header, and one past its end.
        let f = frame(103, 64);
        put_slot(&mut ring, 43, (none, &f, 64, 8), user);
        put_slot(&mut ring, 44, (none, &f, 64, FRAME_SIZE - 10), user);
        // A frame larger than a slot, whole on the socket.
        let big = frame(104, 5000);
        put_slot(
            &mut ring,
            45,
            (none, &big, FRAME_SIZE - MAC2, MAC2),
            user | libc::TP_STATUS_COPY,
        );
        // A slot saying so with nothing on the socket.
        put_slot(
            &mut ring,
            46,
            (none, &big, FRAME_SIZE - MAC2, MAC2),
            user | libc::TP_STATUS_COPY,
        );
        let f = frame(105, 64);
        put_slot(&mut ring, 47, (none, &f, 64, MAC2), user);
        // Slot 48 stays the kernel's.

        let (mut dev, theirs) = dev_with_socket(RxRing::Frames(ring));
        let mut sent = none.to_vec();
        sent.extend_from_slice(&big);
        theirs.send(&sent).unwrap();
        let mut batch = PacketBatch::new();
        assert_eq!(dev.recv(&mut batch), RecvStatus::More);
        assert_eq!(batch.len(), MAX_BURST);
        assert_eq!(frames(&mut dev).frame, MAX_BURST);
        let mut tags: Vec<u8> = batch.packets().iter().map(|p| p.data()[0]).collect();
        batch.clear();
        assert_eq!(dev.recv(&mut batch), RecvStatus::Idle);
        tags.extend(batch.packets().iter().map(|p| p.data()[0]));
        let want: Vec<u8> = (0..40).chain([100, 102, 104, 105]).collect();
        assert_eq!(tags, want);
        partial_and_tagged(&batch);
        assert_eq!(batch.packets()[10].data(), &big[..]);
        assert_eq!(dev.stats.rx_packets, 44);
        assert_eq!(dev.stats.rx_dropped, 1, "the cut frame");
        assert_eq!(dev.stats.rx_errors, 3, "slots 43, 44 and 46");
        let ring = frames(&mut dev);
        for i in 0..48 {
            assert_eq!(
                ring.map.status(i).load(Ordering::Acquire),
                TP_STATUS_KERNEL,
                "slot {i}"
            );
        }
        assert_eq!(ring.frame, 48);
        // The ring wraps around.
        for (i, tag) in (48..N).chain([0, 1]).zip(110u8..) {
            let f = frame(tag, 70);
            put_slot(ring, i, (none, &f, 70, MAC2), user);
        }
        let mut tags = Vec::new();
        loop {
            batch.clear();
            let st = dev.recv(&mut batch);
            tags.extend(batch.packets().iter().map(|p| p.data()[0]));
            if st == RecvStatus::Idle {
                break;
            }
        }
        assert_eq!(tags, (110u8..110 + 18).collect::<Vec<_>>());
        assert_eq!(frames(&mut dev).frame, 2);
    }
}

/// The receive paths against a real Linux stack: a veth pair in a
/// private network namespace, frames sent into one end by another port,
/// read at the other.
#[cfg(test)]
mod veth_tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::process::Command;
    use std::time::{Duration, Instant};

    const DST: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    const SRC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];

    /// Run `f` on a thread of its own in a fresh network namespace (gone
    /// with the thread and its sockets: nothing to clean up).
    fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (a network namespace): run scripts/test as root"
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
                f()
            })
            .join()
            .expect("test thread")
        })
    }

    fn ip(args: &[&str]) {
        let st = Command::new("ip").args(args).status().expect("running ip");
        assert!(st.success(), "ip {args:?} failed");
    }

    /// An IPv4 TCP frame carrying `seq` and `payload` bytes of payload.
    fn tcp_frame(seq: u32, payload: usize) -> Vec<u8> {
        let mut f = Vec::with_capacity(54 + payload);
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x08, 0x00]);
        let tot = (20 + 20 + payload) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f.extend_from_slice(&[10, 9, 0, 1, 10, 9, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend((0..payload).map(|i| (i as u32 ^ seq) as u8));
        f
    }

    /// A checksum-partial TCP GSO packet (MSS 1448) of `payload` bytes
    /// carrying `seq`, as a veth hands one over.
    fn gso_packet(seq: u32, payload: usize) -> Packet {
        let mut p = Packet::from_slice(&tcp_frame(seq, payload));
        p.csum = Csum::Partial {
            start: 34,
            offset: 16,
        };
        p.gso = Some(Gso {
            kind: GsoType::TcpV4,
            mss: 1448,
        });
        p
    }

    /// Send rounds of small frames and 64 KiB TCP GSO frames (3.5 MiB in
    /// all, more than the ring) from `tx` into the veth that `rx` reads,
    /// draining `rx` as the switch would; check every frame arrives once,
    /// intact, with its offloads. Returns whether a `recv` ever stopped
    /// inside a ring block (batch full).
    fn exchange(rx: &mut Netdev, tx: &mut Netdev) -> bool {
        const SMALL: u32 = 600;
        const GSO: u32 = 12;
        const ROUNDS: u32 = 4;
        const GSO_PAYLOAD: usize = 65_000;
        let mut want = BTreeSet::new();
        let mut got = BTreeSet::new();
        let mut stopped_inside = false;
        let mut batch = PacketBatch::new();
        // The batch comes with only FREE slots free (as when a port is
        // read into a batch other ports already put packets in), so that
        // any block of more frames is read in several calls.
        const FREE: usize = 5;
        let mut order = Vec::new();
        let mut sent_order = Vec::new();
        let mut drain = |rx: &mut Netdev, got: &mut BTreeSet<u32>, stopped: &mut bool| loop {
            batch.clear();
            while batch.len() < MAX_BURST - FREE {
                batch.push_slot();
            }
            let st = rx.recv(&mut batch);
            if st == RecvStatus::More
                && matches!(&rx.ring, Some(RxRing::Blocks(r)) if r.cursor.is_some())
            {
                *stopped = true;
            }
            for p in &batch.packets()[MAX_BURST - FREE..] {
                let d = p.data();
                if d.len() < 54 || d[..6] != DST {
                    continue; // the namespace's own traffic
                }
                let seq = u32::from_be_bytes([d[38], d[39], d[40], d[41]]);
                let gso = seq % 1000 == 999;
                let expect = tcp_frame(
                    seq,
                    if gso {
                        GSO_PAYLOAD
                    } else {
                        20 + (seq % 200) as usize
                    },
                );
                assert!(
                    d == &expect[..],
                    "frame {seq} arrived changed ({} bytes)",
                    d.len()
                );
                if gso {
                    assert_eq!(p.gso.map(|g| (g.kind, g.mss)), Some((GsoType::TcpV4, 1448)));
                    assert_eq!(
                        p.csum,
                        Csum::Partial {
                            start: 34,
                            offset: 16
                        }
                    );
                }
                assert!(got.insert(seq), "frame {seq} arrived twice");
                order.push(seq);
            }
            if st == RecvStatus::Idle {
                break;
            }
        };
        for round in 0..ROUNDS {
            let mut pkts = Vec::new();
            for i in 0..SMALL {
                let seq = round * 1_000_000 + i;
                // One GSO frame every SMALL / GSO small ones.
                if i % (SMALL / GSO) == 0 {
                    let gseq = round * 1_000_000 + 1000 * (i + 1) + 999;
                    pkts.push(gso_packet(gseq, GSO_PAYLOAD));
                    want.insert(gseq);
                    sent_order.push(gseq);
                }
                pkts.push(Packet::from_slice(&tcp_frame(
                    seq,
                    20 + (seq % 200) as usize,
                )));
                want.insert(seq);
                sent_order.push(seq);
            }
            for chunk in pkts.chunks(MAX_BURST) {
                let refs: Vec<&Packet> = chunk.iter().collect();
                tx.send(&refs);
                // Each burst is read before the next is sent (the rest of a
                // ring block arrives when the kernel retires it), so that
                // the test never depends on the socket buffer's size.
                let deadline = Instant::now() + Duration::from_secs(30);
                let seq_of = |p: &Packet| {
                    let d = p.data();
                    u32::from_be_bytes([d[38], d[39], d[40], d[41]])
                };
                loop {
                    drain(rx, &mut got, &mut stopped_inside);
                    let arrived = chunk.iter().all(|p| got.contains(&seq_of(p)));
                    if arrived || Instant::now() >= deadline {
                        break;
                    }
                    let mut pfd = [nix::poll::PollFd::new(
                        rx.fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16));
                }
            }
        }
        assert_eq!(tx.stats().tx_dropped, 0);
        assert_eq!(tx.stats().tx_packets, want.len() as u64);
        let missing: Vec<_> = want.difference(&got).take(10).collect();
        assert!(
            missing.is_empty(),
            "frames never arrived: {missing:?}... ({} of {})",
            want.len() - got.len(),
            want.len()
        );
        assert_eq!(rx.stats().rx_dropped, 0);
        assert!(order == sent_order, "frames arrived out of order");
        stopped_inside
    }

    /// How `dev` receives.
    fn path_of(dev: &Netdev) -> RxPath {
        match dev.ring {
            Some(RxRing::Frames(_)) => RxPath::FrameRing,
            Some(RxRing::Blocks(_)) => RxPath::BlockRing,
            None => RxPath::Recvmmsg,
        }
    }

    fn veth_pair() {
        ip(&["link", "add", "xa", "type", "veth", "peer", "name", "xb"]);
        ip(&["link", "set", "xa", "up"]);
        ip(&["link", "set", "xb", "up"]);
    }

    #[test]
    fn the_block_ring_carries_small_and_gso_frames_intact() {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open("xa", true).unwrap();
            assert_eq!(path_of(&rx), RxPath::BlockRing, "no TPACKET_V3 ring");
            let mut tx = Netdev::open("xb", false).unwrap();
            let stopped_inside = exchange(&mut rx, &mut tx);
            assert!(stopped_inside, "no recv stopped inside a block");
            let Some(RxRing::Blocks(ring)) = &rx.ring else {
                unreachable!()
            };
            // 3.5 MiB through a 2 MiB ring: it wrapped around.
            assert!(
                ring.released > RING_BLOCKS as u64,
                "{} blocks",
                ring.released
            );
        });
    }

    /// The default path: small frames through the ring's slots (2400 of
    /// them through 1024 slots), 64 KiB GSO frames whole through the
    /// socket, all in the order sent.
    #[test]
    fn the_frame_ring_carries_small_and_gso_frames_intact() {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open("xa", false).unwrap();
            assert_eq!(path_of(&rx), RxPath::FrameRing, "no TPACKET_V2 ring");
            let mut tx = Netdev::open("xb", false).unwrap();
            exchange(&mut rx, &mut tx);
        });
    }

    /// VLAN-tagged frames (802.1Q and 802.1ad): the kernel takes the tag
    /// out before packet sockets see a frame; both receive paths put it
    /// back.
    fn tagged_frames_arrive_tagged(path: RxPath) {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open_with("xa", path).unwrap();
            assert_eq!(path_of(&rx), path);
            let mut tx = Netdev::open("xb", false).unwrap();
            let mut q = tcp_frame(7, 100);
            q.splice(12..12, [0x81, 0x00, 0x20, 0x0a]); // PCP 1, VID 10
            let mut ad = tcp_frame(8, 1400);
            ad.splice(12..12, [0x88, 0xa8, 0x00, 0x14]); // VID 20
            tx.send(&[&Packet::from_slice(&q), &Packet::from_slice(&ad)]);
            let mut got = Vec::new();
            let mut batch = PacketBatch::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while got.len() < 2 && Instant::now() < deadline {
                let mut pfd = [nix::poll::PollFd::new(
                    rx.fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16));
                batch.clear();
                rx.recv(&mut batch);
                got.extend(
                    batch
                        .packets()
                        .iter()
                        .filter(|p| p.data().get(..6) == Some(&DST[..]))
                        .map(|p| p.data().to_vec()),
                );
            }
            assert_eq!(got, [q, ad]);
        });
    }

    /// A device that goes down leaves an error on the socket
    /// (`packet_notifier`: ENETDOWN), which polls as readable until read;
    /// the ring's `recv` reads it (else the forwarding thread would spin)
    /// and frames flow again once the device is up.
    #[test]
    fn the_frame_ring_takes_the_error_of_a_device_going_down() {
        ring_takes_the_error_of_a_device_going_down(RxPath::FrameRing);
    }

    #[test]
    fn the_block_ring_takes_the_error_of_a_device_going_down() {
        ring_takes_the_error_of_a_device_going_down(RxPath::BlockRing);
    }

    fn ring_takes_the_error_of_a_device_going_down(path: RxPath) {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open_with("xa", path).unwrap();
            assert_eq!(path_of(&rx), path);
            let mut tx = Netdev::open("xb", false).unwrap();
            let poll = |rx: &Netdev, ms: u16| {
                let mut pfd = [nix::poll::PollFd::new(
                    rx.fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)).unwrap();
                pfd[0].revents().unwrap_or(nix::poll::PollFlags::empty())
            };
            ip(&["link", "set", "xa", "down"]);
            assert!(poll(&rx, 5000).contains(nix::poll::PollFlags::POLLERR));
            let mut batch = PacketBatch::new();
            // The first calls may find blocks of the namespace's own
            // frames from before; the error is taken by the first call
            // that finds nothing to read.
            for _ in 0..100 {
                batch.clear();
                if rx.recv(&mut batch) == RecvStatus::Idle && rx.stats().rx_errors > 0 {
                    break;
                }
                poll(&rx, 100);
            }
            assert_eq!(rx.stats().rx_errors, 1);
            assert!(
                !poll(&rx, 0).contains(nix::poll::PollFlags::POLLERR),
                "the socket still polls an error"
            );
            ip(&["link", "set", "xa", "up"]);
            let f = tcp_frame(9, 100);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut got = false;
            while !got && Instant::now() < deadline {
                // The veth carries frames once both ends are up again.
                tx.send(&[&Packet::from_slice(&f)]);
                poll(&rx, 100);
                batch.clear();
                rx.recv(&mut batch);
                got = batch.packets().iter().any(|p| p.data() == &f[..]);
            }
            assert!(got, "no frame after the device came back up");
        });
    }

    /// The frame ring read while frames arrive: a sender thread streams
    /// small frames and 64 KiB GSO frames (which wait on the socket) as
    /// fast as it can while the port is read in a busy loop, so reads
    /// meet slots the kernel is still writing. Every frame arrives in the
    /// order sent or is counted as dropped by the kernel, and no slot is
    /// taken for malformed.
    #[test]
    fn the_frame_ring_keeps_order_while_frames_arrive() {
        const FRAMES_SENT: u32 = 4000;
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open("xa", false).unwrap();
            assert_eq!(path_of(&rx), RxPath::FrameRing);
            let mut order = Vec::new();
            std::thread::scope(|sc| {
                sc.spawn(|| {
                    let mut tx = Netdev::open("xb", false).unwrap();
                    for chunk in 0..FRAMES_SENT / 25 {
                        let pkts: Vec<Packet> = (0..25)
                            .map(|i| {
                                let seq = chunk * 25 + i;
                                if i == 0 {
                                    gso_packet(seq, 65_000)
                                } else {
                                    Packet::from_slice(&tcp_frame(seq, 60))
                                }
                            })
                            .collect();
                        let refs: Vec<&Packet> = pkts.iter().collect();
                        tx.send(&refs);
                    }
                });
                let mut batch = PacketBatch::new();
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut quiet_since = Instant::now();
                while Instant::now() < deadline {
                    batch.clear();
                    rx.recv(&mut batch);
                    let before = order.len();
                    for p in batch.packets() {
                        let d = p.data();
                        if d.len() >= 54 && d[..6] == DST {
                            order.push(u32::from_be_bytes([d[38], d[39], d[40], d[41]]));
                        }
                    }
                    if order.len() > before {
                        quiet_since = Instant::now();
                    } else if order.last() == Some(&(FRAMES_SENT - 1))
                        || quiet_since.elapsed() > Duration::from_secs(2)
                    {
                        break;
                    }
                }
            });
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "frames arrived out of order"
            );
            let st = rx.stats();
            assert_eq!(st.rx_errors, 0);
            assert_eq!(
                order.len() as u64 + st.rx_dropped,
                u64::from(FRAMES_SENT),
                "frames neither received nor counted as dropped"
            );
        });
    }

    /// The frames addressed to `DST` that `rx` receives until there are
    /// `n` (or 10 s passed), in order.
    fn receive(rx: &mut Netdev, n: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut batch = PacketBatch::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < n && Instant::now() < deadline {
            batch.clear();
            if rx.recv(&mut batch) == RecvStatus::Idle {
                let mut pfd = [nix::poll::PollFd::new(
                    rx.fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(50u16));
            }
            got.extend(
                batch
                    .packets()
                    .iter()
                    .filter(|p| p.data().starts_with(&DST))
                    .map(|p| p.data().to_vec()),
            );
        }
        got
    }

    fn has_tx_ring(dev: &Netdev) -> bool {
        matches!(dev.tx, Some(TxSocket { ring: Some(_), .. }))
    }

    /// A frame the device refuses (over the MTU of the veth's other end,
    /// which then drops it: `ENOBUFS`) is dropped and counted alone: the
    /// frames around it arrive in order, and the ring goes on (the kernel
    /// left its head on the refused frame, see `TxRing`). A frame over the
    /// port's own MTU is not put in the ring: `sendmmsg` refuses it
    /// (`EMSGSIZE`), also alone.
    #[test]
    fn the_transmit_ring_drops_only_the_frame_the_device_refuses() {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open("xa", false).unwrap();
            let mut tx = Netdev::open("xb", false).unwrap();
            assert!(has_tx_ring(&tx), "no transmit ring");
            ip(&["link", "set", "xa", "mtu", "1000"]);
            let frames: Vec<Vec<u8>> = [(1, 100), (2, 1046), (3, 100), (5, 1600), (4, 200)]
                .into_iter()
                .map(|(seq, len)| tcp_frame(seq, len))
                .collect();
            assert!(
                frames[1].len() <= tx.ring_frame_limit(),
                "the 1100-byte frame takes the ring"
            );
            assert!(frames[3].len() > tx.ring_frame_limit());
            let pkts: Vec<Packet> = frames.iter().map(|f| Packet::from_slice(f)).collect();
            tx.send(&pkts.iter().collect::<Vec<_>>());
            assert_eq!(tx.stats().tx_dropped, 2);
            assert_eq!(tx.stats().tx_packets, 3);
            let want = vec![frames[0].clone(), frames[2].clone(), frames[4].clone()];
            assert!(
                receive(&mut rx, 3) == want,
                "not the three frames, in order"
            );
            for _ in 0..TX_FRAMES {
                tx.send(&[&pkts[0]]);
            }
            assert_eq!(tx.stats().tx_packets, 3 + TX_FRAMES as u64);
            assert_eq!(receive(&mut rx, TX_FRAMES).len(), TX_FRAMES);
            assert_eq!(tx.stats().tx_dropped, 2);
        });
    }

    /// A device whose queue is full (a token bucket that holds one frame)
    /// drops frames (`ENOBUFS`): every frame of the burst is sent or
    /// counted dropped, the call returns, and frames flow again once the
    /// queue is gone.
    #[test]
    fn the_transmit_ring_drops_what_a_full_device_queue_refuses() {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open("xa", false).unwrap();
            let mut tx = Netdev::open("xb", false).unwrap();
            assert!(has_tx_ring(&tx), "no transmit ring");
            let tc = |args: &[&str]| {
                let st = Command::new("tc")
                    .args(args)
                    .status()
                    .expect("running tc (iproute2)");
                assert!(st.success(), "tc {args:?} failed");
            };
            tc(&[
                "qdisc", "add", "dev", "xb", "root", "tbf", "rate", "8kbit", "burst", "1600",
                "limit", "1600",
            ]);
            let pkts: Vec<Packet> = (0..64)
                .map(|i| Packet::from_slice(&tcp_frame(200 + i, 100)))
                .collect();
            tx.send(&pkts.iter().collect::<Vec<_>>());
            let st = tx.stats();
            assert_eq!(st.tx_packets + st.tx_dropped, 64, "{st:?}");
            assert!(st.tx_dropped > 0, "the queue took all 64 frames");
            tc(&["qdisc", "del", "dev", "xb", "root"]);
            let f = tcp_frame(9, 100);
            tx.send(&[&Packet::from_slice(&f)]);
            // Frames the bucket let through earlier may come first.
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !got.contains(&f) && Instant::now() < deadline {
                got.extend(receive(&mut rx, 1));
            }
            assert!(got.contains(&f), "no frame arrives after the queue is gone");
        });
    }

    /// While the port's device is down, frames sent are dropped and
    /// counted (`ENETDOWN`); once it is up again, what is sent then
    /// arrives and none of the dropped frames does.
    #[test]
    fn the_transmit_ring_drops_while_the_device_is_down() {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open("xa", false).unwrap();
            let mut tx = Netdev::open("xb", false).unwrap();
            assert!(has_tx_ring(&tx), "no transmit ring");
            ip(&["link", "set", "xb", "down"]);
            let old: Vec<Packet> = (0..10)
                .map(|i| Packet::from_slice(&tcp_frame(100 + i, 80)))
                .collect();
            // Twice: the second send finds the first's frames still in
            // the ring, which the kernel cannot skip while the device is
            // down.
            tx.send(&old[..5].iter().collect::<Vec<_>>());
            tx.send(&old[5..].iter().collect::<Vec<_>>());
            assert_eq!(tx.stats().tx_dropped, 10);
            assert_eq!(tx.stats().tx_packets, 0);
            ip(&["link", "set", "xb", "up"]);
            let new = tcp_frame(7, 80);
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while got.is_empty() && Instant::now() < deadline {
                tx.send(&[&Packet::from_slice(&new)]);
                got = receive(&mut rx, 1);
            }
            assert!(got == vec![new.clone()], "not only the new frame arrived");
            // Nothing else is on its way.
            tx.send(&[&Packet::from_slice(&new)]);
            assert!(receive(&mut rx, 2) == vec![new], "a dropped frame arrived");
            assert!(tx.stats().tx_packets >= 2);
        });
    }

    /// Frames go out through the port's sending socket and are not read
    /// back by its receiving one (`PACKET_IGNORE_OUTGOING`): sent out of
    /// `xa`, they arrive at `xb` and never at `xa`.
    #[test]
    fn a_port_does_not_read_back_what_it_sends() {
        in_private_netns(|| {
            veth_pair();
            let mut a = Netdev::open("xa", false).unwrap();
            assert!(a.tx.is_some(), "no sending socket apart");
            let mut b = Netdev::open("xb", false).unwrap();
            let f = tcp_frame(11, 100);
            let mut seen_a = 0;
            let mut seen_b = 0;
            let mut batch = PacketBatch::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while seen_b < 3 && Instant::now() < deadline {
                a.send(&[&Packet::from_slice(&f)]);
                std::thread::sleep(Duration::from_millis(20));
                for (dev, seen) in [(&mut a, &mut seen_a), (&mut b, &mut seen_b)] {
                    batch.clear();
                    dev.recv(&mut batch);
                    *seen += batch
                        .packets()
                        .iter()
                        .filter(|p| p.data() == &f[..])
                        .count();
                }
            }
            assert!(seen_b >= 3, "the frames never reached the peer");
            assert_eq!(seen_a, 0, "the port read back its own frames");
            assert_eq!(a.stats().tx_dropped, 0);
        });
    }

    #[test]
    fn the_frame_ring_puts_vlan_tags_back() {
        tagged_frames_arrive_tagged(RxPath::FrameRing);
    }

    #[test]
    fn the_block_ring_puts_vlan_tags_back() {
        tagged_frames_arrive_tagged(RxPath::BlockRing);
    }

    #[test]
    fn recvmmsg_puts_vlan_tags_back() {
        tagged_frames_arrive_tagged(RxPath::Recvmmsg);
    }

    #[test]
    fn recvmmsg_carries_small_and_gso_frames_intact() {
        in_private_netns(|| {
            veth_pair();
            let mut rx = Netdev::open_with("xa", RxPath::Recvmmsg).unwrap();
            assert_eq!(path_of(&rx), RxPath::Recvmmsg);
            // Raised with SO_RCVBUFFORCE (tests run as root, beyond any
            // rmem_max); the kernel reports twice what was set.
            assert_eq!(rcvbuf(&rx.fd()), 2 * RCVBUF_BYTES);
            let mut tx = Netdev::open("xb", false).unwrap();
            exchange(&mut rx, &mut tx);
        });
    }

    /// `SO_RCVBUF` of socket `fd`, in bytes (twice what was set).
    fn rcvbuf(fd: &impl AsFd) -> usize {
        nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::RcvBuf).unwrap()
    }

    /// Take `CAP_NET_ADMIN` out of the calling thread's effective
    /// capabilities (capset(2) acts on the calling thread only).
    fn drop_cap_net_admin() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        const CAP_NET_ADMIN: u32 = 12;
        let mut h = Header {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut d = [Data::default(); 2];
        // SAFETY: version 3 takes a header and two data structs, which
        // live across the calls.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()),
                0
            );
            d[0].effective &= !(1 << CAP_NET_ADMIN);
            assert_eq!(
                libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()),
                0
            );
        }
    }

    /// Without `CAP_NET_ADMIN` the kernel refuses `SO_RCVBUFFORCE`; the
    /// port still raises its buffer with `SO_RCVBUF`, as far as
    /// `net.core.rmem_max` allows, and receives.
    #[test]
    fn without_cap_net_admin_the_buffer_is_raised_up_to_rmem_max() {
        in_private_netns(|| {
            veth_pair();
            let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let default: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_default")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let want = 2 * RCVBUF_BYTES.min(max);
            assert_ne!(want, default, "rmem_max leaves nothing to tell apart");
            drop_cap_net_admin();
            // The kernel now refuses SO_RCVBUFFORCE in this thread.
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let probe = OwnedFd::from(probe);
            assert_eq!(
                nix::sys::socket::setsockopt(
                    &probe,
                    nix::sys::socket::sockopt::RcvBufForce,
                    &(1 << 20)
                ),
                Err(nix::errno::Errno::EPERM)
            );
            let mut rx = Netdev::open_with("xa", RxPath::Recvmmsg).unwrap();
            assert_eq!(rcvbuf(&rx.fd()), want);
            let mut tx = Netdev::open("xb", false).unwrap();
            exchange(&mut rx, &mut tx);
        });
    }
}
