//! IP fragment reassembly before tracking (OVS lib/ipf.c).
//!
//! Fragments are keyed by (zone, family, source, destination, protocol,
//! identification). Each fragment's payload is copied into its
//! datagram's list; the fragment that completes the datagram (first and
//! last fragment present, no holes) gets the whole datagram back,
//! rebuilt from the first fragment's headers, and is tracked as one
//! packet. The others are [`Outcome::Held`]: the caller drops them (OVS
//! steals them from the batch). The completed datagram carries the size
//! of its largest fragment, so that output cuts it back into fragments
//! that fit the links it came through ([`crate::fragment`]).
//!
//! Bounds, as OVS's defaults:
//! - at most [`IpfConfig::max_frags`] fragments held in all (OVS
//!   `IPF_MAX_FRAGS_DEFAULT`, 1000);
//! - fragments other than the last must carry at least
//!   [`IpfConfig::min_v4_frag_size`] / `min_v6_frag_size` L3 bytes (OVS
//!   1200 / 1280), so one datagram holds at most 65535 / that many;
//! - a datagram not complete within [`IpfConfig::timeout_ms`] (OVS
//!   `IPF_FRAG_LIST_TIMEOUT`, 15 s) is dropped;
//! - overlapping or duplicate fragments are refused and their datagram
//!   dropped (RFC 5722; OVS refuses the fragment), and a datagram longer
//!   than 65535 bytes is refused.

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::csum::{fold, sum};
use crate::packet::{be16, be32, ethernet, EtherType, IpProtocol};

/// Reassembly bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpfConfig {
    /// Fragments held in all (OVS `dpctl/ipf-set-max-nfrags`).
    pub max_frags: usize,
    /// Smallest IPv4 non-last fragment, L3 bytes (OVS
    /// `dpctl/ipf-set-min-frag v4`).
    pub min_v4_frag_size: usize,
    /// Smallest IPv6 non-last fragment, L3 bytes.
    pub min_v6_frag_size: usize,
    /// How long a datagram may take to complete, ms.
    pub timeout_ms: u64,
    /// Reassemble IPv4 fragments (OVS `dpctl/ipf-set-enabled v4`); when
    /// off, IPv4 fragments are `+inv`.
    pub v4_enabled: bool,
    /// Reassemble IPv6 fragments.
    pub v6_enabled: bool,
}

impl Default for IpfConfig {
    fn default() -> Self {
        IpfConfig {
            max_frags: 1000,
            min_v4_frag_size: 1200,
            min_v6_frag_size: 1280,
            timeout_ms: 15_000,
            v4_enabled: true,
            v6_enabled: true,
        }
    }
}

/// Reassembly counters of one address family (OVS `ipf-get-status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpfFamilyStats {
    /// Fragments accepted into a list.
    pub accepted: u64,
    /// Fragments of completed datagrams.
    pub completed: u64,
    /// Fragments dropped with their datagram at its timeout.
    pub expired: u64,
    /// Non-last fragments below the minimum size.
    pub too_small: u64,
    /// Fragments overlapping another.
    pub overlap: u64,
}

/// Reassembly counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpfStats {
    /// IPv4.
    pub v4: IpfFamilyStats,
    /// IPv6.
    pub v6: IpfFamilyStats,
    /// Fragments accepted into a list.
    pub accepted: u64,
    /// Datagrams completed.
    pub completed: u64,
    /// Fragments refused: malformed, too small, overlapping, over bounds.
    pub invalid: u64,
    /// Fragments refused because they overlap another.
    pub overlap: u64,
    /// Fragments refused because `max_frags` were held.
    pub full: u64,
    /// Datagrams dropped incomplete at their timeout.
    pub expired: u64,
    /// Fragments held now.
    pub held: u64,
}

/// What [`Ipf::process`] did.
#[derive(Debug)]
pub enum Outcome {
    /// Copied and held; the datagram is incomplete.
    Held,
    /// This fragment completed its datagram.
    Complete {
        /// The whole frame.
        frame: Vec<u8>,
        /// Largest fragment of the datagram, L3 bytes (Linux
        /// `frag_max_size`): output cuts the datagram back into
        /// fragments of at most this size ([`crate::fragment`]).
        max_size: u16,
        /// The fragments' identification (IPv4: 16 bits).
        id: u32,
    },
    /// Refused (counted).
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: u128,
    dst: u128,
    id: u32,
    zone: u16,
    proto: u8,
    v6: bool,
}

#[derive(Debug)]
struct List {
    /// Held fragments: (first byte, end byte exclusive, payload).
    frags: Vec<(usize, usize, Vec<u8>)>,
    /// Headers of the first fragment (L2 + L3, for IPv6 without the
    /// fragment header), once it arrived; `next` is the offset of the
    /// next-header byte to patch (IPv6).
    head: Option<(Vec<u8>, usize)>,
    /// Datagram payload length, once the last fragment arrived.
    total: Option<usize>,
    /// Largest fragment held, L3 bytes.
    max_size: usize,
    expires: u64,
}

/// The reassembler.
#[derive(Debug, Default)]
pub struct Ipf {
    cfg: IpfConfig,
    lists: HashMap<FragKey, List, foldhash::fast::RandomState>,
    /// Lists in creation order (their expiry order).
    order: VecDeque<(u64, FragKey)>,
    held: usize,
    stats: IpfStats,
    /// Per family, `[v4, v6]`.
    fam: [IpfFamilyStats; 2],
}

/// A parsed fragment.
struct Frag {
    key: FragKey,
    start: usize,
    more: bool,
    /// Offset of the fragment's payload in the frame, and its end.
    data: usize,
    end: usize,
    /// Headers to keep (frame[..hdr_end] minus the fragment header for
    /// IPv6), for the first fragment.
    head: Vec<u8>,
    next_at: usize,
    l3_len: usize,
}

fn parse(d: &[u8], zone: u16) -> Option<Frag> {
    let (ty, l3) = ethernet::l3_offset(d)?;
    let ip = d.get(l3..)?;
    match ty {
        EtherType::Ipv4 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let total = usize::from(be16(ip, 2));
            if ihl < 20 || total < ihl || total > ip.len() || fold(sum(&ip[..ihl], 0)) != 0xffff {
                return None;
            }
            let fo = be16(ip, 6);
            Some(Frag {
                key: FragKey {
                    src: u128::from(be32(ip, 12)),
                    dst: u128::from(be32(ip, 16)),
                    id: u32::from(be16(ip, 4)),
                    zone,
                    proto: ip[9],
                    v6: false,
                },
                start: usize::from(fo & 0x1fff) * 8,
                more: fo & 0x2000 != 0,
                data: l3 + ihl,
                end: l3 + total,
                head: d[..l3 + ihl].to_vec(),
                next_at: 0,
                l3_len: total,
            })
        }
        EtherType::Ipv6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let plen = usize::from(be16(ip, 4));
            if 40 + plen > ip.len() {
                return None;
            }
            let end = l3 + 40 + plen;
            // Walk to the fragment header.
            let mut nh = ip[6];
            let mut next_at = l3 + 6;
            let mut at = l3 + 40;
            for _ in 0..8 {
                match IpProtocol::from(nh) {
                    IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                        if at + 8 > end {
                            return None;
                        }
                        let len = (usize::from(d[at + 1]) + 1) * 8;
                        next_at = at;
                        nh = d[at];
                        at += len;
                    }
                    IpProtocol::Ipv6Frag => {
                        if at + 8 > end {
                            return None;
                        }
                        let fo = be16(d, at + 2);
                        let mut head = d[..at].to_vec();
                        head[next_at] = d[at];
                        return Some(Frag {
                            key: FragKey {
                                src: super::key::addr_from(&ip[8..24]),
                                dst: super::key::addr_from(&ip[24..40]),
                                id: be32(d, at + 4),
                                zone,
                                proto: d[at],
                                v6: true,
                            },
                            start: usize::from(fo & 0xfff8),
                            more: fo & 1 != 0,
                            data: at + 8,
                            end,
                            head,
                            next_at,
                            l3_len: 40 + plen,
                        });
                    }
                    _ => return None,
                }
            }
            None
        }
        _ => None,
    }
}

impl Ipf {
    /// Change the bounds (held fragments stay).
    pub fn set_config(&mut self, cfg: IpfConfig) {
        self.cfg = cfg;
    }

    /// Entries in the expiry queue (for tests of its bound).
    #[cfg(test)]
    pub(crate) fn order_len(&self) -> usize {
        self.order.len()
    }

    /// Counters.
    pub fn stats(&self) -> IpfStats {
        IpfStats {
            held: self.held as u64,
            v4: self.fam[0],
            v6: self.fam[1],
            ..self.stats
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> IpfConfig {
        self.cfg
    }

    /// Drop a datagram; returns how many fragments it held.
    fn drop_list(&mut self, k: &FragKey) -> usize {
        match self.lists.remove(k) {
            Some(l) => {
                self.held -= l.frags.len();
                l.frags.len()
            }
            None => 0,
        }
    }

    /// Bytes the reassembler holds: its table of datagrams (buckets of a
    /// key, a list and a control byte), the expiry queue, and each held
    /// datagram's fragments (their payload buffers and kept headers, as
    /// allocated). Walks the held datagrams, which `max_nfrags` bounds.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let buckets = match self.lists.capacity() {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        let held: usize = self
            .lists
            .values()
            .map(|l| {
                l.frags.capacity() * size_of::<(usize, usize, Vec<u8>)>()
                    + l.frags.iter().map(|f| f.2.capacity()).sum::<usize>()
                    + l.head.as_ref().map_or(0, |h| h.0.capacity())
            })
            .sum();
        buckets * (size_of::<(FragKey, List)>() + 1)
            + self.order.capacity() * size_of::<(u64, FragKey)>()
            + held
    }

    /// Drop datagrams whose time ran out (`now` in ms).
    pub fn expire(&mut self, now: u64) {
        while let Some(&(t, k)) = self.order.front() {
            if t > now {
                break;
            }
            self.order.pop_front();
            if self.lists.get(&k).is_some_and(|l| l.expires <= now) {
                let n = self.drop_list(&k);
                self.fam[usize::from(k.v6)].expired += n as u64;
                self.stats.expired += 1;
            }
        }
    }

    fn invalid(&mut self) -> Outcome {
        self.stats.invalid += 1;
        Outcome::Invalid
    }

    /// Take a fragment frame (the caller found it is one); `now` in ms.
    pub fn process(&mut self, d: &[u8], zone: u16, now: u64) -> Outcome {
        self.expire(now);
        let Some(f) = parse(d, zone) else {
            return self.invalid();
        };
        let fi = usize::from(f.key.v6);
        let (min, enabled) = if f.key.v6 {
            (self.cfg.min_v6_frag_size, self.cfg.v6_enabled)
        } else {
            (self.cfg.min_v4_frag_size, self.cfg.v4_enabled)
        };
        if !enabled {
            return self.invalid();
        }
        let len = f.end.saturating_sub(f.data);
        if f.more && f.l3_len < min {
            self.fam[fi].too_small += 1;
            return self.invalid();
        }
        if (f.more && len % 8 != 0) || len == 0 || f.start + len > 65535 {
            return self.invalid();
        }
        if self.held >= self.cfg.max_frags {
            self.stats.full += 1;
            return self.invalid();
        }
        let fend = f.start + len;
        if !self.lists.contains_key(&f.key) {
            let expires = now + self.cfg.timeout_ms;
            self.lists.insert(
                f.key,
                List {
                    frags: Vec::new(),
                    head: None,
                    total: None,
                    max_size: 0,
                    expires,
                },
            );
            self.order.push_back((expires, f.key));
            // Entries of lists that completed or were dropped stay until
            // their time; compact when they dominate (amortised O(1)).
            if self.order.len() > 2 * (self.lists.len() + self.cfg.max_frags) {
                let lists = &self.lists;
                self.order
                    .retain(|(t, k)| lists.get(k).is_some_and(|l| l.expires == *t));
            }
        }
        let Some(l) = self.lists.get_mut(&f.key) else {
            return self.invalid();
        };
        let overlap = l.frags.iter().any(|&(s, e, _)| f.start < e && s < fend);
        let bad_end = match l.total {
            Some(t) => fend > t || (!f.more && fend != t),
            None => !f.more && l.frags.iter().any(|&(_, e, _)| e > fend),
        };
        if overlap || bad_end {
            if overlap {
                self.stats.overlap += 1;
                self.fam[fi].overlap += 1;
            }
            self.drop_list(&f.key);
            return self.invalid();
        }
        l.frags.push((f.start, fend, d[f.data..f.end].to_vec()));
        l.max_size = l.max_size.max(f.l3_len);
        if f.start == 0 {
            l.head = Some((f.head, f.next_at));
        }
        if !f.more {
            l.total = Some(fend);
        }
        self.held += 1;
        self.stats.accepted += 1;
        self.fam[fi].accepted += 1;
        let (Some(total), Some(_)) = (l.total, l.head.as_ref()) else {
            return Outcome::Held;
        };
        let have: usize = l.frags.iter().map(|(s, e, _)| e - s).sum();
        if have != total {
            return Outcome::Held;
        }
        let Some(l) = self.lists.remove(&f.key) else {
            return self.invalid();
        };
        self.held -= l.frags.len();
        self.fam[fi].completed += l.frags.len() as u64;
        let Some((head, _)) = l.head else {
            return self.invalid();
        };
        let mut frags = l.frags;
        frags.sort_by_key(|f| f.0);
        let mut out = head;
        let hl = out.len();
        out.reserve(total);
        for (_, _, p) in &frags {
            out.extend_from_slice(p);
        }
        let Some((_, l3)) = ethernet::l3_offset(&out) else {
            return self.invalid();
        };
        if f.key.v6 {
            let plen = out.len() - l3 - 40;
            let Ok(plen) = u16::try_from(plen) else {
                return self.invalid();
            };
            out[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let Ok(tl) = u16::try_from(out.len() - l3) else {
                return self.invalid();
            };
            out[l3 + 2..l3 + 4].copy_from_slice(&tl.to_be_bytes());
            // Flags and offset of a whole datagram.
            out[l3 + 6] = 0;
            out[l3 + 7] = 0;
            out[l3 + 10] = 0;
            out[l3 + 11] = 0;
            let c = !fold(sum(&out[l3..hl], 0));
            out[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        self.stats.completed += 1;
        Outcome::Complete {
            frame: out,
            max_size: u16::try_from(l.max_size).unwrap_or(u16::MAX),
            id: f.key.id,
        }
    }
}
