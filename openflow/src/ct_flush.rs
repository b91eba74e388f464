//! Nicira conntrack flush messages (OVS `include/openflow/nicira-ext.h`,
//! `lib/ofp-ct.c`): `NXT_CT_FLUSH_ZONE` (29, `struct nx_zone_id`: flush
//! one zone) and `NXT_CT_FLUSH` (32, `struct nx_ct_flush` then
//! properties: the original and reply tuples, each nested properties,
//! and the zone), as `ovs-ofctl flush-conntrack` sends them. Both are
//! Nicira vendor/experimenter messages in every OpenFlow version.

use crate::error::{DecodeError, OfError};
use crate::header::{Header, HEADER_LEN};
use crate::nicira::NX_VENDOR_ID;
use crate::wire::Rd;

/// `NXT_CT_FLUSH_ZONE`.
pub const NXT_CT_FLUSH_ZONE: u32 = 29;
/// `NXT_CT_FLUSH`.
pub const NXT_CT_FLUSH: u32 = 32;

/// One direction's tuple (OVS `struct ofp_ct_tuple`): what is absent
/// matches anything. Addresses are IPv6 or IPv4-mapped IPv6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtTuple {
    /// `NXT_CT_TUPLE_SRC`.
    pub src: Option<[u8; 16]>,
    /// `NXT_CT_TUPLE_DST`.
    pub dst: Option<[u8; 16]>,
    /// `NXT_CT_TUPLE_SRC_PORT`.
    pub src_port: Option<u16>,
    /// `NXT_CT_TUPLE_DST_PORT`.
    pub dst_port: Option<u16>,
    /// `NXT_CT_TUPLE_ICMP_ID`.
    pub icmp_id: Option<u16>,
    /// `NXT_CT_TUPLE_ICMP_TYPE`.
    pub icmp_type: Option<u8>,
    /// `NXT_CT_TUPLE_ICMP_CODE`.
    pub icmp_code: Option<u8>,
}

/// A conntrack flush request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtFlush {
    /// Only this zone (`None`: every zone).
    pub zone: Option<u16>,
    /// Only this IP protocol (0: any).
    pub ip_proto: u8,
    /// The original direction's tuple.
    pub orig: CtTuple,
    /// The reply direction's tuple.
    pub reply: CtTuple,
}

fn bad_len() -> DecodeError {
    DecodeError::new(OfError::BAD_PROPERTY_LEN, "bad ct flush property length")
}

/// Cut the next 8-byte-aligned property: its type and body (after the
/// 4-byte header, without padding).
fn prop<'a>(rd: &mut Rd<'a>) -> Result<(u16, &'a [u8]), DecodeError> {
    let typ = rd.peek_len(0).map_err(|_| bad_len())? as u16;
    let len = rd.peek_len(2).map_err(|_| bad_len())?;
    if len < 4 || len.next_multiple_of(8) > rd.len() {
        return Err(bad_len());
    }
    let all = rd.take(len.next_multiple_of(8))?;
    Ok((typ, &all[4..len]))
}

/// A 16-bit value: OVS `ofpprop_put_be16` pads it to 4 bytes inside the
/// length (as OpenFlow does), and `ofpprop_parse_be16` takes any body at
/// least 2 bytes long.
fn be16(b: &[u8]) -> Result<u16, DecodeError> {
    match b {
        [x, y, ..] => Ok(u16::from_be_bytes([*x, *y])),
        _ => Err(bad_len()),
    }
}

/// An 8-bit value (`ofpprop_parse_u8`: any body at least 1 byte long).
fn u8_(b: &[u8]) -> Result<u8, DecodeError> {
    b.first().copied().ok_or_else(bad_len)
}

/// An address: IPv6 or IPv4-mapped; every address of a request must be
/// of one family (`l3`: 4 or 6 once known; the all-zero address is
/// either).
fn addr(b: &[u8], l3: &mut u8) -> Result<[u8; 16], DecodeError> {
    let a: [u8; 16] = b
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad_len)?;
    if a != [0; 16] {
        let mapped = a[..10] == [0; 10] && a[10..12] == [0xff, 0xff];
        let fam = if mapped { 4 } else { 6 };
        if *l3 != 0 && *l3 != fam {
            return Err(DecodeError::new(
                OfError::BAD_PROPERTY_VALUE,
                "ct flush addresses of two families",
            ));
        }
        *l3 = fam;
    }
    Ok(a)
}

fn tuple(body: &[u8], l3: &mut u8) -> Result<CtTuple, DecodeError> {
    // Nested properties start 8 bytes into the property (OVS
    // `ofpprop_parse_nested`): 4 bytes of it are in `body`.
    let mut rd = Rd::new(
        body.get(4..).ok_or_else(bad_len)?,
        OfError::BAD_PROPERTY_LEN,
    );
    let mut t = CtTuple::default();
    while !rd.is_empty() {
        let (typ, b) = prop(&mut rd)?;
        match typ {
            0 => t.src = Some(addr(b, l3)?),
            1 => t.dst = Some(addr(b, l3)?),
            2 => t.src_port = Some(be16(b)?),
            3 => t.dst_port = Some(be16(b)?),
            4 => t.icmp_id = Some(be16(b)?),
            5 => t.icmp_type = Some(u8_(b)?),
            6 => t.icmp_code = Some(u8_(b)?),
            // OVS ignores types it does not know.
            _ => {}
        }
    }
    Ok(t)
}

/// Whether `buf` (one framed message) is `NXT_CT_FLUSH_ZONE` or
/// `NXT_CT_FLUSH`; then the request it carries.
///
/// # Errors
/// `OFPBRC_BAD_LEN` for a short message, `OFPBPC_BAD_LEN` or
/// `OFPBPC_BAD_VALUE` for bad properties, `OFPBRC_EPERM` for nonzero
/// padding (OVS: `NXBRC_MUST_BE_ZERO`).
pub fn decode(h: &Header, buf: &[u8]) -> Option<Result<CtFlush, DecodeError>> {
    // OFPT_VENDOR (1.0) and OFPT_EXPERIMENTER (1.3+) are both type 4.
    let b = buf.get(HEADER_LEN..usize::from(h.length))?;
    if h.typ != 4 || b.len() < 8 || b[..4] != NX_VENDOR_ID.to_be_bytes() {
        return None;
    }
    let subtype = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let body = &b[8..];
    let must_be_zero = || DecodeError::new(OfError::BAD_REQUEST_EPERM, "nonzero padding");
    match subtype {
        NXT_CT_FLUSH_ZONE => Some((|| {
            let mut rd = Rd::new(body, OfError::BAD_LEN);
            if rd.take(6)?.iter().any(|x| *x != 0) {
                return Err(must_be_zero());
            }
            let zone = rd.u16()?;
            rd.end()?;
            Ok(CtFlush {
                zone: Some(zone),
                ..CtFlush::default()
            })
        })()),
        NXT_CT_FLUSH => Some((|| {
            let mut rd = Rd::new(body, OfError::BAD_LEN);
            let ip_proto = rd.u8()?;
            if rd.take(7)?.iter().any(|x| *x != 0) {
                return Err(must_be_zero());
            }
            let mut f = CtFlush {
                ip_proto,
                ..CtFlush::default()
            };
            let mut l3 = 0;
            let mut rd = Rd::new(rd.rest(), OfError::BAD_PROPERTY_LEN);
            while !rd.is_empty() {
                let (typ, b) = prop(&mut rd)?;
                match typ {
                    0 => f.orig = tuple(b, &mut l3)?,
                    1 => f.reply = tuple(b, &mut l3)?,
                    2 => f.zone = Some(be16(b)?),
                    _ => {}
                }
            }
            Ok(f)
        })()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ovs-ofctl flush-conntrack` as it reaches the switch, built with
    /// the real tool against a listening socket would need a peer; the
    /// layouts below are OVS 3.1's (`ofp_ct_match_encode`).
    fn msg(version: u8, subtype: u32, body: &[u8]) -> Vec<u8> {
        let mut m = vec![version, 4, 0, 0, 0, 0, 0, 9];
        m.extend(NX_VENDOR_ID.to_be_bytes());
        m.extend(subtype.to_be_bytes());
        m.extend(body);
        let n = m.len() as u16;
        m[2..4].copy_from_slice(&n.to_be_bytes());
        m
    }

    fn dec(m: &[u8]) -> Option<Result<CtFlush, DecodeError>> {
        decode(&Header::parse(m).unwrap(), m)
    }

    #[test]
    fn zone_and_tuple_flushes_decode() {
        let z = dec(&msg(4, NXT_CT_FLUSH_ZONE, &[0, 0, 0, 0, 0, 0, 0, 5])).unwrap();
        assert_eq!(z.unwrap().zone, Some(5));
        let mut body = vec![6, 0, 0, 0, 0, 0, 0, 0];
        // zone 7
        body.extend([0, 2, 0, 8, 0, 7, 0, 0]);
        // orig tuple: src 10.0.0.1 (mapped), dst port 80
        let mut nested = vec![0, 0, 0, 20];
        nested.extend([0; 10]);
        nested.extend([0xff, 0xff, 10, 0, 0, 1]);
        nested.extend([0, 0, 0, 0]);
        nested.extend([0, 3, 0, 8, 0, 80, 0, 0]);
        let len = 8 + nested.len() as u16;
        body.extend([0, 0]);
        body.extend(len.to_be_bytes());
        body.extend([0; 4]);
        body.extend(nested);
        let f = dec(&msg(1, NXT_CT_FLUSH, &body)).unwrap().unwrap();
        assert_eq!(f.zone, Some(7));
        assert_eq!(f.ip_proto, 6);
        assert_eq!(f.orig.dst_port, Some(80));
        assert_eq!(f.orig.src.unwrap()[12..], [10, 0, 0, 1]);
        assert_eq!(f.reply, CtTuple::default());
        // Every truncation is an error or not a flush, never a panic.
        let full = msg(1, NXT_CT_FLUSH, &body);
        for n in 8..full.len() {
            let mut m = full[..n].to_vec();
            let l = n as u16;
            m[2..4].copy_from_slice(&l.to_be_bytes());
            if let Ok(h) = Header::parse(&m) {
                let _ = decode(&h, &m);
            }
        }
        // Nonzero padding.
        assert!(dec(&msg(4, NXT_CT_FLUSH_ZONE, &[1, 0, 0, 0, 0, 0, 0, 5]))
            .unwrap()
            .is_err());
        // An empty 16-bit property.
        let mut short = body.clone();
        short.extend([0, 2, 0, 4, 0, 0, 0, 0]);
        let e = dec(&msg(1, NXT_CT_FLUSH, &short)).unwrap().unwrap_err();
        assert_eq!(e.err, OfError::BAD_PROPERTY_LEN);
        // Another Nicira subtype is not a flush.
        assert!(dec(&msg(4, 20, &[0; 8])).is_none());
    }

    /// What the real `ovs-ofctl -O OpenFlow13 ct-flush` (OVS 3.1.0) sent
    /// to a listening socket for `zone=6 ct_nw_src=10.0.0.1` and for
    /// `'ct_nw_src=10.0.0.1,ct_nw_proto=1,icmp_id=7,icmp_type=8'` (ICMP
    /// identifier, type and code always given, in both tuples).
    #[test]
    fn real_ovs_ofctl_ct_flush_decodes() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let zone = hex(concat!(
            "0404004000000002000023200000002000000000000000000000002000000000",
            "0000001400000000000000000000ffff0a000001000000000002000800060000"
        ));
        let f = dec(&zone).unwrap().unwrap();
        assert_eq!(f.zone, Some(6));
        assert_eq!(f.ip_proto, 0);
        assert_eq!(f.orig.src.unwrap()[10..], [0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!(f.orig.dst, None);
        assert_eq!(f.reply, CtTuple::default());
        let icmp = hex(concat!(
            "0404007000000002000023200000002001000000000000000000003800000000",
            "0000001400000000000000000000ffff0a000001000000000004000800070000",
            "0005000508000000000600050000000000010020000000000004000800000000",
            "00050005000000000006000500000000"
        ));
        let f = dec(&icmp).unwrap().unwrap();
        assert_eq!(f.zone, None);
        assert_eq!(f.ip_proto, 1);
        assert_eq!(
            (f.orig.icmp_id, f.orig.icmp_type, f.orig.icmp_code),
            (Some(7), Some(8), Some(0))
        );
        assert_eq!(
            (f.reply.icmp_id, f.reply.icmp_type, f.reply.icmp_code),
            (Some(0), Some(0), Some(0))
        );
    }
}
