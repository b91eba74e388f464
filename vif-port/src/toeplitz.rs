//! The Toeplitz hash of receive-side scaling, as the netif control ring
//! selects it (`XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ`, `io/netif.h`),
//! and the flow parsing that feeds it.
//!
//! The hash follows Microsoft's "RSS hashing functions" definition: for
//! every set bit of the input, most significant bit of the first byte
//! first, XOR in the 32 key bits starting at that bit position. Inputs
//! are in network byte order:
//!
//! | hash type (`XEN_NETIF_CTRL_HASH_TYPE_*`) | input |
//! |---|---|
//! | `IPV4` | source address, destination address (8 bytes) |
//! | `IPV4_TCP` | those, source port, destination port (12 bytes) |
//! | `IPV6` | source address, destination address (32 bytes) |
//! | `IPV6_TCP` | those, source port, destination port (36 bytes) |
//!
//! As Linux netback (`hash.c`, `xenvif_set_skb_hash`): a TCP packet that
//! is not a fragment uses the `_TCP` type when it is enabled, otherwise
//! the address-only type when enabled; a packet no enabled type covers has
//! no hash. Checked against the published RSS verification vectors (see
//! the tests).

/// Largest key the control ring accepts (`XEN_NETIF_CTRL_HASH_KEY_SIZE` is
/// not in netif.h; Linux netback's `XEN_NETBK_MAX_HASH_KEY_SIZE` is 40).
pub const MAX_KEY_SIZE: usize = 40;

/// `XEN_NETIF_CTRL_HASH_TYPE_IPV4`: hash IPv4 addresses.
pub const HASH_TYPE_IPV4: u32 = 1 << 0;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`: hash IPv4 addresses and TCP ports.
pub const HASH_TYPE_IPV4_TCP: u32 = 1 << 1;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV6`: hash IPv6 addresses.
pub const HASH_TYPE_IPV6: u32 = 1 << 2;
/// `XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP`: hash IPv6 addresses and TCP ports.
pub const HASH_TYPE_IPV6_TCP: u32 = 1 << 3;
/// Every hash type this backend implements (the answer to
/// `XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS`).
pub const HASH_TYPES_ALL: u32 =
    HASH_TYPE_IPV4 | HASH_TYPE_IPV4_TCP | HASH_TYPE_IPV6 | HASH_TYPE_IPV6_TCP;

/// The Toeplitz hash of `input` under `key`. Key bits past the end of
/// `key` count as zero, so any key length (including an empty one) is
/// accepted. No allocation.
pub fn hash(key: &[u8], input: &[u8]) -> u32 {
    let byte = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
    // A 64-bit window of the key whose top 32 bits start at the current
    // input bit.
    let mut window = (byte(0) << 56) | (byte(1) << 48) | (byte(2) << 40) | (byte(3) << 32);
    window |= (byte(4) << 24) | (byte(5) << 16) | (byte(6) << 8) | byte(7);
    let mut result = 0u32;
    for (i, &b) in input.iter().enumerate() {
        for bit in (0..8).rev() {
            if b & (1 << bit) != 0 {
                result ^= (window >> 32) as u32;
            }
            window <<= 1;
        }
        // Refill the byte that shifted out of the low end's view.
        window |= byte(i + 8);
    }
    result
}

/// The hash type used for a packet and its 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHash {
    /// The value.
    pub value: u32,
    /// The one `HASH_TYPE_*` it was computed over.
    pub kind: u32,
}

/// The address/port input of one packet, as parsed from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    v6: bool,
    /// Source then destination address (4 or 16 bytes each), then the
    /// ports.
    buf: [u8; 36],
    addr_len: usize,
    /// Whether the ports are there (TCP, not a fragment).
    tcp: bool,
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;

/// Parses Ethernet (with up to two VLAN tags), IPv4 or IPv6 (without
/// extension headers) and TCP; `None` for anything else or too short.
fn parse(frame: &[u8]) -> Option<Flow> {
    let mut off = 12;
    let mut ethertype = be16(frame, off)?;
    for _ in 0..2 {
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            off += 4;
            ethertype = be16(frame, off)?;
        }
    }
    let l3 = off + 2;
    let mut buf = [0u8; 36];
    let (v6, addr_len, proto, l4, fragment) = match ethertype {
        ETH_P_IP => {
            let vihl = *frame.get(l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            let addrs = frame.get(l3 + 12..l3 + 20)?;
            buf.get_mut(..8)?.copy_from_slice(addrs);
            let frag = be16(frame, l3 + 6)? & 0x3fff != 0;
            (false, 4, *frame.get(l3 + 9)?, l3 + ihl, frag)
        }
        ETH_P_IPV6 => {
            if *frame.get(l3)? >> 4 != 6 {
                return None;
            }
            let addrs = frame.get(l3 + 8..l3 + 40)?;
            buf.get_mut(..32)?.copy_from_slice(addrs);
            (true, 16, *frame.get(l3 + 6)?, l3 + 40, false)
        }
        _ => return None,
    };
    let mut tcp = false;
    if proto == IPPROTO_TCP && !fragment {
        if let Some(ports) = frame.get(l4..l4 + 4) {
            buf.get_mut(2 * addr_len..2 * addr_len + 4)?
                .copy_from_slice(ports);
            tcp = true;
        }
    }
    Some(Flow {
        v6,
        buf,
        addr_len,
        tcp,
    })
}

/// The Toeplitz hash of an Ethernet frame for the enabled `types`
/// (`HASH_TYPE_*` bits) under `key`; `None` when no enabled type applies.
pub fn hash_frame(key: &[u8], types: u32, frame: &[u8]) -> Option<FlowHash> {
    let flow = parse(frame)?;
    let (l3_type, l4_type) = if flow.v6 {
        (HASH_TYPE_IPV6, HASH_TYPE_IPV6_TCP)
    } else {
        (HASH_TYPE_IPV4, HASH_TYPE_IPV4_TCP)
    };
    let addrs = 2 * flow.addr_len;
    let (len, kind) = if flow.tcp && types & l4_type != 0 {
        (addrs + 4, l4_type)
    } else if types & l3_type != 0 {
        (addrs, l3_type)
    } else {
        return None;
    };
    Some(FlowHash {
        value: hash(key, flow.buf.get(..len)?),
        kind,
    })
}

/// A stable flow hash for queue selection when the frontend configured no
/// hash (no control ring): a multiply-xor hash of the addresses and TCP
/// ports (as parsed for Toeplitz), and for other frames of the Ethernet
/// addresses and type. The same flow always gets the same value, as
/// Linux's `skb_get_hash` does for netback's `select_queue`, at a few ns
/// instead of the bit-serial Toeplitz. It only picks one of at most 8
/// queues, so a sender steering its flows into one queue gains nothing it
/// could not get with one flow: no keyed (DoS-resistant) hash is needed.
pub fn default_flow_hash(frame: &[u8]) -> u32 {
    let input = match parse(frame) {
        Some(f) => {
            let len = 2 * f.addr_len + if f.tcp { 4 } else { 0 };
            return fold(f.buf.get(..len).unwrap_or(&f.buf));
        }
        None => frame.get(..14).unwrap_or(frame),
    };
    fold(input)
}

/// Multiply-xor over 8-byte words (zero-padded), folded to 32 bits.
fn fold(input: &[u8]) -> u32 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ input.len() as u64;
    for chunk in input.chunks(8) {
        let mut w = [0u8; 8];
        if let Some(dst) = w.get_mut(..chunk.len()) {
            dst.copy_from_slice(chunk);
        }
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    h = (h ^ (h >> 29)).wrapping_mul(K);
    (h ^ (h >> 32)) as u32
}

/// The RSS verification key (Microsoft's, also the 82599 datasheet's).
pub const DEFAULT_KEY: [u8; MAX_KEY_SIZE] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Microsoft's "Verifying the RSS Hash Calculation" tables (also the
    /// 82599 datasheet's RSS verification suite): destination, source,
    /// ports, IPv4-only hash, with-TCP hash.
    const V4: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "161.142.100.80",
            1766,
            "66.9.149.187",
            2794,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            "65.69.140.83",
            4739,
            "199.92.111.2",
            14230,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            "12.22.207.184",
            38024,
            "24.19.198.95",
            12898,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            "209.142.163.6",
            2217,
            "38.27.205.30",
            48228,
            0x82989176,
            0xafc7327f,
        ),
        (
            "202.188.127.2",
            1303,
            "153.39.163.191",
            44251,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];
    const V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:3::1",
            1766,
            "3ffe:2501:200:1fff::7",
            2794,
            0x2cc18cd5,
            0x40207d3d,
        ),
        (
            "ff02::1",
            4739,
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            0x0f0c461c,
            0xdde51bbf,
        ),
        (
            "fe80::200:f8ff:fe21:67cf",
            38024,
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            0x4b61e985,
            0x02d1feef,
        ),
    ];

    fn tcp_frame(src: &[u8], dst: &[u8], sport: u16, dport: u16, vlan: bool) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        if src.len() == 4 {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        } else {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        }
        f.extend_from_slice(src);
        f.extend_from_slice(dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    #[test]
    fn ipv4_vectors() {
        for (dst, dport, src, sport, h2, h4) in V4 {
            let s = src.parse::<Ipv4Addr>().unwrap().octets();
            let d = dst.parse::<Ipv4Addr>().unwrap().octets();
            let mut input = s.to_vec();
            input.extend_from_slice(&d);
            assert_eq!(hash(&DEFAULT_KEY, &input), h2, "{src} -> {dst}");
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(
                hash(&DEFAULT_KEY, &input),
                h4,
                "{src}:{sport} -> {dst}:{dport}"
            );
            // The same through frame parsing, per the hash types.
            for vlan in [false, true] {
                let f = tcp_frame(&s, &d, sport, dport, vlan);
                let all = hash_frame(&DEFAULT_KEY, HASH_TYPES_ALL, &f).unwrap();
                assert_eq!(
                    all,
                    FlowHash {
                        value: h4,
                        kind: HASH_TYPE_IPV4_TCP
                    }
                );
                let l3 = hash_frame(&DEFAULT_KEY, HASH_TYPE_IPV4, &f).unwrap();
                assert_eq!(
                    l3,
                    FlowHash {
                        value: h2,
                        kind: HASH_TYPE_IPV4
                    }
                );
                assert_eq!(hash_frame(&DEFAULT_KEY, HASH_TYPE_IPV6_TCP, &f), None);
            }
        }
    }

    #[test]
    fn ipv6_vectors() {
        for (dst, dport, src, sport, h2, h4) in V6 {
            let s = src.parse::<Ipv6Addr>().unwrap().octets();
            let d = dst.parse::<Ipv6Addr>().unwrap().octets();
            let f = tcp_frame(&s, &d, sport, dport, false);
            let all = hash_frame(&DEFAULT_KEY, HASH_TYPES_ALL, &f).unwrap();
            assert_eq!(
                all,
                FlowHash {
                    value: h4,
                    kind: HASH_TYPE_IPV6_TCP
                },
                "{src}"
            );
            let l3 = hash_frame(&DEFAULT_KEY, HASH_TYPE_IPV6 | HASH_TYPE_IPV4_TCP, &f).unwrap();
            assert_eq!(
                l3,
                FlowHash {
                    value: h2,
                    kind: HASH_TYPE_IPV6
                },
                "{src}"
            );
            assert_eq!(hash_frame(&DEFAULT_KEY, HASH_TYPE_IPV4, &f), None);
        }
    }

    #[test]
    fn fragments_and_short_frames_use_addresses_or_nothing() {
        let mut f = tcp_frame(&[10, 0, 0, 1], &[10, 0, 0, 2], 1, 2, false);
        f[20] = 0x20; // MF set: a fragment, ports not hashed
        let h = hash_frame(&DEFAULT_KEY, HASH_TYPES_ALL, &f).unwrap();
        assert_eq!(h.kind, HASH_TYPE_IPV4);
        for n in 0..f.len() {
            let _ = hash_frame(&DEFAULT_KEY, HASH_TYPES_ALL, &f[..n]);
            let _ = default_flow_hash(&f[..n]);
        }
        assert_eq!(hash_frame(&DEFAULT_KEY, HASH_TYPES_ALL, &[0u8; 60]), None);
        // A short key is zero-extended; an empty one hashes to 0.
        assert_eq!(hash(&[], &[0xff; 12]), 0);
    }

    #[test]
    fn one_flow_one_hash() {
        let a = tcp_frame(&[10, 0, 0, 1], &[10, 0, 0, 2], 4000, 80, false);
        let mut b = a.clone();
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(default_flow_hash(&a), default_flow_hash(&b));
        let c = tcp_frame(&[10, 0, 0, 1], &[10, 0, 0, 2], 4001, 80, false);
        assert_ne!(default_flow_hash(&a), default_flow_hash(&c));
        // Flows differing in one port spread over 4 and 8 queues.
        for n in [4usize, 8] {
            let mut per_queue = vec![0; n];
            for port in 0..256u16 {
                let f = tcp_frame(&[10, 0, 0, 1], &[10, 0, 0, 2], 40000 + port, 80, false);
                per_queue[default_flow_hash(&f) as usize % n] += 1;
            }
            let fair = 256 / n;
            assert!(
                per_queue.iter().all(|&c| c >= fair / 2),
                "{n} queues: {per_queue:?}"
            );
        }
    }
}
