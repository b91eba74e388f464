//! Linux tap devices with the virtio-net header (`IFF_VNET_HDR`), so that
//! checksum-partial frames cross the tap as they are instead of being
//! checksummed or, worse, sent with a wrong checksum.
//!
//! Each frame read or written is preceded by `struct virtio_net_hdr`
//! (10 bytes, little-endian on x86; `linux/virtio_net.h`):
//! `flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16,
//! csum_offset u16`.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Size of `struct virtio_net_hdr` in bytes.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum from `csum_start`, store at
/// `csum_start + csum_offset`.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: checksum already verified.
pub const VNET_F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const VNET_GSO_NONE: u8 = 0;

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;
const TUN_F_TSO6: libc::c_ulong = 0x04;
const TUN_F_TSO_ECN: libc::c_ulong = 0x08;
/// `TUNSETOFFLOAD` bits for a tap whose reader takes checksum-partial and
/// TCP GSO frames (`linux/if_tun.h`).
pub const TAP_OFFLOADS_ALL: libc::c_ulong = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
/// `IFF_UP` (`linux/if.h`).
pub const IFF_UP: u32 = 0x1;
/// `IFF_PROMISC` (`linux/if.h`).
pub const IFF_PROMISC: u32 = 0x100;
/// `IFF_NOARP` (`linux/if.h`).
const IFF_NOARP: libc::c_short = 0x80;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()),
    IfReq
);
nix::ioctl_write_int_bad!(
    tunsetoffload,
    nix::request_code_write!(b'T', 208, std::mem::size_of::<libc::c_uint>())
);
nix::ioctl_write_int_bad!(
    tunsetpersist,
    nix::request_code_write!(b'T', 203, std::mem::size_of::<libc::c_int>())
);

/// A tap device this process created (or attached to), with the virtio-net
/// header on and the fd non-blocking. While it lives the device exists;
/// dropping it removes the device (a persistent device is made
/// non-persistent first, as OVS's netdev-linux does for its taps).
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
    persist: bool,
}

impl TapDevice {
    /// Create (or attach to an existing, unowned) tap `name`, which must be
    /// 1-15 bytes, taking the `TUNSETOFFLOAD` bits `offloads` from the
    /// kernel; `persist` keeps the device if this process dies without
    /// dropping it (so a restarted daemon finds it again).
    ///
    /// # Errors
    /// `InvalidInput` for a bad name; the `TUNSETIFF` error (`EBUSY`: another
    /// process holds the tap; `EINVAL`: a device of another kind has the
    /// name; `EPERM`: no `CAP_NET_ADMIN`).
    pub fn create(name: &str, offloads: libc::c_ulong, persist: bool) -> io::Result<TapDevice> {
        let (file, name) = open_tap(name, offloads as libc::c_int)?;
        if persist {
            use std::os::fd::AsRawFd;
            // SAFETY: TUNSETPERSIST takes an integer by value.
            unsafe { tunsetpersist(file.as_raw_fd(), 1) }.map_err(io::Error::from)?;
        }
        Ok(TapDevice {
            file,
            name,
            persist,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tap's fd: reads return what the host sent out of the device,
    /// each frame after a virtio-net header; writes go into the host.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for TapDevice {
    fn drop(&mut self) {
        if self.persist {
            use std::os::fd::AsRawFd;
            // SAFETY: as in `create`.
            let _ = unsafe { tunsetpersist(self.file.as_raw_fd(), 0) };
        }
    }
}

fn open_tap(name: &str, offloads: libc::c_int) -> io::Result<(File, String)> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tap name {name:?} must be 1-15 bytes"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    use std::os::fd::AsRawFd;
    // SAFETY: TUNSETIFF reads a `struct ifreq` (name + flags, padded to
    // 40 bytes) that lives for the duration of the call; the fd is ours.
    unsafe { tunsetiff(file.as_raw_fd(), &req) }.map_err(io::Error::from)?;
    // SAFETY: TUNSETOFFLOAD takes the offload bits by value.
    unsafe { tunsetoffload(file.as_raw_fd(), offloads) }.map_err(io::Error::from)?;
    let end = req
        .name
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(req.name.len());
    let name = CStr::from_bytes_with_nul(&[&req.name[..end], &[0]].concat())
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| name.to_string());
    Ok((file, name))
}

/// `struct ifreq` with a `sockaddr` (SIOCSIFHWADDR) or flags (SIOC*IFFLAGS).
#[repr(C)]
struct IfReqAddr {
    name: [u8; libc::IFNAMSIZ],
    family: libc::c_ushort,
    data: [u8; 22],
}

/// An `AF_INET` datagram socket for interface ioctls.
fn ioctl_socket() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2) has no memory arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

fn ifreq_ioctl(name: &str, req: libc::c_ulong, r: &mut IfReqAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    r.name = [0; libc::IFNAMSIZ];
    r.name[..name.len()].copy_from_slice(name.as_bytes());
    let sock = ioctl_socket()?;
    // SAFETY: `r` is a 40-byte `struct ifreq` living across the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), req as _, r as *mut IfReqAddr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the MAC address of device `name` (SIOCSIFHWADDR).
pub fn set_mac(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut r = IfReqAddr {
        name: [0; libc::IFNAMSIZ],
        family: libc::ARPHRD_ETHER,
        data: [0; 22],
    };
    r.data[..6].copy_from_slice(&mac);
    ifreq_ioctl(name, libc::SIOCSIFHWADDR, &mut r)
}

/// The MAC address of device `name` (SIOCGIFHWADDR, in this process's
/// network namespace).
pub fn get_mac(name: &str) -> io::Result<[u8; 6]> {
    let mut r = IfReqAddr {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 22],
    };
    ifreq_ioctl(name, libc::SIOCGIFHWADDR, &mut r)?;
    let mut mac = [0; 6];
    mac.copy_from_slice(&r.data[..6]);
    Ok(mac)
}

/// Whether device `name` is up and has a carrier (`IFF_UP` and
/// `IFF_RUNNING`, SIOCGIFFLAGS): OVS's `netdev_get_carrier` for a port
/// that is administratively up.
pub fn link_up(name: &str) -> io::Result<bool> {
    let mut r = IfReqAddr {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 22],
    };
    ifreq_ioctl(name, libc::SIOCGIFFLAGS, &mut r)?;
    let want = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_ushort;
    Ok(r.family & want == want)
}

/// Set `IFF_NOARP` on device `name`: the host neither answers nor sends
/// ARP on it.
pub fn set_noarp(name: &str) -> io::Result<()> {
    let mut r = IfReqAddr {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 22],
    };
    ifreq_ioctl(name, libc::SIOCGIFFLAGS, &mut r)?;
    // ifr_flags sits where a sockaddr's family would.
    r.family |= IFF_NOARP as libc::c_ushort;
    ifreq_ioctl(name, libc::SIOCSIFFLAGS, &mut r)
}

/// The kernel's flags of device `name` (`IFF_*`) as sysfs shows them
/// (`/sys/class/net/<name>/flags`): unlike `SIOCGIFFLAGS`, these include
/// `IFF_PROMISC` while a packet socket (tcpdump) holds the device in
/// promiscuous mode. `None` when the device is not in this sysfs.
pub fn sysfs_flags(name: &str) -> Option<u32> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// The parsed virtio-net header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VNET_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Bytes from the frame start where checksumming starts.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parse the first [`VNET_HDR_LEN`] bytes of `b` (which must hold them).
    pub fn parse(b: &[u8]) -> VnetHdr {
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
        }
    }

    /// Write the header into the first [`VNET_HDR_LEN`] bytes of `b`
    /// (GSO fields zero).
    pub fn emit(&self, b: &mut [u8]) {
        b[..VNET_HDR_LEN].fill(0);
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }
}

/// Whether a failed [`Tap::send`] is the kernel refusing that one frame,
/// to be dropped and counted, rather than the tap being broken:
/// `EINVAL` (shorter than an Ethernet header, or a virtio-net header that
/// does not fit the frame: `tun_get_user` in `drivers/net/tun.c`),
/// `EMSGSIZE`, `EFAULT`, and `EIO` (the device is down).
pub fn refuses_frame(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EMSGSIZE | libc::EFAULT | libc::EIO)
    )
}

/// A tap device opened non-blocking with the virtio-net header on, taking
/// checksum-partial frames (`TUN_F_CSUM`) but no GSO.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    buf: Vec<u8>,
}

impl Tap {
    /// Create (or attach to) tap `name` in the current network namespace.
    pub fn open(name: &str) -> io::Result<Tap> {
        let (file, name) = open_tap(name, TUN_F_CSUM as libc::c_int)?;
        Ok(Tap {
            file,
            name,
            buf: vec![0; VNET_HDR_LEN + 65_536],
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Read one frame; `Ok(None)` when none is waiting.
    pub fn recv(&mut self) -> io::Result<Option<(VnetHdr, &[u8])>> {
        match self.file.read(&mut self.buf) {
            Ok(n) if n >= VNET_HDR_LEN => {
                let hdr = VnetHdr::parse(&self.buf[..VNET_HDR_LEN]);
                Ok(Some((hdr, &self.buf[VNET_HDR_LEN..n])))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write one frame; a full device queue drops the frame (as a NIC
    /// would) and returns `Ok(false)`.
    pub fn send(&mut self, hdr: &VnetHdr, frame: &[u8]) -> io::Result<bool> {
        let n = VNET_HDR_LEN + frame.len();
        if n > self.buf.len() {
            return Ok(false);
        }
        hdr.emit(&mut self.buf[..VNET_HDR_LEN]);
        self.buf[VNET_HDR_LEN..n].copy_from_slice(frame);
        match self.file.write(&self.buf[..n]) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel refuses a frame shorter than an Ethernet header, and
    /// that is a refusal of the frame (dropped and counted by
    /// `xennet-guest`), not a broken tap. Needs root (a tap of its own,
    /// gone when closed).
    #[test]
    fn a_runt_is_refused_by_the_tap_not_fatal() {
        let name = format!("xtrunt{}", std::process::id() % 100_000);
        let mut tap = Tap::open(&name).expect("creating a tap (root needed)");
        let e = tap
            .send(&VnetHdr::default(), &[0u8; 13])
            .expect_err("a 13-byte frame must be refused");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        assert!(refuses_frame(&e));
        assert!(!refuses_frame(&io::Error::from_raw_os_error(libc::EBADF)));
    }
}
