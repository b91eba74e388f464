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
//! # Design
//!
//! - **Table.** A slab of connections and one hash table of 4-byte
//!   entries (slab index and direction) hashed by [`ConnKey`] (zone,
//!   family, protocol, addresses, ports); the keys live in the
//!   connections, as OVS embeds its cmap nodes in `struct conn`. Each
//!   connection is in the table twice: under its original key and under
//!   its reply key (translated when NATed), so a packet in either
//!   direction is one lookup (OVS `conn_key_lookup` over
//!   `key_node[CT_DIR_FWD/REV]`). The hasher has a random seed.
//! - **Protocols.** TCP keeps per-peer sequence windows (`tcp.rs`, OVS
//!   conntrack-tcp.c); UDP and other protocols the FIRST / MULTIPLE /
//!   BIDIR states of conntrack-other.c; ICMP echo-like messages the
//!   FIRST / REPLY states of conntrack-icmp.c with the identifier as the
//!   port; all three are `+new` until a reply, as OVS 3.x. ICMP errors quoting a tracked connection are `+rel` (and `+rpl`
//!   when they travel in its reply direction); quoting nothing, `+inv`.
//! - **Expiry.** Every connection carries its expiry time (ms since the
//!   tracker started) and has exactly one entry in a min-heap of
//!   (expiry, slot, generation). Refreshing a connection only writes its
//!   expiry; the sweeper pops due heap entries, re-queues those whose
//!   connection was refreshed meanwhile and removes the rest, at most
//!   [`SWEEP_BUDGET`] per call. [`Conntrack::execute`] runs it once per
//!   [`SWEEP_INTERVAL_MS`] (and when the table is full), so no packet
//!   scans the table. A lookup that finds an expired connection removes
//!   it on the spot (OVS treats expired entries as absent too).
//! - **Bounds.** At most `maxconns` connections (OVS default 3,000,000,
//!   `dpctl/ct-set-maxconns`) and per-zone limits (`dpctl/ct-set-limits`,
//!   a default for zones without their own): a commit beyond them leaves
//!   the packet `+new` without a connection, counted. Fragments are
//!   reassembled before tracking with their own bounds ([`ipf`]).
//! - **Locking.** One mutex over the table. The critical section is a
//!   hash lookup and a few field updates; sharding by zone is the
//!   obvious next step if it shows up in profiles.
//!
//! - **ALGs.** `ct(alg=ftp)` and `ct(alg=tftp)` ([`CtArgs::helper`])
//!   give the committed connection a helper that makes expectations for
//!   its data connections, which are `+rel` ([`alg`], OVS
//!   `handle_ftp_ctl`, `handle_tftp_ctl`); expectations are bounded and
//!   expire. With `nat`, FTP addresses are rewritten and TCP sequence
//!   numbers adjusted.
//!
//! Not implemented (refused, not faked): SCTP state tracking
//! (SCTP is tracked as an "other" protocol), `ct_orig_tuple`-based
//! lookups of packets NATed in another zone (OVS `check_orig_tuple`).
//!
//! Fragments: the fragment that completes a datagram goes on as the
//! reassembled datagram, which carries its largest fragment's size
//! ([`crate::buffer::FragMeta`]); every output cuts it back into
//! fragments of at most that size, after NAT and any other rewrite
//! ([`crate::fragment`], as Linux's bridge netfilter refragments to
//! `frag_max_size`). OVS instead sends the original fragments on with
//! the reassembled datagram's header changes copied into them, and its
//! pipeline sees those fragments after `ct` where ours sees the whole
//! datagram. For senders that cut every fragment to the same size the
//! frames out are the same (`datapath/tests/conntrack_ovs.rs`); for
//! others ours may be cut at other offsets, never larger.
//!
//! Tested against OVS itself: `datapath/tests/conntrack_ovs.rs` runs the
//! same frames through ovs-vswitchd's userspace conntrack and compares
//! every packet's `ct_state`, the frames out and `dump-conntrack`.

pub mod alg;
pub mod appctl;
mod flush;
pub mod ipf;
mod key;
mod nat;
mod tcp;
mod timeout;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hashbrown::HashMap;

use crate::buffer::{Csum, Packet};
pub use flush::{FlushError, FlushMatch, TupleMatch};
pub use key::ConnKey;
use key::{ParseError, Parsed, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
pub use tcp::TcpState;
pub use timeout::{TimeoutPolicy, Tm};

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
    /// `alg=ftp` / `alg=tftp`: the helper a committed connection gets
    /// ([`alg`]).
    pub helper: Option<alg::Helper>,
}

/// Tracker-wide counters (`dpctl/ct-stats-show`, and the coverage
/// counters OVS keeps for the same events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Connections in the table.
    pub connections: u64,
    /// Packets run through [`Conntrack::execute`].
    pub packets: u64,
    /// Packets that came out `+inv`.
    pub invalid: u64,
    /// Commits refused because the table held `maxconns` connections
    /// (OVS coverage `conntrack_full`).
    pub full: u64,
    /// Commits refused by a zone limit (OVS `conntrack_zone_full`).
    pub zone_full: u64,
    /// Commits refused because no NAT tuple was free.
    pub nat_exhausted: u64,
    /// Commits refused because the reply key belonged to another
    /// connection.
    pub collisions: u64,
    /// Connections removed by expiry.
    pub expired: u64,
    /// Packets that could not be parsed (not IP, truncated, bad checksum,
    /// unsupported ICMP).
    pub malformed: u64,
    /// Fragments held for reassembly (the packet came out `+inv`, see
    /// [`Verdict::Held`]).
    pub frag_held: u64,
    /// Datagrams reassembled and tracked.
    pub frag_reassembled: u64,
    /// Fragments refused (overlap, bounds, too small, too many).
    pub frag_invalid: u64,
    /// ALG expectations and helper counters ([`alg`]).
    pub alg: alg::AlgStats,
}

/// What [`Conntrack::track`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The packet was tracked (possibly `+inv`); `pkt.md.ct` is set.
    Tracked,
    /// An IP fragment was copied into the reassembly buffer and the
    /// datagram is not complete: the caller should drop (steal) this
    /// packet, as OVS's `ipf` does. The fragment that completes the
    /// datagram comes back as the whole datagram, tracked.
    Held,
}

/// One zone's limit and use (`dpctl/ct-get-limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneLimit {
    /// Zone.
    pub zone: u16,
    /// Limit in connections (0: unlimited).
    pub limit: u32,
    /// Connections in the zone.
    pub count: u32,
}

/// OVS `DEFAULT_N_CONN_LIMIT`.
pub const DEFAULT_MAXCONNS: u32 = 3_000_000;
/// Heap entries the sweeper looks at per call.
pub const SWEEP_BUDGET: usize = 256;
/// How often [`Conntrack::execute`] runs the sweeper, in ms.
pub const SWEEP_INTERVAL_MS: u64 = 1000;
/// Slab slots a dump, flush or stats walk looks at per lock hold.
pub const CHUNK: usize = 4096;

/// Protocol state of a connection.
#[derive(Debug, Clone, Copy)]
enum L4 {
    Tcp(tcp::Tcp),
    /// OVS `other_state`: 0 FIRST, 1 MULTIPLE, 2 BIDIR.
    Other(u8),
    /// OVS `icmp_state`: false FIRST, true REPLY.
    Icmp(bool),
}

#[derive(Debug, Clone)]
struct Conn {
    /// `[original, reply]` keys; the reply key is translated for NAT.
    key: [ConnKey; 2],
    l4: L4,
    /// NAT action bits ([`nat::SRC`] ...) for the original direction.
    nat: u8,
    live: bool,
    /// Bumped when the slot is freed, to tell stale heap entries.
    gen: u32,
    mark: u32,
    label: u128,
    /// Expiry, ms since the tracker's epoch.
    expires: u64,
    /// Time of this connection's authoritative heap entry (other entries
    /// for it are stale).
    queued: u64,
    /// Helper, parent and expectations ([`alg`]); most have none.
    alg: Option<Box<alg::ConnAlg>>,
}

#[derive(Debug)]
struct Inner {
    /// Entries `slot << 1 | direction`, hashed by the key they name.
    map: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    conns: Vec<Conn>,
    free: Vec<u32>,
    n: usize,
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
    maxconns: u32,
    default_limit: u32,
    zone_limit: HashMap<u16, u32, foldhash::fast::RandomState>,
    zone_count: HashMap<u16, u32, foldhash::fast::RandomState>,
    default_tp: TimeoutPolicy,
    zone_tp: HashMap<u16, TimeoutPolicy, foldhash::fast::RandomState>,
    nat_basis: foldhash::fast::RandomState,
    rng: nat::Rng,
    epoch: Instant,
    /// The latest time a caller gave (ms), what `dump` judges expiry by.
    last_now: u64,
    next_sweep: u64,
    ipf: ipf::Ipf,
    /// ALG expectations.
    exp: alg::Expectations,
    /// TCP sequence checks on (OVS `dpctl/ct-enable-tcp-seq-chk`).
    tcp_seq_chk: bool,
    /// When the next refusal may be logged (ms): at most one a second.
    next_warn: u64,
    stats: CtStats,
}

impl Default for Inner {
    fn default() -> Self {
        let nat_basis = foldhash::fast::RandomState::default();
        let seed = nat_basis.hash_one(0x5eed_u64);
        Inner {
            map: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            conns: Vec::new(),
            free: Vec::new(),
            n: 0,
            heap: BinaryHeap::new(),
            maxconns: DEFAULT_MAXCONNS,
            default_limit: 0,
            zone_limit: HashMap::default(),
            zone_count: HashMap::default(),
            default_tp: TimeoutPolicy::default(),
            zone_tp: HashMap::default(),
            nat_basis,
            rng: nat::Rng(seed),
            epoch: Instant::now(),
            last_now: 0,
            next_sweep: 0,
            ipf: ipf::Ipf::default(),
            exp: alg::Expectations::default(),
            tcp_seq_chk: true,
            next_warn: 0,
            stats: CtStats::default(),
        }
    }
}

/// The connection tracker; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct Conntrack {
    inner: Arc<Mutex<Inner>>,
}

fn valid_new(p: &Parsed) -> bool {
    match p.key.proto {
        PROTO_TCP => tcp::valid_new(&p.tcp),
        PROTO_ICMP | PROTO_ICMPV6 => key::icmp_valid_new(p.key.ipv6, p.icmp_type),
        _ => true,
    }
}

impl Inner {
    /// `now` in ms since the epoch; remembers the latest.
    fn ms(&mut self, now: Instant) -> u64 {
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        self.last_now = self.last_now.max(ms);
        ms
    }

    /// Log a refused commit, at most once a second (the counters say
    /// how many there were).
    fn warn_refused(&mut self, now: u64, why: &str, zone: u16) {
        if now >= self.next_warn {
            self.next_warn = now + 1000;
            let s = self.stats;
            tracing::warn!(
                zone,
                why,
                full = s.full,
                zone_full = s.zone_full,
                nat_exhausted = s.nat_exhausted,
                collisions = s.collisions,
                "conntrack: commit refused (counted; logged at most once a second)"
            );
        }
    }

    /// Set a connection's expiry; a shorter one than its heap entry's
    /// gets a new entry (the old one turns stale).
    fn set_expiry(&mut self, idx: u32, e: u64) {
        let c = &mut self.conns[idx as usize];
        c.expires = e;
        if e < c.queued {
            c.queued = e;
            let gen = c.gen;
            self.heap.push(Reverse((e, idx, gen)));
        }
    }

    fn timeout_ms(&self, zone: u16, tm: Tm) -> u64 {
        let tp = if self.zone_tp.is_empty() {
            &self.default_tp
        } else {
            self.zone_tp.get(&zone).unwrap_or(&self.default_tp)
        };
        u64::from(tp.seconds(tm)) * 1000
    }

    /// Slot and direction (`true`: reply) of a live, unexpired
    /// connection with this key; an expired one is removed.
    /// The table entry for key `k`.
    fn find(&self, k: &ConnKey) -> Option<u32> {
        let conns = &self.conns;
        self.map
            .find(self.hasher.hash_one(k), |&v| {
                conns[(v >> 1) as usize].key[(v & 1) as usize] == *k
            })
            .copied()
    }

    /// Add the entry `v` (its key is in the slab already).
    fn insert(&mut self, v: u32) {
        let (conns, hasher) = (&self.conns, &self.hasher);
        let keyof = |v: u32| &conns[(v >> 1) as usize].key[(v & 1) as usize];
        let h = hasher.hash_one(keyof(v));
        self.map.insert_unique(h, v, |&x| hasher.hash_one(keyof(x)));
    }

    fn lookup(&mut self, k: &ConnKey, now: u64) -> Option<(u32, bool)> {
        let v = self.find(k)?;
        let idx = v >> 1;
        if self.conns[idx as usize].expires <= now {
            self.remove(idx);
            self.stats.expired += 1;
            return None;
        }
        Some((idx, v & 1 == 1))
    }

    fn remove(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if !c.live {
            return;
        }
        c.live = false;
        let old_gen = c.gen;
        c.gen = c.gen.wrapping_add(1);
        let keys = c.key;
        if let Some(a) = c.alg.take() {
            self.exp.parent_removed(&a, idx, old_gen);
        }
        for (d, k) in keys.iter().enumerate() {
            let v = idx << 1 | d as u32;
            if let Ok(e) = self.map.find_entry(self.hasher.hash_one(k), |&x| x == v) {
                e.remove();
            }
        }
        if let Some(n) = self.zone_count.get_mut(&keys[0].zone) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.zone_count.remove(&keys[0].zone);
            }
        }
        self.free.push(idx);
        self.n -= 1;
    }

    /// Remove due connections, looking at up to `budget` heap entries.
    /// Returns how many were removed.
    fn sweep(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        let mut looked = 0;
        while looked < budget {
            let Some(&Reverse((t, idx, gen))) = self.heap.peek() else {
                break;
            };
            if t > now {
                break;
            }
            self.heap.pop();
            looked += 1;
            let c = &mut self.conns[idx as usize];
            if !c.live || c.gen != gen || c.queued != t {
                continue;
            }
            if c.expires > now {
                let e = c.expires;
                c.queued = e;
                self.heap.push(Reverse((e, idx, gen)));
            } else {
                self.remove(idx);
                self.stats.expired += 1;
                removed += 1;
            }
        }
        // Stale entries of removed connections: rebuild when they dominate.
        if self.heap.len() > 2 * self.n + 4096 {
            let conns = &self.conns;
            let live: Vec<_> = self
                .heap
                .drain()
                .filter(|Reverse((t, i, g))| {
                    let c = &conns[*i as usize];
                    c.live && c.gen == *g && c.queued == *t
                })
                .collect();
            self.heap = live.into_iter().collect();
        }
        self.next_sweep = if looked == budget {
            now
        } else {
            now + SWEEP_INTERVAL_MS
        };
        removed
    }

    fn zone_limit_of(&self, zone: u16) -> u32 {
        self.zone_limit
            .get(&zone)
            .copied()
            .unwrap_or(self.default_limit)
    }

    /// Update an existing connection with a packet; returns the
    /// protocol verdict.
    fn update(&mut self, idx: u32, p: &Parsed, reply: bool, now: u64) -> tcp::Update {
        let zone = p.key.zone;
        let c = &mut self.conns[idx as usize];
        let (res, tm) = match &mut c.l4 {
            L4::Tcp(t) => t.update(&p.tcp, reply, self.tcp_seq_chk),
            L4::Other(s) => {
                // `+new` until a reply was seen (OVS 3.x
                // `other_conn_update`).
                if reply && *s != 2 {
                    *s = 2;
                } else if *s == 0 {
                    *s = 1;
                }
                let res = if *s == 2 {
                    tcp::Update::Valid
                } else {
                    tcp::Update::ValidNew
                };
                let tm = [Tm::OtherFirst, Tm::OtherMultiple, Tm::OtherBidir][usize::from(*s)];
                (res, Some(tm))
            }
            L4::Icmp(r) => {
                // `+new` until a reply (OVS 3.x `icmp_conn_update`).
                if reply {
                    *r = true;
                }
                let res = if *r {
                    tcp::Update::Valid
                } else {
                    tcp::Update::ValidNew
                };
                (res, Some(if *r { Tm::IcmpReply } else { Tm::IcmpFirst }))
            }
        };
        if let Some(tm) = tm {
            let e = now + self.timeout_ms(zone, tm);
            self.set_expiry(idx, e);
        }
        res
    }

    /// Create a connection for `p` (OVS `conn_not_found` on commit).
    /// Returns the slot, or `None` when a bound or NAT refused it.
    fn create(
        &mut self,
        p: &Parsed,
        nat: Option<&NatArgs>,
        exp: Option<&alg::Expect>,
        now: u64,
    ) -> Option<u32> {
        let zone = p.key.zone;
        let limit = self.zone_limit_of(zone);
        let zone_full =
            |g: &Self| limit != 0 && g.zone_count.get(&zone).copied().unwrap_or(0) >= limit;
        if zone_full(self) {
            self.sweep(now, SWEEP_BUDGET);
            if zone_full(self) {
                self.stats.zone_full += 1;
                self.warn_refused(now, "zone limit reached", zone);
                return None;
            }
        }
        if self.n >= self.maxconns as usize {
            self.sweep(now, SWEEP_BUDGET);
            if self.n >= self.maxconns as usize {
                self.stats.full += 1;
                self.warn_refused(now, "table full (maxconns)", zone);
                return None;
            }
        }
        let (l4, tm) = match p.key.proto {
            PROTO_TCP => {
                let (t, tm) = tcp::Tcp::new(&p.tcp);
                (L4::Tcp(t), tm)
            }
            PROTO_ICMP | PROTO_ICMPV6 => (L4::Icmp(false), Tm::IcmpFirst),
            _ => (L4::Other(0), Tm::OtherFirst),
        };
        let fwd = p.key;
        let mut bits = 0;
        let rev = match nat.filter(|n| n.kind.is_some()) {
            // A data connection takes its NAT from the expectation (OVS
            // `conn_not_found` with `alg_exp`).
            _ if nat.is_some() && exp.is_some() => {
                let (mut r, e) = (fwd.reverse(), exp?);
                if e.nat_rpl_dst {
                    (r.dst, bits) = (e.repl_addr, nat::SRC);
                } else {
                    (r.src, bits) = (e.repl_addr, nat::DST);
                    if e.repl_port != 0 {
                        r.sport = e.repl_port;
                    }
                }
                r
            }
            Some(n) => {
                bits = nat::action_bits(n);
                let (map, conns, hasher) = (&self.map, &self.conns, &self.hasher);
                let mut taken = |k: &ConnKey| {
                    map.find(hasher.hash_one(k), |&v| {
                        conns[(v >> 1) as usize].key[(v & 1) as usize] == *k
                    })
                    .is_some_and(|v| conns[(v >> 1) as usize].expires > now)
                };
                match nat::unique_tuple(&fwd, n, &self.nat_basis, &mut self.rng, &mut taken) {
                    Some(r) => r,
                    None => {
                        self.stats.nat_exhausted += 1;
                        self.warn_refused(now, "no free NAT tuple", zone);
                        return None;
                    }
                }
            }
            None => fwd.reverse(),
        };
        // The reply key may belong to another (possibly expired) connection.
        if rev != fwd {
            if let Some(v) = self.find(&rev) {
                let other = v >> 1;
                if self.conns[other as usize].expires <= now {
                    self.remove(other);
                    self.stats.expired += 1;
                } else {
                    self.stats.collisions += 1;
                    self.warn_refused(now, "reply tuple in use by another connection", zone);
                    return None;
                }
            }
        }
        let expires = now + self.timeout_ms(zone, tm);
        let conn = Conn {
            key: [fwd, rev],
            l4,
            nat: bits,
            live: true,
            gen: 0,
            mark: 0,
            label: 0,
            expires,
            queued: expires,
            alg: None,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                let gen = self.conns[i as usize].gen;
                self.conns[i as usize] = Conn { gen, ..conn };
                i
            }
            None => {
                let i = u32::try_from(self.conns.len()).ok()?;
                self.conns.push(conn);
                i
            }
        };
        let gen = self.conns[idx as usize].gen;
        self.insert(idx << 1);
        if rev != fwd {
            self.insert(idx << 1 | 1);
        }
        self.heap.push(Reverse((expires, idx, gen)));
        *self.zone_count.entry(zone).or_insert(0) += 1;
        self.n += 1;
        Some(idx)
    }
}

/// Apply a connection's NAT to a packet travelling in direction `reply`.
fn apply_nat(pkt: &mut Packet, p: &Parsed, c: &Conn, reply: bool) -> u32 {
    if c.nat == 0 {
        return 0;
    }
    let (key, a) = if reply {
        (&c.key[0], nat::reverse(c.nat))
    } else {
        (&c.key[1], c.nat)
    };
    nat::nat_packet(pkt, p, key, a)
}

fn mark_invalid(pkt: &mut Packet, zone: u16) {
    let ct = &mut pkt.md.ct;
    *ct = crate::buffer::CtMeta {
        state: cs::TRK | cs::INV,
        zone,
        ..Default::default()
    };
}

impl Conntrack {
    /// An empty tracker with OVS's default limits.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `pkt` through the tracker in `args.zone` (OVS
    /// `conntrack_execute`): sets `pkt.md.ct` (state, zone, mark, label,
    /// original tuple) and rewrites the packet for NAT. Never fails: a
    /// packet that cannot be tracked comes out `+trk+inv`. A fragment
    /// held for reassembly also comes out `+trk+inv` (see
    /// [`Conntrack::track`] to steal it instead).
    pub fn execute(&self, pkt: &mut Packet, args: &CtArgs, now: Instant) {
        let _ = self.track(pkt, args, now);
    }

    /// [`Conntrack::execute`], telling the caller when a fragment was
    /// held for reassembly ([`Verdict::Held`]: drop the packet; its copy
    /// is in the reassembly buffer). When a fragment completes its
    /// datagram, `pkt` becomes the whole reassembled datagram, with
    /// `pkt.md.frag` saying how large its fragments were (output cuts
    /// it back into fragments, [`crate::fragment`]).
    pub fn track(&self, pkt: &mut Packet, args: &CtArgs, now: Instant) -> Verdict {
        let mut g = self.lock();
        let g = &mut *g;
        let now = g.ms(now);
        let zone = args.zone;
        g.stats.packets += 1;
        if now >= g.next_sweep {
            g.sweep(now, SWEEP_BUDGET);
            g.ipf.expire(now);
            g.exp.expire(now);
        }
        // Reset the state when entering a new zone (OVS `process_one`);
        // remember NAT done by an earlier `ct` in this zone.
        let prev_nat = if pkt.md.ct.state != 0 && pkt.md.ct.zone == zone {
            pkt.md.ct.state & (cs::SNAT | cs::DNAT)
        } else {
            0
        };
        let mut p = match key::parse(pkt.data(), pkt.csum) {
            Ok(p) => p,
            Err(ParseError::Fragment) => match g.ipf.process(pkt.data(), zone, now) {
                ipf::Outcome::Held => {
                    g.stats.frag_held += 1;
                    g.stats.invalid += 1;
                    mark_invalid(pkt, zone);
                    return Verdict::Held;
                }
                ipf::Outcome::Complete {
                    frame,
                    max_size,
                    id,
                } => {
                    g.stats.frag_reassembled += 1;
                    pkt.set_frame(&frame);
                    pkt.csum = Csum::None;
                    pkt.gso = None;
                    pkt.md.frag = crate::buffer::FragMeta { max_size, id };
                    match key::parse(pkt.data(), pkt.csum) {
                        Ok(p) => p,
                        Err(_) => {
                            g.stats.malformed += 1;
                            g.stats.invalid += 1;
                            mark_invalid(pkt, zone);
                            return Verdict::Tracked;
                        }
                    }
                }
                ipf::Outcome::Invalid => {
                    g.stats.frag_invalid += 1;
                    g.stats.invalid += 1;
                    mark_invalid(pkt, zone);
                    return Verdict::Tracked;
                }
            },
            Err(_) => {
                g.stats.malformed += 1;
                g.stats.invalid += 1;
                mark_invalid(pkt, zone);
                return Verdict::Tracked;
            }
        };
        p.key.zone = zone;

        let mut found = if prev_nat != 0 {
            // Already translated by an earlier `ct(nat)` in this zone:
            // look the packet up by its reversed key (OVS
            // `initial_conn_lookup` with `natted`).
            g.lookup(&p.key.reverse(), now).map(|(i, r)| (i, !r))
        } else {
            g.lookup(&p.key, now)
        };
        if let (true, Some((idx, true))) = (args.force, found) {
            g.remove(idx);
            found = None;
        }

        let mut state;
        let mut conn = None;
        let mut create = false;
        if let Some((idx, reply)) = found {
            conn = Some(idx);
            state = prev_nat;
            if p.related {
                state |= cs::REL | if reply { cs::RPL } else { 0 };
            } else {
                // FTP under NAT, once per zone as NAT itself.
                let ftp_nat =
                    args.nat.is_some() && prev_nat == 0 && g.conns[idx as usize].alg.is_some();
                if ftp_nat {
                    g.alg_seq(idx, &mut p, pkt, reply, args.helper, true);
                }
                let res = g.update(idx, &p, reply, now);
                if ftp_nat && !matches!(res, tcp::Update::New) {
                    g.alg_seq(idx, &mut p, pkt, reply, args.helper, false);
                }
                match res {
                    tcp::Update::Valid => state |= cs::EST | if reply { cs::RPL } else { 0 },
                    tcp::Update::ValidNew => state |= cs::NEW,
                    tcp::Update::Invalid => state = cs::INV,
                    tcp::Update::New => {
                        g.remove(idx);
                        conn = None;
                        create = true;
                    }
                }
            }
            if !create && state & cs::INV == 0 && g.conns[idx as usize].alg_parent().is_some() {
                state |= cs::REL;
            }
            if args.nat.is_some() && !create && prev_nat == 0 {
                state |= apply_nat(pkt, &p, &g.conns[idx as usize], reply);
            }
        } else if p.related {
            state = cs::INV;
        } else {
            state = 0;
            create = true;
        }
        let mut exp = None;
        if create {
            exp = g.exp.lookup(&p.key, now);
            if !valid_new(&p) {
                state = cs::INV;
            } else {
                state = cs::NEW | if exp.is_some() { cs::REL } else { 0 };
                if args.commit {
                    conn = g.create(&p, args.nat.as_ref(), exp.as_ref(), now);
                    if let Some(idx) = conn {
                        g.alg_new_conn(idx, &p, args.helper, exp.as_ref());
                        state |= apply_nat(pkt, &p, &g.conns[idx as usize], false);
                    }
                }
            }
        }
        if state & cs::INV != 0 {
            g.stats.invalid += 1;
        }

        let md = &mut pkt.md.ct;
        md.state = state | cs::TRK;
        md.zone = zone;
        let orig = match conn {
            Some(idx) => {
                let c = &mut g.conns[idx as usize];
                // A related connection keeps its control connection's
                // mark and label (OVS `set_mark` with `alg_related`).
                let parent = c.alg_parent();
                if let (Some((v, m)), None) = (args.mark, parent) {
                    c.mark = (v & m) | (c.mark & !m);
                }
                if let (Some((v, m)), None) = (args.label, parent) {
                    c.label = (v & m) | (c.label & !m);
                }
                md.mark = c.mark;
                md.label = c.label;
                parent.unwrap_or(c.key[0])
            }
            None => {
                md.mark = exp.map_or(0, |e| e.mark);
                md.label = exp.map_or(0, |e| e.label);
                exp.map_or(p.key, |e| e.parent)
            }
        };
        md.nw_src = orig.src;
        md.nw_dst = orig.dst;
        md.nw_proto = orig.proto;
        if orig.is_icmp() {
            md.tp_src = u16::from(orig.stype);
            md.tp_dst = 0;
        } else {
            md.tp_src = orig.sport;
            md.tp_dst = orig.dport;
        }
        if let Some(idx) = conn {
            let nat = args.nat.is_some() && prev_nat == 0;
            let extra = g.alg_ctl(idx, &p, pkt, args.helper, nat, now);
            if extra != 0 {
                pkt.md.ct.state |= extra;
                g.stats.invalid += 1;
            }
        }
        g.stats.connections = g.n as u64;
        Verdict::Tracked
    }

    /// Counters.
    pub fn stats(&self) -> CtStats {
        let g = self.lock();
        let mut s = g.stats;
        s.connections = g.n as u64;
        let f = g.ipf.stats();
        s.frag_invalid = s.frag_invalid.max(f.invalid);
        s.alg = g.exp.stats;
        s.alg.held = g.exp.len() as u64;
        s
    }

    /// Remove connections that are due at `now`, looking at up to
    /// [`SWEEP_BUDGET`] candidates; returns how many went. `execute`
    /// calls this itself; a control thread may call it too.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut g = self.lock();
        let now = g.ms(now);
        g.ipf.expire(now);
        g.exp.expire(now);
        g.sweep(now, SWEEP_BUDGET)
    }

    /// Bytes held by the table's structures (connection slab, key map,
    /// expiry heap, ALG expectations and the connections' ALG state,
    /// fragments held for reassembly), from their capacities; allocator
    /// overhead is not counted.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let g = self.lock();
        // hashbrown: buckets (a power of two, at most 7/8 full) of
        // entries plus one control byte each.
        let buckets = (g.map.capacity() * 8 / 7).next_power_of_two();
        g.conns.capacity() * size_of::<Conn>()
            + buckets * (size_of::<u32>() + 1)
            + g.heap.capacity() * size_of::<Reverse<(u64, u32, u32)>>()
            + g.free.capacity() * size_of::<u32>()
            + g.exp.memory_bytes()
            + g.ipf.memory_bytes()
    }

    /// Connections in the table (`dpctl/ct-get-nconns`).
    pub fn nconns(&self) -> u32 {
        u32::try_from(self.lock().n).unwrap_or(u32::MAX)
    }

    /// Turn TCP sequence checking on or off
    /// (`dpctl/ct-enable-tcp-seq-chk`, `dpctl/ct-disable-tcp-seq-chk`);
    /// on by default. Off, only flag combinations are checked.
    pub fn set_tcp_seq_chk(&self, on: bool) {
        self.lock().tcp_seq_chk = on;
    }

    /// Whether TCP sequence checking is on (`dpctl/ct-get-tcp-seq-chk`).
    pub fn tcp_seq_chk(&self) -> bool {
        self.lock().tcp_seq_chk
    }

    /// The table bound (`dpctl/ct-get-maxconns`).
    pub fn maxconns(&self) -> u32 {
        self.lock().maxconns
    }

    /// Set the table bound (`dpctl/ct-set-maxconns`). Existing
    /// connections stay; new commits are refused until below it.
    pub fn set_maxconns(&self, n: u32) {
        self.lock().maxconns = n;
    }

    /// Set the connection limit of `zone`, or the default limit for
    /// zones without their own when `zone` is `None`
    /// (`dpctl/ct-set-limits [default=N] [zone=Z,limit=N]`); 0 means
    /// unlimited.
    pub fn set_zone_limit(&self, zone: Option<u16>, limit: u32) {
        let mut g = self.lock();
        match zone {
            Some(z) => {
                g.zone_limit.insert(z, limit);
            }
            None => g.default_limit = limit,
        }
    }

    /// Remove a zone's own limit (`dpctl/ct-del-limits zone=Z`); it
    /// falls back to the default.
    pub fn del_zone_limit(&self, zone: u16) {
        self.lock().zone_limit.remove(&zone);
    }

    /// The default limit (0: unlimited).
    pub fn default_zone_limit(&self) -> u32 {
        self.lock().default_limit
    }

    /// Limit and use of `zone`.
    pub fn zone_limit(&self, zone: u16) -> ZoneLimit {
        let g = self.lock();
        ZoneLimit {
            zone,
            limit: g.zone_limit_of(zone),
            count: g.zone_count.get(&zone).copied().unwrap_or(0),
        }
    }

    /// Zones with their own limit, by zone.
    pub fn zone_limits(&self) -> Vec<ZoneLimit> {
        let g = self.lock();
        let mut v: Vec<_> = g
            .zone_limit
            .iter()
            .map(|(&zone, &limit)| ZoneLimit {
                zone,
                limit,
                count: g.zone_count.get(&zone).copied().unwrap_or(0),
            })
            .collect();
        v.sort_by_key(|z| z.zone);
        v
    }

    /// `dpctl/ct-get-limits` output: `default limit=N`, then one
    /// `zone=Z,limit=N,count=C` line per zone in `zones` (all zones with
    /// their own limit when empty), as OVS `ct_dpif_format_zone_limits`.
    pub fn format_limits(&self, zones: &[u16]) -> String {
        let mut s = format!("default limit={}", self.default_zone_limit());
        let list = if zones.is_empty() {
            self.zone_limits()
        } else {
            zones.iter().map(|&z| self.zone_limit(z)).collect()
        };
        for z in list {
            s.push_str(&format!(
                "\nzone={},limit={},count={}",
                z.zone, z.limit, z.count
            ));
        }
        s
    }

    /// Use `policy` for connections in `zone` (OVSDB `CT_Zone`
    /// `timeout_policy`), or the default policy again with `None`. Takes
    /// effect at each connection's next update.
    pub fn set_zone_timeout_policy(&self, zone: u16, policy: Option<TimeoutPolicy>) {
        let mut g = self.lock();
        match policy {
            Some(p) => {
                g.zone_tp.insert(zone, p);
            }
            None => {
                g.zone_tp.remove(&zone);
            }
        }
    }

    /// The timeout policy in force for `zone`.
    pub fn zone_timeout_policy(&self, zone: u16) -> TimeoutPolicy {
        let g = self.lock();
        g.zone_tp.get(&zone).copied().unwrap_or(g.default_tp)
    }

    /// Set the reassembly bounds (see [`ipf::IpfConfig`]).
    pub fn set_ipf_config(&self, cfg: ipf::IpfConfig) {
        self.lock().ipf.set_config(cfg);
    }

    /// Reassembly counters (`dpctl/ipf-get-status`).
    pub fn ipf_stats(&self) -> ipf::IpfStats {
        self.lock().ipf.stats()
    }

    /// The reassembly bounds in force.
    pub fn ipf_config(&self) -> ipf::IpfConfig {
        self.lock().ipf.config()
    }

    /// Remove every connection, or those of one zone
    /// (`dpctl/flush-conntrack [zone=N]`, `NXT_CT_FLUSH_ZONE`). Returns
    /// how many went.
    pub fn flush(&self, zone: Option<u16>) -> usize {
        let mut n = 0;
        self.for_chunks(|g, range| {
            for i in range {
                let c = &g.conns[i];
                if c.live && zone.map_or(true, |z| c.key[0].zone == z) {
                    g.remove(i as u32);
                    n += 1;
                }
            }
        });
        // Removing leaves tombstones in the hash table, which the next
        // inserts pay for with a rehash; an empty table is cleared
        // instead (its allocation is kept), and the heap holds only
        // stale entries then.
        let mut g = self.lock();
        if g.n == 0 {
            g.map.clear();
            g.heap.clear();
        }
        n
    }

    /// Run `f` over the slab in chunks of [`CHUNK`] slots, taking the
    /// lock once per chunk, so that a dump or flush of a big table does
    /// not stall the forwarding threads (connections may come and go
    /// between chunks, as in OVS's dump).
    fn for_chunks(&self, mut f: impl FnMut(&mut Inner, std::ops::Range<usize>)) {
        let mut i = 0;
        loop {
            let mut g = self.lock();
            let end = (i + CHUNK).min(g.conns.len());
            if i >= end {
                break;
            }
            f(&mut g, i..end);
            i = end;
        }
    }

    /// The table in `ovs-appctl dpctl/dump-conntrack` format (OVS
    /// `ct_dpif_format_entry`, not verbose, no statistics), one line per
    /// connection, sorted; only `zone`'s when given. Connections expired
    /// by now (or by the latest time a caller gave, if later) are left
    /// out.
    pub fn dump(&self, zone: Option<u16>) -> Vec<String> {
        self.lock().ms(Instant::now());
        let mut v = Vec::new();
        self.for_chunks(|g, range| {
            let now = g.last_now;
            v.extend(
                g.conns[range]
                    .iter()
                    .filter(|c| {
                        c.live && c.expires > now && zone.map_or(true, |z| c.key[0].zone == z)
                    })
                    .map(format_conn),
            );
        });
        v.sort();
        v
    }

    /// `dpctl/ct-stats-show [zone=N]` output lines: the connection total
    /// and per-protocol counts (and, `verbose`, TCP connections per
    /// state), as OVS `dpctl_ct_stats_show`.
    pub fn stats_show(&self, zone: Option<u16>, verbose: bool) -> Vec<String> {
        self.lock().ms(Instant::now());
        let mut total = 0;
        let mut per = [0u32; 6]; // tcp udp icmp icmpv6 sctp other
        let mut tcp_states = [0u32; 11];
        self.for_chunks(|g, range| {
            let now = g.last_now;
            for c in g.conns[range].iter().filter(|c| c.live && c.expires > now) {
                if zone.is_some_and(|z| c.key[0].zone != z) {
                    continue;
                }
                total += 1;
                let i = match c.key[0].proto {
                    PROTO_TCP => 0,
                    PROTO_UDP => 1,
                    PROTO_ICMP => 2,
                    PROTO_ICMPV6 => 3,
                    132 => 4,
                    _ => 5,
                };
                per[i] += 1;
                if let L4::Tcp(t) = c.l4 {
                    tcp_states[t.display_state() as usize] += 1;
                }
            }
        });
        let mut out = vec![
            "Connections Stats:".to_string(),
            format!("    Total: {total}"),
        ];
        let names = ["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "Others"];
        for (i, name) in names.iter().enumerate() {
            if per[i] == 0 {
                continue;
            }
            out.push(format!("  {name}: {}", per[i]));
            if i == 0 && verbose {
                out.push("    Conn per TCP states:".to_string());
                for (s, &n) in tcp_states.iter().enumerate() {
                    if n != 0 {
                        let st = tcp_state_from(s);
                        out.push(format!("\t[{}]={n}", st.name()));
                    }
                }
            }
        }
        out
    }
}

fn tcp_state_from(i: usize) -> TcpState {
    use TcpState::*;
    [
        Closed,
        Listen,
        SynSent,
        SynRecv,
        Established,
        CloseWait,
        FinWait1,
        Closing,
        LastAck,
        FinWait2,
        TimeWait,
    ]
    .get(i)
    .copied()
    .unwrap_or(Closed)
}

fn fmt_addr(a: u128, v6: bool) -> String {
    if v6 {
        Ipv6Addr::from(a).to_string()
    } else {
        Ipv4Addr::from(a as u32).to_string()
    }
}

fn fmt_tuple(k: &ConnKey) -> String {
    let mut s = format!(
        "src={},dst={}",
        fmt_addr(k.src, k.ipv6),
        fmt_addr(k.dst, k.ipv6)
    );
    if k.is_icmp() {
        s.push_str(&format!(",id={},type={},code=0", k.sport, k.stype));
    } else {
        s.push_str(&format!(",sport={},dport={}", k.sport, k.dport));
    }
    s
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        33 => "dccp".into(),
        2 => "igmp".into(),
        n => n.to_string(),
    }
}

fn format_conn(c: &Conn) -> String {
    let k = &c.key[0];
    let mut s = format!(
        "{},orig=({}),reply=({})",
        proto_name(k.proto),
        fmt_tuple(k),
        fmt_tuple(&c.key[1])
    );
    if k.zone != 0 {
        s.push_str(&format!(",zone={}", k.zone));
    }
    if c.mark != 0 {
        s.push_str(&format!(",mark={}", c.mark));
    }
    if c.label != 0 {
        s.push_str(&format!(",labels={:#x}", c.label));
    }
    if let L4::Tcp(t) = c.l4 {
        s.push_str(&format!(",protoinfo=(state={})", t.display_state().name()));
    }
    if let Some(h) = c.alg.as_ref().and_then(|a| a.helper) {
        s.push_str(",helper=");
        s.push_str(h.name());
    }
    s
}

#[cfg(test)]
mod tests;
