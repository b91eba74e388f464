//! The NORMAL action for a standalone bridge: MAC learning and flooding
//! (OVS `ofproto/ofproto-dpif-xlate.c` `xlate_normal`, `lib/mac-learning.c`).
//!
//! # Behaviour
//!
//! - Frames with a multicast source (invalid) or to an IEEE 802.1D reserved
//!   address (`01:80:c2:00:00:0x`, STP/LACP/LLDP; OVS drops them unless
//!   `other_config:forward-bpdu` is set) are dropped.
//! - The source is learned on the input port, keyed by `(VLAN, MAC)`.
//! - A unicast destination learned on another port goes there; one learned
//!   on the input port is dropped (no hair-pinning); an unknown one, and
//!   any multicast or broadcast, is flooded to every enabled port but the
//!   input port.
//!
//! VLANs: every port behaves as OVS's default port without `tag` or
//! `trunks`, which carries all VLANs unchanged; for untagged traffic this
//! is an access port on VLAN 0. The VLAN (VID, 0 when untagged) is part of
//! the learning key, so the access/trunk modes can be added without
//! changing the table.
//!
//! # Megaflows
//!
//! Translation reads exactly `in_port`, `dl_src`, `dl_dst` and `vlan_tci`,
//! and the upcall mask says so and nothing more: all L3/L4 traffic between
//! two MACs shares one megaflow.
//!
//! # Revalidation
//!
//! [`Normal::generation`] changes whenever the table changes in a way that
//! can alter a forwarding decision: a new MAC (floods to it become
//! unicast), a moved MAC, an expiry or eviction, a flush. The datapath then
//! flushes its megaflows. Refreshing a MAC on the same port changes
//! nothing.
//!
//! # Aging
//!
//! Entries expire [`DEFAULT_AGING`] after they were last learned (OVS
//! `MAC_ENTRY_DEFAULT_IDLE_TIME`, 300 s). Learning happens on upcalls only,
//! so a MAC whose traffic all hits megaflows expires after 300 s, which
//! flushes the megaflows and relearns it from the next packet. The table
//! holds at most [`DEFAULT_MAX_ENTRIES`] (OVS `MAC_DEFAULT_MAX`, 8192);
//! when full the least recently learned entry is evicted.
//!
//! # Threads
//!
//! The table sits behind an `Arc<Mutex<..>>` shared with [`FdbHandle`]. The
//! forwarding thread takes the lock only in upcalls and housekeeping, never
//! per packet; the control plane takes it for `fdb/show`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use xennet_datapath::buffer::OFPP_LOCAL;
use xennet_datapath::flow::{Field, VLAN_VID_MASK};
use xennet_datapath::packet::MacAddr;
use xennet_datapath::{DpAction, FlowKey, FlowMask, OfPort, Packet, Upcall, UpcallHandler};

/// How long a learned MAC lives (OVS `MAC_ENTRY_DEFAULT_IDLE_TIME`).
pub const DEFAULT_AGING: Duration = Duration::from_secs(300);
/// Most MACs learned (OVS `MAC_DEFAULT_MAX`).
pub const DEFAULT_MAX_ENTRIES: usize = 8192;

#[derive(Debug, Clone, Copy)]
struct MacEntry {
    port: OfPort,
    learned: Instant,
}

/// The MAC learning table.
#[derive(Debug)]
struct Fdb {
    map: HashMap<(u16, MacAddr), MacEntry, foldhash::fast::RandomState>,
    max_entries: usize,
    aging: Duration,
}

impl Fdb {
    /// Learn `mac` on `port`; true if forwarding may change.
    fn learn(&mut self, vlan: u16, mac: MacAddr, port: OfPort, now: Instant) -> bool {
        if let Some(e) = self.map.get_mut(&(vlan, mac)) {
            let moved = e.port != port;
            e.port = port;
            e.learned = now;
            return moved;
        }
        if self.map.len() >= self.max_entries {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.learned)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        if self.max_entries > 0 {
            self.map
                .insert((vlan, mac), MacEntry { port, learned: now });
        }
        true
    }

    fn lookup(&self, vlan: u16, mac: MacAddr, now: Instant) -> Option<OfPort> {
        self.map
            .get(&(vlan, mac))
            .filter(|e| now.saturating_duration_since(e.learned) < self.aging)
            .map(|e| e.port)
    }

    /// Remove expired entries; returns how many.
    fn expire(&mut self, now: Instant) -> usize {
        let before = self.map.len();
        let aging = self.aging;
        self.map
            .retain(|_, e| now.saturating_duration_since(e.learned) < aging);
        before - self.map.len()
    }
}

fn lock(f: &Mutex<Fdb>) -> MutexGuard<'_, Fdb> {
    f.lock().unwrap_or_else(|e| e.into_inner())
}

/// NORMAL translation for a standalone bridge; an [`UpcallHandler`].
#[derive(Debug)]
pub struct Normal {
    fdb: Arc<Mutex<Fdb>>,
    generation: Arc<AtomicU64>,
}

/// Control-plane view of a [`Normal`]'s MAC table; cheap to clone.
#[derive(Debug, Clone)]
pub struct FdbHandle {
    fdb: Arc<Mutex<Fdb>>,
    generation: Arc<AtomicU64>,
}

impl Normal {
    /// A NORMAL handler with OVS's default aging (300 s) and size (8192).
    pub fn new() -> (Normal, FdbHandle) {
        Self::with_limits(DEFAULT_MAX_ENTRIES, DEFAULT_AGING)
    }

    /// A NORMAL handler with a given table size and aging time
    /// (OVS `other_config:mac-table-size` and `mac-aging-time`).
    pub fn with_limits(max_entries: usize, aging: Duration) -> (Normal, FdbHandle) {
        let fdb = Arc::new(Mutex::new(Fdb {
            map: HashMap::default(),
            max_entries,
            aging,
        }));
        let generation = Arc::new(AtomicU64::new(0));
        (
            Normal {
                fdb: fdb.clone(),
                generation: generation.clone(),
            },
            FdbHandle { fdb, generation },
        )
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The megaflow mask NORMAL produces: in_port, dl_src, dl_dst and
    /// vlan_tci, exact.
    pub fn mask() -> FlowMask {
        let mut m = FlowMask::default();
        m.set_exact(Field::InPort)
            .set_exact(Field::DlSrc)
            .set_exact(Field::DlDst)
            .set_exact(Field::VlanTci);
        m
    }

    /// Translate at time `now` (see the module docs).
    pub fn translate(&mut self, key: &FlowKey, ports: &[OfPort], now: Instant) -> Upcall {
        let mut up = Upcall {
            mask: Self::mask(),
            actions: Vec::new(),
            counters: Vec::new(),
        };
        let in_port = key.in_port();
        let src = key.dl_src();
        let dst = key.dl_dst();
        let vlan = key.vlan_tci() & VLAN_VID_MASK;
        if src.is_multicast() || dst.is_reserved() {
            return up;
        }
        let out = {
            let mut fdb = lock(&self.fdb);
            if fdb.learn(vlan, src, in_port, now) {
                self.bump();
            }
            if dst.is_multicast() {
                None
            } else {
                fdb.lookup(vlan, dst, now)
            }
        };
        match out {
            Some(p) if p == in_port => {}
            Some(p) if ports.contains(&p) => up.actions.push(DpAction::Output(p)),
            _ => up.actions.extend(
                ports
                    .iter()
                    .filter(|p| **p != in_port)
                    .map(|p| DpAction::Output(*p)),
            ),
        }
        up
    }

    /// Age the table at `now`.
    pub fn expire(&mut self, now: Instant) {
        if lock(&self.fdb).expire(now) > 0 {
            self.bump();
        }
    }
}

impl UpcallHandler for Normal {
    fn upcall(&mut self, key: &FlowKey, _pkt: &Packet, ports: &[OfPort]) -> Upcall {
        self.translate(key, ports, Instant::now())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn housekeeping(&mut self, now: Instant) {
        self.expire(now);
    }
}

impl FdbHandle {
    /// The table in `ovs-appctl fdb/show` format: a header line
    /// ` port  VLAN  MAC                Age`, then one line per entry, least
    /// recently learned first; age in seconds.
    pub fn show(&self) -> String {
        self.show_at(Instant::now())
    }

    /// [`FdbHandle::show`] as of `now`.
    pub fn show_at(&self, now: Instant) -> String {
        let fdb = lock(&self.fdb);
        let mut rows: Vec<_> = fdb.map.iter().collect();
        rows.sort_by_key(|((vlan, mac), e)| (e.learned, *vlan, *mac));
        let mut s = String::from(" port  VLAN  MAC                Age\n");
        for ((vlan, mac), e) in rows {
            let port = if e.port == OFPP_LOCAL {
                "LOCAL".to_owned()
            } else {
                e.port.to_string()
            };
            let age = now.saturating_duration_since(e.learned).as_secs();
            let _ = writeln!(s, "{port:>5}  {vlan:>4}  {mac}  {age:>3}");
        }
        s
    }

    /// Number of learned MACs.
    pub fn len(&self) -> usize {
        lock(&self.fdb).map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The port `mac` was learned on in `vlan`, if any.
    pub fn lookup(&self, vlan: u16, mac: MacAddr) -> Option<OfPort> {
        lock(&self.fdb).map.get(&(vlan, mac)).map(|e| e.port)
    }

    /// Forget every MAC (`ovs-appctl fdb/flush`); megaflows are flushed.
    pub fn flush(&self) {
        lock(&self.fdb).map.clear();
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forget the MACs learned on `port` (the port went away).
    pub fn flush_port(&self, port: OfPort) {
        let mut fdb = lock(&self.fdb);
        let before = fdb.map.len();
        fdb.map.retain(|_, e| e.port != port);
        if fdb.map.len() != before {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_datapath::flow::extract_frame;

    const A: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0x50, 0x54, 0, 0, 0, 0xb];
    const PORTS: [OfPort; 3] = [1, 2, 3];

    fn key(in_port: OfPort, src: [u8; 6], dst: [u8; 6]) -> FlowKey {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2(src, dst)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut v, b"hello")
            .unwrap();
        extract_frame(&v, in_port)
    }

    fn outs(up: &Upcall) -> Vec<OfPort> {
        up.actions
            .iter()
            .map(|a| match a {
                DpAction::Output(p) => *p,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn learns_floods_and_forwards() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        let g0 = n.generation();
        let up = n.translate(&key(1, A, B), &PORTS, t);
        assert_eq!(outs(&up), vec![2, 3], "unknown dst floods");
        assert_ne!(n.generation(), g0, "new MAC bumps generation");
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(1));
        let up = n.translate(&key(2, B, A), &PORTS, t);
        assert_eq!(outs(&up), vec![1], "learned dst is unicast");
        let up = n.translate(&key(1, A, B), &PORTS, t);
        assert_eq!(outs(&up), vec![2]);
        let up = n.translate(&key(3, A, [0xff; 6]), &PORTS, t);
        assert_eq!(outs(&up), vec![1, 2], "broadcast floods except in_port");
        let up = n.translate(&key(3, B, [0x01, 0, 0x5e, 0, 0, 1]), &PORTS, t);
        assert_eq!(outs(&up), vec![1, 2], "multicast floods");
    }

    #[test]
    fn no_hairpin() {
        let (mut n, _) = Normal::new();
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(1, B, A), &PORTS, t);
        let up = n.translate(&key(1, A, B), &PORTS, t);
        assert!(up.actions.is_empty(), "dst on in_port is dropped");
    }

    #[test]
    fn moved_mac_bumps_generation_refresh_does_not() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        let g = n.generation();
        n.translate(&key(1, A, B), &PORTS, t + Duration::from_secs(1));
        assert_eq!(n.generation(), g, "refresh on same port");
        n.translate(&key(2, A, B), &PORTS, t + Duration::from_secs(2));
        assert_ne!(n.generation(), g, "move");
        assert_eq!(fdb.lookup(0, MacAddr(A)), Some(2));
    }

    #[test]
    fn mask_is_l2_only() {
        let (mut n, _) = Normal::new();
        let up = n.translate(&key(1, A, B), &PORTS, Instant::now());
        for f in [Field::InPort, Field::DlSrc, Field::DlDst, Field::VlanTci] {
            assert!(up.mask.is_exact(f), "{f:?}");
        }
        for f in [
            Field::DlType,
            Field::NwSrc,
            Field::NwDst,
            Field::NwProto,
            Field::NwTos,
            Field::NwTtl,
            Field::NwFrag,
            Field::TpSrc,
            Field::TpDst,
            Field::TcpFlags,
        ] {
            assert!(up.mask.is_wildcarded(f), "{f:?}");
        }
    }

    #[test]
    fn bad_sources_and_reserved_dsts_are_dropped_unlearned() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        let up = n.translate(&key(1, [0xff; 6], B), &PORTS, t);
        assert!(up.actions.is_empty());
        let up = n.translate(&key(1, A, [0x01, 0x80, 0xc2, 0, 0, 0]), &PORTS, t);
        assert!(up.actions.is_empty());
        assert!(fdb.is_empty());
    }

    #[test]
    fn aging_and_eviction() {
        let (mut n, fdb) = Normal::with_limits(2, Duration::from_secs(300));
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t + Duration::from_secs(10));
        let c = [0x50, 0x54, 0, 0, 0, 0xc];
        n.translate(&key(3, c, A), &PORTS, t + Duration::from_secs(20));
        assert_eq!(fdb.len(), 2);
        assert_eq!(fdb.lookup(0, MacAddr(A)), None, "oldest evicted");
        let g = n.generation();
        n.expire(t + Duration::from_secs(305));
        assert_eq!(n.generation(), g, "nothing expired yet");
        n.expire(t + Duration::from_secs(311));
        assert_eq!(fdb.len(), 1);
        assert_ne!(n.generation(), g);
        let g = n.generation();
        fdb.flush();
        assert!(fdb.is_empty());
        assert_ne!(n.generation(), g);
    }

    #[test]
    fn show_format() {
        let (mut n, fdb) = Normal::new();
        let t = Instant::now();
        n.translate(&key(1, A, B), &PORTS, t);
        n.translate(&key(2, B, A), &PORTS, t + Duration::from_secs(3));
        assert_eq!(
            fdb.show_at(t + Duration::from_secs(5)),
            " port  VLAN  MAC                Age\n    \
             1     0  50:54:00:00:00:0a    5\n    \
             2     0  50:54:00:00:00:0b    2\n"
        );
    }

    #[test]
    fn through_the_datapath() {
        use xennet_datapath::memport::mem_port;
        use xennet_datapath::{Datapath, PortFeatures};
        let (normal, fdb) = Normal::new();
        let dp = Datapath::spawn("normal", Box::new(normal)).unwrap();
        let mut peers = Vec::new();
        for i in 1..=3u32 {
            let (p, peer) = mem_port(&format!("p{i}"), PortFeatures::default()).unwrap();
            dp.add_port(i, Box::new(p)).unwrap();
            peers.push(peer);
        }
        let frame = |src: [u8; 6], dst: [u8; 6]| {
            let mut v = Vec::new();
            etherparse::PacketBuilder::ethernet2(src, dst)
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(1000, 2000)
                .write(&mut v, b"hello")
                .unwrap();
            v
        };
        let wait = |peer: &xennet_datapath::memport::MemPortPeer, n: usize| {
            let mut got = Vec::new();
            for _ in 0..500 {
                got.extend(peer.take_sent());
                if got.len() >= n {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            got.len()
        };
        peers[0].inject_frame(&frame(A, B));
        assert_eq!(wait(&peers[1], 1), 1);
        assert_eq!(wait(&peers[2], 1), 1);
        peers[1].inject_frame(&frame(B, A));
        assert_eq!(wait(&peers[0], 1), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(peers[2].take_sent().is_empty(), "B→A is unicast");
        peers[0].inject_frame(&frame(A, B));
        assert_eq!(wait(&peers[1], 1), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            peers[2].take_sent().is_empty(),
            "stale flood megaflow was flushed"
        );
        assert_eq!(fdb.len(), 2);
        let flows = dp.dump_flows();
        assert!(
            flows.iter().any(|f| f.starts_with(
                "in_port(1),eth(src=50:54:00:00:00:0a,dst=50:54:00:00:00:0b), packets:1"
            ) && f.ends_with("actions:2")),
            "{flows:?}"
        );
        dp.shutdown();
    }
}
