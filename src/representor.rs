//! Representor net devices: one tap device per Xen vif, named as Linux
//! netback names the vif's device (`vif<domid>.<handle>`, cut to
//! `IFNAMSIZ - 1` bytes), so that `ip link` lists a guest's vif, Xen's
//! hotplug scripts (Debian's unmodified `vif-openvswitch`) find the device
//! they run `ip link set` on, and `tcpdump -i vifD.N` shows the guest's
//! traffic.
//!
//! The device is a *mirror*, not the port: xennetd switches the vif's
//! frames itself, and writes a copy of each (both directions: from the
//! guest and to the guest) into the device, where packet sockets see them
//! as received. Frames the host sends into the device are not switched:
//! they are read, counted (`xennet/representor-show`) and dropped. Linux
//! netback's vif is a real port of the host; ours only shows.
//!
//! Cost: the rule is *mirror only while someone watches*, that is while the
//! device is up **and** promiscuous (`IFF_UP | IFF_PROMISC` in
//! `/sys/class/net/<dev>/flags`; tcpdump puts the device in promiscuous
//! mode unless given `-p`, and `ip link set vifD.N promisc on` turns the
//! mirror on for good). A housekeeping thread refreshes one flag per device
//! once a second ([`REFRESH`]) and drains what the host sent; the
//! forwarding thread only reads that flag per batch, so an unwatched vif
//! pays one relaxed atomic load per batch and nothing per packet. A watched
//! vif pays one `writev` per frame. Mirroring starts up to a second after
//! tcpdump does.
//!
//! The device has netback's MAC address `fe:ff:ff:ff:ff:ff`, `IFF_NOARP`
//! and IPv6 disabled, so the host's stack neither answers mirrored ARP
//! requests nor sends its own chatter into it. It lives from the moment the
//! backend device appears in xenstore (before the hotplug script runs, as
//! netback's) until the backend directory goes; it is not persistent, so a
//! crashed xennetd leaves none behind.
//!
//! `[emulated_xen] representors = false` turns them off.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use xennet_datapath::{Packet, PacketBatch, Port, PortFeatures, PortStats, RecvStatus};

use crate::tap::{TapDevice, IFF_PROMISC, IFF_UP, VNET_HDR_LEN};

/// How often the watch flag is refreshed and host frames are drained.
pub const REFRESH: Duration = Duration::from_secs(1);
/// Most frames the host sent into a representor that one refresh reads
/// (and drops); the rest wait for the next refresh or the socket's limit.
const DRAIN_PER_REFRESH: usize = 256;
/// Netback's vif MAC address (`xen-netback`/Xen's hotplug scripts).
pub const VIF_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

/// A vif's representor device.
#[derive(Debug)]
pub struct Representor {
    vif: String,
    tap: TapDevice,
    /// Up and promiscuous at the last refresh: mirror.
    watching: AtomicBool,
    /// Frames copied into the device.
    mirrored: AtomicU64,
    /// Copies the device refused (queue full, device down).
    mirror_dropped: AtomicU64,
    /// Frames the host sent into the device, dropped.
    host_dropped: AtomicU64,
}

/// Live representors by vif name.
fn registry() -> &'static Mutex<BTreeMap<String, Weak<Representor>>> {
    static REG: OnceLock<Mutex<BTreeMap<String, Weak<Representor>>>> = OnceLock::new();
    REG.get_or_init(|| {
        if let Err(e) = std::thread::Builder::new()
            .name("representors".into())
            .spawn(housekeeping)
        {
            tracing::warn!("representors: cannot start the housekeeping thread: {e}");
        }
        Mutex::new(BTreeMap::new())
    })
}

/// The device name of vif `vif` (`vif<domid>.<handle>`): cut to 15 bytes,
/// as Linux netback's `snprintf(name, IFNAMSIZ, "vif%u.%u", ...)`.
pub fn device_name(vif: &str) -> String {
    let mut n = vif.to_owned();
    while n.len() >= libc::IFNAMSIZ {
        n.pop();
    }
    n
}

impl Representor {
    /// Create the representor of vif `vif` (registered so that the vif's
    /// port mirrors into it, see [`wrap`]); it goes when the last `Arc` is
    /// dropped.
    ///
    /// # Errors
    /// The tap could not be created (see [`TapDevice::create`]; `EBUSY`
    /// when another process has a tap of that name).
    pub fn create(vif: &str) -> std::io::Result<Arc<Representor>> {
        let name = device_name(vif);
        // The host's frames are dropped: no offloads, complete frames.
        let tap = TapDevice::create(&name, 0, false)?;
        if let Err(e) = crate::tap::set_mac(tap.name(), VIF_MAC) {
            tracing::debug!("{name}: setting the MAC address: {e}");
        }
        if let Err(e) = crate::tap::set_noarp(tap.name()) {
            tracing::debug!("{name}: setting NOARP: {e}");
        }
        let ipv6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", tap.name());
        if let Err(e) = std::fs::write(&ipv6, "1") {
            tracing::debug!("{ipv6}: {e}");
        }
        let r = Arc::new(Representor {
            vif: vif.to_owned(),
            tap,
            watching: AtomicBool::new(false),
            mirrored: AtomicU64::new(0),
            mirror_dropped: AtomicU64::new(0),
            host_dropped: AtomicU64::new(0),
        });
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        reg.insert(vif.to_owned(), Arc::downgrade(&r));
        tracing::info!("{vif}: representor device {} created", r.tap.name());
        Ok(r)
    }

    /// The device name.
    pub fn name(&self) -> &str {
        self.tap.name()
    }

    /// Whether frames are being mirrored (as of the last refresh).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::Relaxed)
    }

    /// Copy `p` into the device.
    fn mirror(&self, p: &Packet) {
        if crate::netdev::write_tap(self.tap.fd(), p) {
            self.mirrored.fetch_add(1, Ordering::Relaxed);
        } else {
            self.mirror_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refresh the watch flag and drop what the host sent.
    fn refresh(&self, buf: &mut [u8]) {
        let flags = crate::tap::sysfs_flags(self.tap.name()).unwrap_or(0);
        let watch = flags & (IFF_UP | IFF_PROMISC) == IFF_UP | IFF_PROMISC;
        if self.watching.swap(watch, Ordering::Relaxed) != watch {
            tracing::info!(
                "{}: {} mirroring into {}",
                self.vif,
                if watch { "started" } else { "stopped" },
                self.tap.name()
            );
        }
        // Bounded: a host process writing into the device without pause
        // must not keep this (shared) housekeeping thread here.
        for _ in 0..DRAIN_PER_REFRESH {
            // SAFETY: `buf` is writable for its length.
            let r = unsafe {
                libc::read(
                    self.tap.fd().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if r <= 0 {
                break;
            }
            self.host_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Representor {
    fn drop(&mut self) {
        tracing::info!(
            "{}: representor device {} removed",
            self.vif,
            self.tap.name()
        );
    }
}

fn live() -> Vec<Arc<Representor>> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter_map(Weak::upgrade)
        .collect()
}

fn housekeeping() {
    let mut buf = vec![0u8; VNET_HDR_LEN + 65_536];
    loop {
        std::thread::sleep(REFRESH);
        for r in live() {
            r.refresh(&mut buf);
        }
    }
}

/// The representor of vif `vif`, if one exists.
pub fn lookup(vif: &str) -> Option<Arc<Representor>> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(vif)
        .and_then(Weak::upgrade)
}

/// The port of vif `name`, mirroring into its representor if it has one.
pub fn wrap(name: &str, port: Box<dyn Port>) -> Box<dyn Port> {
    match lookup(name) {
        Some(rep) => Box::new(Mirrored { inner: port, rep }),
        None => port,
    }
}

/// A representor's state and counters, as of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// The vif's name (`vif1.0`).
    pub vif: String,
    /// The device's name.
    pub device: String,
    /// Whether frames are being mirrored (as of the last refresh).
    pub mirroring: bool,
    /// Frames copied into the device.
    pub mirrored: u64,
    /// Copies the device refused (queue full, device down).
    pub mirror_dropped: u64,
    /// Frames the host sent into the device, dropped.
    pub host_dropped: u64,
}

/// Every live representor's counters, by vif name.
pub fn counters() -> Vec<Counters> {
    live()
        .iter()
        .map(|r| Counters {
            vif: r.vif.clone(),
            device: r.name().to_owned(),
            mirroring: r.watching(),
            mirrored: r.mirrored.load(Ordering::Relaxed),
            mirror_dropped: r.mirror_dropped.load(Ordering::Relaxed),
            host_dropped: r.host_dropped.load(Ordering::Relaxed),
        })
        .collect()
}

/// `xennet/representor-show`: every representor, its state and counters.
pub fn show() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<15} {:<9} {:>10} {:>12} {:>12}",
        "vif", "device", "mirroring", "mirrored", "mirror-drop", "host-dropped"
    );
    for c in counters() {
        let _ = writeln!(
            out,
            "{:<10} {:<15} {:<9} {:>10} {:>12} {:>12}",
            c.vif,
            c.device,
            if c.mirroring { "yes" } else { "no" },
            c.mirrored,
            c.mirror_dropped,
            c.host_dropped
        );
    }
    out
}

/// A vif's port that copies its frames into the representor while it is
/// watched.
#[derive(Debug)]
struct Mirrored {
    inner: Box<dyn Port>,
    rep: Arc<Representor>,
}

impl Port for Mirrored {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn event_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.inner.event_fd()
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        let start = batch.len();
        let st = self.inner.recv(batch);
        if self.rep.watching() {
            for p in &batch.packets()[start..] {
                self.rep.mirror(p);
            }
        }
        st
    }

    fn send(&mut self, pkts: &[&Packet]) {
        if self.rep.watching() {
            for p in pkts {
                self.rep.mirror(p);
            }
        }
        self.inner.send(pkts);
    }

    fn features(&self) -> PortFeatures {
        self.inner.features()
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_cut_to_ifnamsiz() {
        assert_eq!(device_name("vif1.0"), "vif1.0");
        assert_eq!(device_name("vif32751.65535"), "vif32751.65535");
        assert_eq!(device_name("vif12345.1234567"), "vif12345.123456");
    }
}
