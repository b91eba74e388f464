//! Patch ports: OVS `type=patch` interfaces with `options:peer`, a pair of
//! ports on two bridges (or one) where what is output to one end is
//! received by the other.
//!
//! OVS translates across a patch port inside one `xlate` run (its bridges
//! share one datapath). xennet runs one forwarding thread per bridge, so
//! an end's [`Port::send`] copies the packets into the other end's bounded
//! queue ([`QUEUE_LEN`] packets; beyond it they are dropped and counted in
//! `tx_dropped`) and writes the other end's eventfd, which that bridge's
//! thread polls as it polls any port. Buffers go back and forth between the
//! ends, so a steady flow allocates nothing.
//!
//! Ends find each other by name in a [`PatchRegistry`]: `p0` with
//! `peer=p1` and `p1` with `peer=p0` are linked whichever is opened first;
//! an end whose peer does not exist, is not a patch port, or names another
//! peer is not linked, and drops (and counts) what is output to it. As OVS
//! (`ofport_update_peer` in `ofproto/ofproto-dpif.c`), that is not a
//! configuration error: the interface gets an OpenFlow port and its link is
//! down until its peer appears.
//!
//! Metadata crossing the pair as OVS's `patch_port_output` keeps it: the
//! tunnel metadata and `pkt_mark` cross, connection tracking state, the
//! recirculation id and the datapath hash do not.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use nix::sys::eventfd::{EfdFlags, EventFd};
use xennet_datapath::buffer::{CtMeta, Packet, PacketBatch};
use xennet_datapath::port::{Port, PortFeatures, PortStats, RecvStatus};

/// Packets an end queues for its bridge's thread before dropping.
pub const QUEUE_LEN: usize = 256;

/// `IFNAMSIZ` - 1: the longest interface name.
const MAX_NAME: usize = 15;

/// Why a patch interface's options are refused; the texts are OVS's
/// (`set_patch_config` in `lib/netdev-vport.c`), written to the
/// Interface's `error` column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchConfigError {
    /// No `peer` option.
    #[error("{0}: patch type requires valid 'peer' argument")]
    NoPeer(String),
    /// Options other than `peer`.
    #[error("{0}: patch type takes only a 'peer' argument")]
    ExtraOptions(String),
    /// `peer` names the interface itself.
    #[error("{0}: patch peer must not be self")]
    PeerIsSelf(String),
    /// `peer` is longer than an interface name may be.
    #[error("{0}: patch 'peer' arg too long")]
    PeerTooLong(String),
}

/// The peer a patch interface named `name` with `options` asks for.
pub fn parse_options(
    name: &str,
    options: &BTreeMap<String, String>,
) -> Result<String, PatchConfigError> {
    let Some(peer) = options.get("peer").filter(|p| !p.is_empty()) else {
        return Err(PatchConfigError::NoPeer(name.to_owned()));
    };
    if options.len() > 1 {
        return Err(PatchConfigError::ExtraOptions(name.to_owned()));
    }
    if peer == name {
        return Err(PatchConfigError::PeerIsSelf(name.to_owned()));
    }
    if peer.len() > MAX_NAME {
        return Err(PatchConfigError::PeerTooLong(name.to_owned()));
    }
    Ok(peer.clone())
}

#[derive(Debug, Default)]
struct Queue {
    /// Packets for this end's bridge, oldest first.
    rx: VecDeque<Packet>,
    /// Spare buffers the other end fills.
    free: Vec<Packet>,
}

#[derive(Debug, Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
}

#[derive(Debug)]
struct End {
    name: String,
    peer_name: String,
    queue: Mutex<Queue>,
    efd: EventFd,
    peer: Mutex<Weak<End>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every open patch end of a switch, by interface name.
#[derive(Debug, Default)]
pub struct PatchRegistry {
    ends: Mutex<BTreeMap<String, Weak<End>>>,
}

impl PatchRegistry {
    /// An empty registry.
    pub fn new() -> Arc<PatchRegistry> {
        Arc::new(PatchRegistry::default())
    }

    /// Open end `name` whose peer is `peer`; it links with `peer` if that
    /// end is open and names `name` as its peer. An end of the same name
    /// still open (a port moving between bridges) is replaced.
    pub fn open(self: &Arc<Self>, name: &str, peer: &str) -> std::io::Result<PatchPort> {
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        let end = Arc::new(End {
            name: name.to_owned(),
            peer_name: peer.to_owned(),
            queue: Mutex::new(Queue::default()),
            efd,
            peer: Mutex::new(Weak::new()),
            counters: Counters::default(),
        });
        let mut ends = lock(&self.ends);
        ends.insert(name.to_owned(), Arc::downgrade(&end));
        relink(&mut ends);
        drop(ends);
        Ok(PatchPort {
            end,
            registry: self.clone(),
        })
    }

    /// Names of the open ends and the peer each is linked to, if any
    /// (for diagnostics).
    pub fn links(&self) -> Vec<(String, Option<String>)> {
        lock(&self.ends)
            .values()
            .filter_map(Weak::upgrade)
            .map(|e| {
                let peer = lock(&e.peer).upgrade().map(|p| p.name.clone());
                (e.name.clone(), peer)
            })
            .collect()
    }

    fn close(&self, end: &Arc<End>) {
        let mut ends = lock(&self.ends);
        let same = ends
            .get(&end.name)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(end)));
        if same {
            ends.remove(&end.name);
        }
        *lock(&end.peer) = Weak::new();
        relink(&mut ends);
    }
}

/// Link every end to its peer where the two name each other; forget
/// closed ends.
fn relink(ends: &mut BTreeMap<String, Weak<End>>) {
    ends.retain(|_, w| w.strong_count() > 0);
    for w in ends.values() {
        let Some(e) = w.upgrade() else { continue };
        let peer = ends
            .get(&e.peer_name)
            .and_then(Weak::upgrade)
            .filter(|p| p.peer_name == e.name);
        let new = peer.as_ref().map(Arc::downgrade).unwrap_or_default();
        let mut cur = lock(&e.peer);
        if !Weak::ptr_eq(&cur, &new) {
            tracing::info!(
                "patch port {}: {}",
                e.name,
                match &peer {
                    Some(p) => format!("linked to {}", p.name),
                    None => format!(
                        "peer {} is not a patch port naming it: link down",
                        e.peer_name
                    ),
                }
            );
            *cur = new;
        }
    }
}

/// A whether-linked view of a patch end, kept by the control plane for
/// the port's link state (`ovs-ofctl show`, Interface `link_state`).
#[derive(Debug, Clone)]
pub struct PatchLink(Arc<End>);

impl PatchLink {
    /// Whether the end is linked to its peer.
    pub fn is_up(&self) -> bool {
        lock(&self.0.peer).strong_count() > 0
    }

    /// The peer this end names.
    pub fn peer_name(&self) -> &str {
        &self.0.peer_name
    }
}

/// One end of a patch port pair, as its bridge's forwarding thread drives
/// it. Dropping it unlinks the pair.
#[derive(Debug)]
pub struct PatchPort {
    end: Arc<End>,
    registry: Arc<PatchRegistry>,
}

impl PatchPort {
    /// The end's link view.
    pub fn link(&self) -> PatchLink {
        PatchLink(self.end.clone())
    }
}

impl Drop for PatchPort {
    fn drop(&mut self) {
        self.registry.close(&self.end);
    }
}

impl Port for PatchPort {
    fn name(&self) -> &str {
        &self.end.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.end.efd.as_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        let _ = self.end.efd.read();
        let mut q = lock(&self.end.queue);
        let (mut n, mut bytes) = (0u64, 0u64);
        while !batch.is_full() {
            let Some(mut p) = q.rx.pop_front() else { break };
            let Some(slot) = batch.push_slot() else {
                q.rx.push_front(p);
                break;
            };
            n += 1;
            bytes += p.len() as u64;
            // The slot's old buffer becomes a spare for the other end.
            std::mem::swap(slot, &mut p);
            if q.free.len() < QUEUE_LEN {
                q.free.push(p);
            }
        }
        let more = !q.rx.is_empty();
        drop(q);
        let c = &self.end.counters;
        c.rx_packets.fetch_add(n, Ordering::Relaxed);
        c.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        if more {
            RecvStatus::More
        } else {
            RecvStatus::Idle
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        let c = &self.end.counters;
        let peer = lock(&self.end.peer).upgrade();
        let Some(peer) = peer else {
            c.tx_dropped.fetch_add(pkts.len() as u64, Ordering::Relaxed);
            return;
        };
        let (mut sent, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        let mut q = lock(&peer.queue);
        let was_empty = q.rx.is_empty();
        for p in pkts {
            if q.rx.len() >= QUEUE_LEN {
                dropped += 1;
                continue;
            }
            let mut b = q.free.pop().unwrap_or_default();
            b.clone_from_packet(p);
            b.md.ct = CtMeta::default();
            b.md.recirc_id = 0;
            b.md.dp_hash = 0;
            q.rx.push_back(b);
            sent += 1;
            bytes += p.len() as u64;
        }
        drop(q);
        if was_empty && sent > 0 {
            let _ = peer.efd.write(1);
        }
        c.tx_packets.fetch_add(sent, Ordering::Relaxed);
        c.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        c.tx_dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    fn features(&self) -> PortFeatures {
        // Super-frames and partial checksums cross as they are; the
        // bridge that outputs them to a device finishes them.
        PortFeatures {
            csum_partial: true,
            gso: true,
        }
    }

    fn stats(&self) -> PortStats {
        let c = &self.end.counters;
        PortStats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_bytes: c.rx_bytes.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_bytes: c.tx_bytes.load(Ordering::Relaxed),
            tx_dropped: c.tx_dropped.load(Ordering::Relaxed),
            ..PortStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn frame(tag: u8) -> Packet {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, tag]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        Packet::from_slice(&f)
    }

    fn recv_all(p: &mut PatchPort) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut b = PacketBatch::new();
            let st = p.recv(&mut b);
            out.extend(b.packets().iter().map(|p| p.data().to_vec()));
            if st != RecvStatus::More {
                return out;
            }
        }
    }

    #[test]
    fn options_are_checked_as_ovs_does() {
        assert_eq!(
            parse_options("p0", &opts(&[("peer", "p1")])),
            Ok("p1".into())
        );
        assert_eq!(
            parse_options("p0", &opts(&[])).unwrap_err().to_string(),
            "p0: patch type requires valid 'peer' argument"
        );
        assert_eq!(
            parse_options("p0", &opts(&[("peer", "p1"), ("x", "1")])),
            Err(PatchConfigError::ExtraOptions("p0".into()))
        );
        assert_eq!(
            parse_options("p0", &opts(&[("peer", "p0")])),
            Err(PatchConfigError::PeerIsSelf("p0".into()))
        );
        assert_eq!(
            parse_options("p0", &opts(&[("peer", "a-name-too-long-for-linux")])),
            Err(PatchConfigError::PeerTooLong("p0".into()))
        );
    }

    #[test]
    fn a_pair_links_in_either_order_and_carries_packets_both_ways() {
        let reg = PatchRegistry::new();
        let mut p0 = reg.open("p0", "p1").unwrap();
        assert!(!p0.link().is_up());
        // Unlinked: dropped and counted.
        p0.send(&[&frame(1)]);
        assert_eq!(p0.stats().tx_dropped, 1);
        let mut p1 = reg.open("p1", "p0").unwrap();
        assert!(p0.link().is_up() && p1.link().is_up());

        let mut f = frame(2);
        f.md.tunnel.id = 42;
        f.md.pkt_mark = 7;
        f.md.ct.state = 0x21;
        f.md.recirc_id = 3;
        p0.send(&[&f, &frame(3)]);
        assert_eq!(
            p1.end.efd.read().ok(),
            Some(1),
            "the peer's thread is woken"
        );
        let _ = p1.end.efd.write(1);
        let mut b = PacketBatch::new();
        assert_eq!(p1.recv(&mut b), RecvStatus::Idle);
        let got = b.packets();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data()[11], 2);
        assert_eq!(got[0].md.tunnel.id, 42);
        assert_eq!(got[0].md.pkt_mark, 7);
        assert_eq!(got[0].md.ct, CtMeta::default());
        assert_eq!(got[0].md.recirc_id, 0);
        assert_eq!(got[1].data()[11], 3);

        p1.send(&[&frame(4)]);
        assert_eq!(recv_all(&mut p0)[0][11], 4);
        let (s0, s1) = (p0.stats(), p1.stats());
        assert_eq!((s0.tx_packets, s0.rx_packets, s0.tx_dropped), (2, 1, 1));
        assert_eq!((s1.tx_packets, s1.rx_packets), (1, 2));
        assert_eq!(s0.tx_bytes, s1.rx_bytes);

        drop(p1);
        assert!(!p0.link().is_up());
        p0.send(&[&frame(5)]);
        assert_eq!(p0.stats().tx_dropped, 2);
    }

    #[test]
    fn ends_naming_other_peers_stay_down() {
        let reg = PatchRegistry::new();
        let p0 = reg.open("p0", "p1").unwrap();
        let p1 = reg.open("p1", "p2").unwrap();
        assert!(!p0.link().is_up() && !p1.link().is_up());
        // p1 re-opened naming p0 (its options changed): now linked.
        drop(p1);
        let p1 = reg.open("p1", "p0").unwrap();
        assert!(p0.link().is_up() && p1.link().is_up());
        // A newer end of the same name replaces the older one; closing the
        // older one then leaves the link alone.
        let p1b = reg.open("p1", "p0").unwrap();
        drop(p1);
        assert!(p0.link().is_up() && p1b.link().is_up());
        assert_eq!(reg.links().len(), 2);
    }

    #[test]
    fn the_queue_is_bounded_and_overflow_is_counted() {
        let reg = PatchRegistry::new();
        let mut p0 = reg.open("p0", "p1").unwrap();
        let mut p1 = reg.open("p1", "p0").unwrap();
        let f = frame(1);
        let pkts = vec![&f; QUEUE_LEN + 10];
        p0.send(&pkts);
        assert_eq!(p0.stats().tx_packets, QUEUE_LEN as u64);
        assert_eq!(p0.stats().tx_dropped, 10);
        assert_eq!(recv_all(&mut p1).len(), QUEUE_LEN);
        // Buffers came back as spares: the next round reuses them.
        assert_eq!(lock(&p1.end.queue).free.len(), QUEUE_LEN);
        p0.send(&pkts[..5]);
        assert_eq!(lock(&p1.end.queue).free.len(), QUEUE_LEN - 5);
    }
}
