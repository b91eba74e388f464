//! NAT for tracked connections (OVS lib/conntrack.c:
//! `nat_get_unique_tuple`, `nat_packet`, `nat_inner_packet`).
//!
//! A NATed connection stores its reply key already translated: for
//! source NAT the reply's destination is the chosen address and port, for
//! destination NAT the reply's source. Packets are then rewritten to the
//! reverse of the other direction's key: originals leave with the
//! translated tuple, replies with the original one. ICMP errors quoting a
//! NATed connection get their outer address and the quoted header
//! translated, and the ICMP checksum recomputed.
//!
//! Checksums are updated incrementally (RFC 1624) through
//! [`crate::rewrite::apply`], which also keeps a `CHECKSUM_PARTIAL`
//! packet's pseudo-header sum right.

use std::hash::{BuildHasher, Hash, Hasher};

use super::key::{ConnKey, Parsed, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use super::{NatArgs, NatKind};
use crate::buffer::Packet;
use crate::csum::{fold, pseudo_v6, sum};
use crate::rewrite::{apply, SetAction};

/// `NAT_ACTION_SRC`: source address translation.
pub const SRC: u8 = 1;
/// `NAT_ACTION_SRC_PORT`: a source port range was given.
pub const SRC_PORT: u8 = 2;
/// `NAT_ACTION_DST`: destination address translation.
pub const DST: u8 = 4;
/// `NAT_ACTION_DST_PORT`: a destination port range was given.
pub const DST_PORT: u8 = 8;

/// OVS `MIN_NAT_EPHEMERAL_PORT` / `MAX_NAT_EPHEMERAL_PORT`.
const EPHEMERAL: (u16, u16) = (1024, 65535);
/// Ports tried per round (OVS `nat_get_unique_l4`).
const MAX_ATTEMPTS: u32 = 128;

/// The action bits of a `nat(...)` argument.
pub fn action_bits(n: &NatArgs) -> u8 {
    let port = n.port_min != 0 || n.port_max != 0;
    match n.kind {
        Some(NatKind::Src) => SRC | if port { SRC_PORT } else { 0 },
        Some(NatKind::Dst) => DST | if port { DST_PORT } else { 0 },
        None => 0,
    }
}

/// Swap source and destination NAT (for the reply direction).
pub fn reverse(a: u8) -> u8 {
    if a & SRC != 0 {
        (a & !SRC) | DST
    } else if a & DST != 0 {
        (a & !DST) | SRC
    } else {
        a
    }
}

fn addr_key(a: std::net::IpAddr) -> (u128, bool) {
    match a {
        std::net::IpAddr::V4(v) => (u128::from(u32::from(v)), false),
        std::net::IpAddr::V6(v) => (u128::from(v), true),
    }
}

fn hash_of(
    h: &foldhash::fast::RandomState,
    f: impl FnOnce(&mut foldhash::fast::FoldHasher),
) -> u32 {
    let mut s = h.build_hasher();
    f(&mut s);
    let v = s.finish();
    (v ^ (v >> 32)) as u32
}

/// A small xorshift generator for `random` port selection.
#[derive(Debug, Clone, Copy)]
pub struct Rng(pub u64);

impl Rng {
    /// Next 32 random bits.
    pub fn next(&mut self) -> u32 {
        let mut x = self.0 | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 16) as u32
    }
}

/// Port ranges and starting points (OVS `set_sport_range`,
/// `set_dport_range`).
fn sport_range(a: u8, n: &NatArgs, k: &ConnKey, off: u32) -> (u16, u16, u16) {
    if a & (SRC | SRC_PORT) == SRC || a & DST != 0 {
        let curr = k.sport;
        let (min, max) = if curr < 512 {
            (1, 511)
        } else if curr < 1024 {
            (600, 1023)
        } else {
            EPHEMERAL
        };
        (curr, min, max)
    } else {
        let (min, max) = (
            n.port_min.min(n.port_max.max(n.port_min)),
            n.port_max.max(n.port_min),
        );
        let span = u32::from(max - min) + 1;
        (min + (off % span) as u16, min, max)
    }
}

fn dport_range(a: u8, n: &NatArgs, k: &ConnKey, off: u32) -> (u16, u16, u16) {
    if a & DST_PORT != 0 {
        let (min, max) = (n.port_min, n.port_max.max(n.port_min));
        let span = u32::from(max - min) + 1;
        (min + (off % span) as u16, min, max)
    } else {
        (k.dport, k.dport, k.dport)
    }
}

/// Try ports from `curr` upward through `[min, max]` (wrapping), at most
/// 128 per round, then rounds from random starts with half as many
/// attempts while at least 16 (OVS `nat_get_unique_l4`). `set` stores a
/// candidate in the key.
fn unique_l4(
    rev: &mut ConnKey,
    set: fn(&mut ConnKey, u16),
    curr: u16,
    min: u16,
    max: u16,
    rng: &mut Rng,
    taken: &mut dyn FnMut(&ConnKey) -> bool,
) -> bool {
    let range = u32::from(max - min) + 1;
    let mut attempts = range.min(MAX_ATTEMPTS);
    let mut c = curr;
    loop {
        for _ in 0..attempts {
            set(rev, c);
            if !taken(rev) {
                return true;
            }
            c = if c >= max { min } else { c + 1 };
        }
        if attempts < range && attempts >= 16 {
            attempts /= 2;
            c = min + (rng.next() % range) as u16;
        } else {
            set(rev, curr);
            return false;
        }
    }
}

/// Choose the translated reply key of a new connection whose original
/// key is `fwd` (OVS `nat_get_unique_tuple`). `taken` says whether a key
/// is in use. `None` when the address and port space is exhausted.
pub fn unique_tuple(
    fwd: &ConnKey,
    n: &NatArgs,
    basis: &foldhash::fast::RandomState,
    rng: &mut Rng,
    taken: &mut dyn FnMut(&ConnKey) -> bool,
) -> Option<ConnKey> {
    let a = action_bits(n);
    let pat = matches!(fwd.proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP);
    let (min_addr, v6a) = n.addr_min.map(addr_key).unwrap_or((0, fwd.ipv6));
    let max_addr = n
        .addr_max
        .map(|x| addr_key(x).0)
        .unwrap_or(min_addr)
        .max(min_addr);
    if n.addr_min.is_some() && v6a != fwd.ipv6 {
        return None;
    }
    let mix = |h: &mut foldhash::fast::FoldHasher| {
        min_addr.hash(h);
        max_addr.hash(h);
        (n.port_min, n.port_max, fwd.proto, fwd.zone, fwd.ipv6).hash(h);
    };
    let persistent_hash = hash_of(basis, |h| {
        fwd.src.hash(h);
        mix(h);
    });
    let full_hash = hash_of(basis, |h| {
        (fwd.src, fwd.sport, fwd.dst, fwd.dport).hash(h);
        mix(h);
    });
    let hash = if n.persistent {
        persistent_hash
    } else {
        full_hash
    };
    let off = if n.random { rng.next() } else { full_hash };

    let addr = if n.addr_min.is_none() {
        if a & SRC != 0 {
            fwd.src
        } else {
            fwd.dst
        }
    } else {
        let span = (max_addr - min_addr).min(u128::from(u32::MAX - 1)) + 1;
        min_addr + u128::from(hash) % span
    };
    let (cs, mins, maxs) = sport_range(a, n, fwd, off);
    let (cd, mind, maxd) = dport_range(a, n, fwd, off);
    let mut rev = fwd.reverse();
    let icmp = fwd.proto == PROTO_ICMP;
    if pat {
        // ICMP has one identifier, translated like a source port; a
        // destination port range does not apply to it.
        rev.sport = if icmp { cs } else { cd };
        rev.dport = cs;
    }
    if a & SRC != 0 {
        rev.dst = addr;
    } else if a & DST != 0 {
        rev.src = addr;
    }
    if !pat {
        return (!taken(&rev)).then_some(rev);
    }
    if a & DST_PORT != 0
        && !icmp
        && unique_l4(&mut rev, |k, p| k.sport = p, cd, mind, maxd, rng, taken)
    {
        return Some(rev);
    }
    let set: fn(&mut ConnKey, u16) = if icmp {
        |k, p| {
            k.sport = p;
            k.dport = p;
        }
    } else {
        |k, p| k.dport = p
    };
    unique_l4(&mut rev, set, cs, mins, maxs, rng, taken).then_some(rev)
}

fn set_addr(pkt: &mut Packet, v6: bool, src: bool, a: u128) {
    let act = match (v6, src) {
        (false, true) => SetAction::Ipv4Src((a as u32).to_be_bytes()),
        (false, false) => SetAction::Ipv4Dst((a as u32).to_be_bytes()),
        (true, true) => SetAction::Ipv6Src(a.to_be_bytes()),
        (true, false) => SetAction::Ipv6Dst(a.to_be_bytes()),
    };
    apply(pkt, &act);
}

/// Rewrite the L4 identifiers of a non-related packet to `key`'s
/// reverse (OVS `pat_packet`).
fn pat(pkt: &mut Packet, p: &Parsed, key: &ConnKey) {
    match key.proto {
        PROTO_TCP | PROTO_UDP => {
            let (s, d) = (key.dport, key.sport);
            if s != p.key.sport {
                apply(
                    pkt,
                    &SetAction::TpSrc {
                        proto: key.proto,
                        port: s,
                    },
                );
            }
            if d != p.key.dport {
                apply(
                    pkt,
                    &SetAction::TpDst {
                        proto: key.proto,
                        port: d,
                    },
                );
            }
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let id = key.sport;
            let at = p.l4 + 4;
            let d = pkt.data_mut();
            if at + 2 <= p.end {
                let old = u16::from_be_bytes([d[at], d[at + 1]]);
                if old != id {
                    d[at..at + 2].copy_from_slice(&id.to_be_bytes());
                    let c = u16::from_be_bytes([d[p.l4 + 2], d[p.l4 + 3]]);
                    // RFC 1624 eqn. 3.
                    let n = !fold(u32::from(!c) + u32::from(!old) + u32::from(id));
                    d[p.l4 + 2..p.l4 + 4].copy_from_slice(&n.to_be_bytes());
                }
            }
        }
        _ => {}
    }
}

/// Apply a connection's NAT to a packet (OVS `nat_packet`). `key` is the
/// stored key of the direction opposite to the packet's, `a` the action
/// bits for the packet's direction. Returns the `ct_state` NAT bit set.
pub fn nat_packet(pkt: &mut Packet, p: &Parsed, key: &ConnKey, a: u8) -> u32 {
    let bit = if a & SRC != 0 {
        super::cs::SNAT
    } else if a & DST != 0 {
        super::cs::DNAT
    } else {
        return 0;
    };
    if a & SRC != 0 {
        set_addr(pkt, key.ipv6, true, key.dst);
    } else {
        set_addr(pkt, key.ipv6, false, key.src);
    }
    if p.related {
        nat_inner(pkt, p, key, reverse(a));
    } else {
        pat(pkt, p, key);
    }
    bit
}

fn put16(d: &mut [u8], at: usize, v: u16) {
    if let Some(s) = d.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// RFC 1624 eqn. 3: a checksum field after covered bytes summing to
/// `old` changed to bytes summing to `new`.
fn adjust(c: u16, old: u32, new: u32) -> u16 {
    !fold(u32::from(!c) + u32::from(!fold(old)) + u32::from(fold(new)))
}

fn get16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Translate the packet quoted by an ICMP error and recompute the ICMP
/// checksum (OVS `nat_inner_packet`). The quoted headers' checksums (the
/// IPv4 header's, and the L4 one where the quote holds it) are updated
/// incrementally for the changed addresses and ports, as OVS's
/// `packet_set_ipv4_addr` and `packet_set_*_port` do; a zero (absent)
/// IPv4 UDP checksum stays zero.
fn nat_inner(pkt: &mut Packet, p: &Parsed, key: &ConnKey, a: u8) {
    let rk = key.reverse();
    let (il3, il4, l4, end) = (p.inner_l3, p.inner_l4, p.l4, p.end);
    let v6 = key.ipv6;
    let d = pkt.data_mut();
    if end > d.len() || il4 > end {
        return;
    }
    // Quoted ports / id: (offset, new value).
    let ports: &[(usize, u16)] = match key.proto {
        PROTO_TCP | PROTO_UDP => &[(il4, rk.dport), (il4 + 2, rk.sport)],
        PROTO_ICMP | PROTO_ICMPV6 => &[(il4 + 4, rk.sport)],
        _ => &[],
    };
    let (mut l4_old, mut l4_new) = (0u32, 0u32);
    for &(at, v) in ports {
        if at + 2 <= end {
            l4_old += u32::from(get16(d, at));
            l4_new += u32::from(v);
            put16(d, at, v);
        }
    }
    // The quoted address.
    let (sa, da) = if v6 {
        (il3 + 8, il3 + 24)
    } else {
        (il3 + 12, il3 + 16)
    };
    let target = if a & SRC != 0 {
        Some((sa, rk.dst))
    } else if a & DST != 0 {
        Some((da, rk.src))
    } else {
        None
    };
    let (mut ip_old, mut ip_new) = (0u32, 0u32);
    if let Some((at, val)) = target {
        let n = if v6 { 16 } else { 4 };
        let bytes = val.to_be_bytes();
        let new = &bytes[16 - n..];
        if at + n <= end {
            ip_old = sum(&d[at..at + n], 0);
            ip_new = sum(new, 0);
            d[at..at + n].copy_from_slice(new);
        }
    }
    if !v6 && il3 + 12 <= end {
        let c = get16(d, il3 + 10);
        put16(d, il3 + 10, adjust(c, ip_old, ip_new));
    }
    // The quoted L4 checksum: TCP and UDP cover ports and the
    // pseudo-header, ICMPv6 the id and the pseudo-header, ICMP the id.
    let (csum_at, pseudo) = match key.proto {
        PROTO_TCP => (il4 + 16, true),
        PROTO_UDP => (il4 + 6, true),
        PROTO_ICMPV6 => (il4 + 2, true),
        PROTO_ICMP => (il4 + 2, false),
        _ => (usize::MAX - 2, false),
    };
    if csum_at + 2 <= end {
        let c = get16(d, csum_at);
        if !(key.proto == PROTO_UDP && c == 0) {
            let (o, n) = if pseudo {
                (l4_old + ip_old, l4_new + ip_new)
            } else {
                (l4_old, l4_new)
            };
            let mut nc = adjust(c, o, n);
            if key.proto == PROTO_UDP && nc == 0 {
                nc = 0xffff;
            }
            put16(d, csum_at, nc);
        }
    }
    put16(d, l4 + 2, 0);
    let c = if v6 {
        let l3 = p.l3;
        let mut s = [0u8; 16];
        let mut t = [0u8; 16];
        s.copy_from_slice(&d[l3 + 8..l3 + 24]);
        t.copy_from_slice(&d[l3 + 24..l3 + 40]);
        let ps = pseudo_v6(s, t, PROTO_ICMPV6, u32::try_from(end - l4).unwrap_or(0));
        !fold(sum(&d[l4..end], ps))
    } else {
        !fold(sum(&d[l4..end], 0))
    };
    put16(d, l4 + 2, c);
}
