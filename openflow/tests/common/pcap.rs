//! A small pcapng reader for the capture tests: Section Header Block
//! (0x0A0D0D0A, either byte order), Interface Description Block (1) for
//! the link type, Enhanced Packet Blocks (6); Ethernet (linktype 1) or
//! Linux cooked (113) frames carrying IPv4/TCP. Payloads are reassembled
//! per TCP direction in sequence order (retransmitted bytes are dropped).
//!
//! Test code: it panics on malformed captures.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One TCP direction: `(src ip, src port, dst ip, dst port)`.
pub type Flow = ([u8; 4], u16, [u8; 4], u16);

/// A TCP segment with payload, in capture order.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Direction.
    pub flow: Flow,
    /// Sequence number of the first payload byte.
    pub seq: u32,
    /// Payload.
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize, le: bool) -> u16 {
    let a = [b[at], b[at + 1]];
    if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    }
}

fn u32_at(b: &[u8], at: usize, le: bool) -> u32 {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

/// The link-layer frames of every Enhanced Packet Block, with the link type
/// of their interface.
pub fn frames(file: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut linktypes: Vec<u16> = Vec::new();
    let mut le = true;
    let mut pos = 0;
    while pos + 12 <= file.len() {
        let typ_raw = &file[pos..pos + 4];
        if typ_raw == [0x0a, 0x0d, 0x0d, 0x0a] {
            // Byte-order magic decides the section's endianness.
            le = file[pos + 8..pos + 12] == [0x4d, 0x3c, 0x2b, 0x1a];
            linktypes.clear();
        }
        let typ = u32_at(file, pos, le);
        let len = u32_at(file, pos + 4, le) as usize;
        assert!(len >= 12 && pos + len <= file.len(), "bad pcapng block");
        let body = &file[pos + 8..pos + len - 4];
        match typ {
            1 => linktypes.push(u16_at(body, 0, le)),
            6 => {
                let ifc = u32_at(body, 0, le) as usize;
                let caplen = u32_at(body, 12, le) as usize;
                out.push((linktypes[ifc], body[20..20 + caplen].to_vec()));
            }
            _ => {}
        }
        pos += len;
    }
    out
}

/// TCP segments with a payload, in capture order.
pub fn tcp_segments(file: &[u8]) -> Vec<Segment> {
    let mut segs = Vec::new();
    for (linktype, f) in frames(file) {
        let (ethertype, ip) = match linktype {
            1 => (u16::from_be_bytes([f[12], f[13]]), &f[14..]),
            113 => (u16::from_be_bytes([f[14], f[15]]), &f[16..]),
            other => panic!("unsupported link type {other}"),
        };
        if ethertype != 0x0800 || ip[9] != 6 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let tcp = &ip[ihl..total];
        let doff = usize::from(tcp[12] >> 4) * 4;
        let data = &tcp[doff..];
        if data.is_empty() {
            continue;
        }
        let flow = (
            [ip[12], ip[13], ip[14], ip[15]],
            u16::from_be_bytes([tcp[0], tcp[1]]),
            [ip[16], ip[17], ip[18], ip[19]],
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        segs.push(Segment {
            flow,
            seq,
            data: data.to_vec(),
        });
    }
    segs
}

/// The byte stream of each TCP direction, reassembled by sequence number
/// (retransmitted bytes dropped; a gap panics: the capture is incomplete).
pub fn streams(file: &[u8]) -> BTreeMap<Flow, Vec<u8>> {
    let mut by_flow: BTreeMap<Flow, Vec<Segment>> = BTreeMap::new();
    for s in tcp_segments(file) {
        by_flow.entry(s.flow).or_default().push(s);
    }
    by_flow
        .into_iter()
        .map(|(flow, mut segs)| {
            let base = segs[0].seq;
            segs.sort_by_key(|s| s.seq.wrapping_sub(base));
            let mut stream = Vec::new();
            let mut next = base;
            for s in segs {
                // A segment starting past what we have: bytes are missing.
                let ahead = s.seq.wrapping_sub(next);
                assert!(ahead == 0 || ahead >= 0x8000_0000, "gap in TCP stream");
                let skip = next.wrapping_sub(s.seq) as usize;
                if skip < s.data.len() && next.wrapping_sub(s.seq) < 0x8000_0000 {
                    stream.extend_from_slice(&s.data[skip..]);
                    next = s.seq.wrapping_add(s.data.len() as u32);
                }
            }
            (flow, stream)
        })
        .collect()
}
