//! IP fragmentation at output: cut a datagram the connection tracker
//! reassembled ([`crate::conntrack::ipf`]) back into fragments no larger
//! than the largest fragment it arrived in, as Linux's bridge netfilter
//! does with `IPCB(skb)->frag_max_size` (`br_nf_dev_queue_xmit` →
//! `ip_do_fragment`, `ip6_fragment` for IPv6). A port with a 1500-byte
//! MTU (a veth, a tap) cannot send the whole datagram; the fragments it
//! arrived in fit, since they came through a link of that size.
//!
//! IPv4 (RFC 791 §3.2 "Fragmentation"): every fragment gets the L2
//! header and a copy of the IP header; the first keeps all options, the
//! others only those whose copy flag (bit 0x80 of the option type) is
//! set, padded with End of Options List to a 4-byte multiple. Fragment
//! offset in 8-byte units, More Fragments on all but the last (and on
//! the last if the datagram was itself a fragment with MF set), DF
//! clear, total length and header checksum recomputed; the
//! identification stays the datagram's.
//!
//! IPv6 (RFC 8200 §4.5): the unfragmentable part is the IPv6 header,
//! Hop-by-Hop Options, Routing headers and Destination Options headers
//! followed by a Routing header (as Linux `ip6_find_1stfragopt`); a
//! Fragment header (identification from the caller: the datagram's
//! original one) goes after it and the rest is cut in 8-byte multiples.
//!
//! Each fragment keeps the datagram's input port and metadata, without
//! GSO state and with [`Csum::None`]: the L4 checksum must be complete
//! before cutting (it covers the whole datagram).

use crate::buffer::{Csum, Packet};
use crate::csum::{fold, sum};
#[cfg(test)]
use crate::packet::be32;
use crate::packet::{be16, ethernet, EtherType, IpProtocol};

/// Most fragments one datagram may be cut into. The largest original
/// fragment is at least `min_v4_frag_size` / `min_v6_frag_size` bytes
/// (1200 / 1280 by default), which gives 56 fragments of a 64 KiB
/// datagram; the bound keeps a lowered minimum from turning one
/// datagram into thousands of packets.
pub const MAX_FRAGMENTS: usize = 1024;

/// IPv4 fixed header, bytes.
const V4_HDR: usize = 20;
/// IPv6 fixed header, bytes.
const V6_HDR: usize = 40;
/// IPv6 Fragment header, bytes.
const V6_FRAG_HDR: usize = 8;

/// Why a datagram was not fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// Not an IPv4 or IPv6 frame (for instance an MPLS label was pushed).
    NotIp,
    /// Headers that do not parse: truncated, bad lengths, IPv4 options
    /// that overrun the header, too many IPv6 extension headers.
    Malformed,
    /// IPv4 with Don't Fragment set.
    DontFragment,
    /// The size leaves no room for 8 payload bytes after the headers.
    TooSmall,
    /// More than [`MAX_FRAGMENTS`] fragments.
    TooMany,
    /// The L4 checksum is still [`Csum::Partial`].
    ChecksumPartial,
}

impl std::fmt::Display for FragError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FragError::NotIp => "not IPv4 or IPv6",
            FragError::Malformed => "malformed IP headers",
            FragError::DontFragment => "IPv4 Don't Fragment set",
            FragError::TooSmall => "fragment size too small for the headers",
            FragError::TooMany => "too many fragments",
            FragError::ChecksumPartial => "L4 checksum not complete",
        })
    }
}

/// The L3 length of `frame` (IPv4 total length, IPv6 40 + payload
/// length), or `None` if it is not IP or is truncated.
pub fn l3_len(frame: &[u8]) -> Option<usize> {
    let (ty, l3) = ethernet::l3_offset(frame)?;
    let ip = frame.get(l3..)?;
    let n = match ty {
        EtherType::Ipv4 if ip.len() >= V4_HDR => usize::from(be16(ip, 2)),
        EtherType::Ipv6 if ip.len() >= V6_HDR => V6_HDR + usize::from(be16(ip, 4)),
        _ => return None,
    };
    (n <= ip.len()).then_some(n)
}

/// Cut the datagram in `pkt` into fragments of at most `max` L3 bytes
/// (IP header included), appended to `out`. A datagram that fits is
/// appended as a copy. `id` is the IPv6 Fragment header's identification
/// (IPv4 keeps the header's own). On error nothing is appended.
pub fn fragment(pkt: &Packet, max: usize, id: u32, out: &mut Vec<Packet>) -> Result<(), FragError> {
    let mut scratch = Packet::new();
    fragment_each(pkt, max, id, &mut scratch, &mut |f| out.push(f.clone()))
}

/// [`fragment`], building each fragment in `scratch` (its buffer reused)
/// and handing it to `emit`. Everything is checked before the first
/// `emit`: on error `emit` is never called.
pub fn fragment_each(
    pkt: &Packet,
    max: usize,
    id: u32,
    scratch: &mut Packet,
    emit: &mut dyn FnMut(&mut Packet),
) -> Result<(), FragError> {
    if matches!(pkt.csum, Csum::Partial { .. }) {
        return Err(FragError::ChecksumPartial);
    }
    let frame = pkt.data();
    let (ty, l3) = ethernet::l3_offset(frame).ok_or(FragError::NotIp)?;
    match ty {
        EtherType::Ipv4 => v4(pkt, l3, max, scratch, emit),
        EtherType::Ipv6 => v6(pkt, l3, max, id, scratch, emit),
        _ => Err(FragError::NotIp),
    }
}

/// Start `scratch` as a fragment of `pkt` holding `parts` in turn.
fn start(scratch: &mut Packet, pkt: &Packet, parts: &[&[u8]]) {
    scratch.reset();
    scratch.in_port = pkt.in_port;
    scratch.md = pkt.md;
    scratch.set_frame(parts[0]);
    for p in &parts[1..] {
        scratch.extend_from_slice(p);
    }
}

/// Fragment count for `len` payload bytes, the first fragment carrying
/// `first` and the others `rest` (both > 0).
fn count(len: usize, first: usize, rest: usize) -> usize {
    if len <= first {
        1
    } else {
        1 + (len - first).div_ceil(rest)
    }
}

/// The options of an IPv4 header (`opts`, after the fixed 20 bytes) that
/// go into every fragment: those with the copy flag, padded with End of
/// Options List (0) to a 4-byte multiple. NOP (1) is not copied; EOL
/// ends the list.
fn copied_options(opts: &[u8]) -> Result<Vec<u8>, FragError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let len = usize::from(*opts.get(i + 1).ok_or(FragError::Malformed)?);
                if len < 2 || i + len > opts.len() {
                    return Err(FragError::Malformed);
                }
                if t & 0x80 != 0 {
                    out.extend_from_slice(&opts[i..i + len]);
                }
                i += len;
            }
        }
    }
    out.resize(out.len().next_multiple_of(4), 0);
    Ok(out)
}

fn v4(
    pkt: &Packet,
    l3: usize,
    max: usize,
    scratch: &mut Packet,
    emit: &mut dyn FnMut(&mut Packet),
) -> Result<(), FragError> {
    let frame = pkt.data();
    let ip = &frame[l3..];
    if ip.len() < V4_HDR || ip[0] >> 4 != 4 {
        return Err(FragError::Malformed);
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(be16(ip, 2));
    if ihl < V4_HDR || total < ihl || total > ip.len() {
        return Err(FragError::Malformed);
    }
    if total <= max {
        scratch.clone_from_packet(pkt);
        scratch.gso = None;
        emit(scratch);
        return Ok(());
    }
    let fo = be16(ip, 6);
    if fo & 0x4000 != 0 {
        return Err(FragError::DontFragment);
    }
    let base = usize::from(fo & 0x1fff) * 8;
    let more = fo & 0x2000 != 0;
    let later_opts = copied_options(&ip[V4_HDR..ihl])?;
    let later_hl = V4_HDR + later_opts.len();
    let step = |hl: usize| max.checked_sub(hl).map(|r| r / 8 * 8).filter(|&r| r > 0);
    let (first, rest) = match (step(ihl), step(later_hl)) {
        (Some(f), Some(r)) => (f, r),
        _ => return Err(FragError::TooSmall),
    };
    let payload = &ip[ihl..total];
    if base + payload.len() > 65535 {
        return Err(FragError::Malformed);
    }
    if count(payload.len(), first, rest) > MAX_FRAGMENTS {
        return Err(FragError::TooMany);
    }
    let mut off = 0;
    while off < payload.len() {
        let (hl, n) = if off == 0 {
            (ihl, first)
        } else {
            (later_hl, rest)
        };
        let end = (off + n).min(payload.len());
        let last = end == payload.len();
        let opts: &[u8] = if off == 0 {
            &ip[V4_HDR..ihl]
        } else {
            &later_opts
        };
        start(
            scratch,
            pkt,
            &[&frame[..l3 + V4_HDR], opts, &payload[off..end]],
        );
        let h = &mut scratch.data_mut()[l3..];
        h[0] = 0x40 | (hl / 4) as u8;
        let tl = (hl + end - off) as u16;
        h[2..4].copy_from_slice(&tl.to_be_bytes());
        let mut f = ((base + off) / 8) as u16;
        if !last || more {
            f |= 0x2000;
        }
        h[6..8].copy_from_slice(&f.to_be_bytes());
        h[10] = 0;
        h[11] = 0;
        let c = !fold(sum(&h[..hl], 0));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        emit(scratch);
        off = end;
    }
    Ok(())
}

fn v6(
    pkt: &Packet,
    l3: usize,
    max: usize,
    id: u32,
    scratch: &mut Packet,
    emit: &mut dyn FnMut(&mut Packet),
) -> Result<(), FragError> {
    let frame = pkt.data();
    let ip = &frame[l3..];
    if ip.len() < V6_HDR || ip[0] >> 4 != 6 {
        return Err(FragError::Malformed);
    }
    let end = l3 + V6_HDR + usize::from(be16(ip, 4));
    if end > frame.len() {
        return Err(FragError::Malformed);
    }
    if end - l3 <= max {
        scratch.clone_from_packet(pkt);
        scratch.gso = None;
        emit(scratch);
        return Ok(());
    }
    // The unfragmentable part: walk Hop-by-Hop and Routing headers, and
    // Destination Options that a Routing header follows.
    let mut next_at = l3 + 6;
    let mut at = l3 + V6_HDR;
    let ext_len = |at: usize| -> Result<usize, FragError> {
        if at + 8 > end {
            return Err(FragError::Malformed);
        }
        Ok((usize::from(frame[at + 1]) + 1) * 8)
    };
    let mut walked = 0;
    loop {
        let here = IpProtocol::from(frame[next_at]);
        let take = match here {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route => true,
            IpProtocol::Ipv6Opts => {
                let len = ext_len(at)?;
                at + len <= end && IpProtocol::from(frame[at]) == IpProtocol::Ipv6Route
            }
            // Already a fragment: not ours to cut again.
            IpProtocol::Ipv6Frag => return Err(FragError::Malformed),
            _ => false,
        };
        if !take {
            break;
        }
        walked += 1;
        if walked > 8 {
            return Err(FragError::Malformed);
        }
        let len = ext_len(at)?;
        if at + len > end {
            return Err(FragError::Malformed);
        }
        next_at = at;
        at += len;
    }
    let unfrag = at;
    let nh = frame[next_at];
    let hl = unfrag - l3 + V6_FRAG_HDR;
    let step = max
        .checked_sub(hl)
        .map(|r| r / 8 * 8)
        .filter(|&r| r > 0)
        .ok_or(FragError::TooSmall)?;
    let payload = &frame[unfrag..end];
    if count(payload.len(), step, step) > MAX_FRAGMENTS {
        return Err(FragError::TooMany);
    }
    let mut off = 0;
    while off < payload.len() {
        let stop = (off + step).min(payload.len());
        let mut fh = [0u8; V6_FRAG_HDR];
        fh[0] = nh;
        let mut f = off as u16;
        if stop != payload.len() {
            f |= 1;
        }
        fh[2..4].copy_from_slice(&f.to_be_bytes());
        fh[4..8].copy_from_slice(&id.to_be_bytes());
        start(scratch, pkt, &[&frame[..unfrag], &fh, &payload[off..stop]]);
        let d = scratch.data_mut();
        d[next_at] = IpProtocol::Ipv6Frag.into();
        let plen = (hl - V6_HDR + stop - off) as u16;
        d[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        emit(scratch);
        off = stop;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ipf::{Ipf, IpfConfig, Outcome};
    use proptest::prelude::*;

    const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

    /// An Ethernet frame (with a VLAN tag if `vlan`) of an IPv4 UDP
    /// datagram with `opts` (a multiple of 4 bytes) and `payload`.
    fn v4_frame(vlan: bool, opts: &[u8], id: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = MACS.to_vec();
        if vlan {
            f.extend_from_slice(&[0x81, 0, 0, 10]);
        }
        f.extend_from_slice(&[8, 0]);
        let l3 = f.len();
        let hl = 20 + opts.len();
        let tl = (hl + payload.len()) as u16;
        f.extend_from_slice(&[0x40 | (hl / 4) as u8, 0]);
        f.extend_from_slice(&tl.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&[0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(opts);
        let c = !fold(sum(&f[l3..l3 + hl], 0));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// An IPv6 frame with extension headers `exts` (next-header value,
    /// length byte) before a UDP `payload`.
    fn v6_frame(exts: &[(u8, u8)], payload: &[u8]) -> Vec<u8> {
        let mut f = MACS.to_vec();
        f.extend_from_slice(&[0x86, 0xdd]);
        let first = exts.first().map_or(17, |e| e.0);
        let mut body = Vec::new();
        for (i, &(_, len)) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(17, |e| e.0);
            let n = (usize::from(len) + 1) * 8;
            let mut h = vec![0x5a; n];
            h[0] = next;
            h[1] = len;
            body.extend_from_slice(&h);
        }
        body.extend_from_slice(payload);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.extend_from_slice(&[first, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&body);
        f
    }

    /// A reassembler that takes fragments of any size.
    fn ipf() -> Ipf {
        let mut i = Ipf::default();
        i.set_config(IpfConfig {
            min_v4_frag_size: 0,
            min_v6_frag_size: 0,
            ..IpfConfig::default()
        });
        i
    }

    /// Check what every fragment must be: at most `max` L3 bytes, a valid
    /// IPv4 header checksum, DF clear, non-last payloads in 8-byte units;
    /// IPv4 options after the first: only copied ones.
    fn check(frags: &[Packet], max: usize, v6: bool) {
        for (i, p) in frags.iter().enumerate() {
            let d = p.data();
            let (_, l3) = ethernet::l3_offset(d).unwrap();
            let len = l3_len(d).unwrap();
            assert!(len <= max, "fragment {i}: {len} > {max}");
            assert_eq!(d.len(), l3 + len, "no trailing bytes");
            let last = i + 1 == frags.len();
            if v6 {
                continue;
            }
            let ip = &d[l3..];
            let hl = usize::from(ip[0] & 0xf) * 4;
            assert_eq!(fold(sum(&ip[..hl], 0)), 0xffff, "header checksum");
            let fo = be16(ip, 6);
            assert_eq!(fo & 0x4000, 0, "DF clear");
            assert_eq!(fo & 0x2000 != 0, !last, "MF on all but the last");
            if !last {
                assert_eq!((len - hl) % 8, 0);
            }
            if i > 0 {
                let mut j = 20;
                while j < hl && ip[j] != 0 {
                    assert!(ip[j] & 0x80 != 0, "only copied options after the first");
                    j += usize::from(ip[j + 1]);
                }
            }
        }
    }

    /// Feed `frags` to `ipf`; the outcome of the last one.
    fn reassemble(ipf: &mut Ipf, frags: &[Packet]) -> Outcome {
        let mut out = Outcome::Invalid;
        for (i, f) in frags.iter().enumerate() {
            out = ipf.process(f.data(), 0, 0);
            if i + 1 < frags.len() {
                assert!(matches!(out, Outcome::Held), "fragment {i}: {out:?}");
            }
        }
        out
    }

    /// Sender fragments `orig` at `first_max`; the tracker reassembles
    /// them; output cuts the datagram again at the largest fragment's
    /// size; a receiver reassembles that: the original datagram again.
    fn round_trip(orig: &[u8], first_max: usize, id: u32, v6: bool) {
        let pkt = Packet::from_slice(orig);
        let mut sent = Vec::new();
        fragment(&pkt, first_max, id, &mut sent).unwrap();
        assert!(sent.len() >= 2);
        check(&sent, first_max, v6);
        let Outcome::Complete {
            frame,
            max_size,
            id: got_id,
        } = reassemble(&mut ipf(), &sent)
        else {
            panic!("not reassembled");
        };
        assert_eq!(frame, orig, "tracker's reassembly");
        let largest = sent.iter().map(|p| l3_len(p.data()).unwrap()).max();
        assert_eq!(Some(usize::from(max_size)), largest);
        assert_eq!(got_id, id);
        let mut whole = Packet::from_slice(&frame);
        whole.md.frag.max_size = max_size;
        let mut again = Vec::new();
        fragment(&whole, usize::from(max_size), got_id, &mut again).unwrap();
        check(&again, usize::from(max_size), v6);
        for f in &again {
            assert_eq!(f.md, whole.md, "metadata kept");
        }
        let Outcome::Complete { frame: back, .. } = reassemble(&mut ipf(), &again) else {
            panic!("refragmented datagram not reassembled");
        };
        assert_eq!(back, orig, "receiver's reassembly");
    }

    /// IPv4 options (type, data length): copied (0x82 security, 0x83
    /// loose source route, 0x88 stream id) and not (0x07 record route,
    /// 0x44 timestamp), with NOPs.
    fn v4_options() -> impl Strategy<Value = Vec<u8>> {
        let opt = prop_oneof![
            Just(vec![1u8]),
            (
                prop::sample::select(vec![0x82u8, 0x83, 0x88, 0x07, 0x44]),
                0usize..8
            )
                .prop_map(|(t, n)| {
                    let mut o = vec![t, (n + 2) as u8];
                    o.extend(std::iter::repeat_n(0xa5, n));
                    o
                }),
        ];
        prop::collection::vec(opt, 0..5).prop_map(|os| {
            let mut v: Vec<u8> = os.concat();
            v.truncate(40);
            // A truncated option would be malformed: cut at a boundary.
            let mut ok = 0;
            let mut i = 0;
            while i < v.len() {
                let n = if v[i] == 1 { 1 } else { usize::from(v[i + 1]) };
                if i + n > v.len() {
                    break;
                }
                i += n;
                ok = i;
            }
            v.truncate(ok);
            v.resize(v.len().next_multiple_of(4), 0);
            v
        })
    }

    proptest! {
        #[test]
        fn v4_reassembled_then_refragmented_is_the_original(
            vlan in any::<bool>(),
            opts in v4_options(),
            id in any::<u16>(),
            payload in prop::collection::vec(any::<u8>(), 1..5000),
            cut in 0.0f64..1.0,
        ) {
            let f = v4_frame(vlan, &opts, id, &payload);
            let hl = 20 + opts.len();
            let total = hl + payload.len();
            // From headers plus 8 bytes up to just below the datagram.
            let lo = hl + 8;
            prop_assume!(lo < total);
            let max = lo + ((total - lo) as f64 * cut) as usize;
            round_trip(&f, max, u32::from(id), false);
        }

        #[test]
        fn v6_reassembled_then_refragmented_is_the_original(
            hbh in prop::option::of(0u8..3),
            mid in prop::collection::vec((prop::sample::select(vec![43u8, 60]), 0u8..3), 0..3),
            id in any::<u32>(),
            payload in prop::collection::vec(any::<u8>(), 1..5000),
            cut in 0.0f64..1.0,
        ) {
            let mut exts: Vec<(u8, u8)> = hbh.map(|l| (0, l)).into_iter().collect();
            exts.extend(mid);
            let f = v6_frame(&exts, &payload);
            let l3 = f.len() - 14;
            let hdrs: usize = exts.iter().map(|e| (usize::from(e.1) + 1) * 8).sum();
            let lo = 40 + hdrs + 8 + 8;
            prop_assume!(lo < l3);
            let max = lo + ((l3 - lo) as f64 * cut) as usize;
            round_trip(&f, max, id, true);
        }
    }

    proptest! {
        /// Whatever the headers (a guest chose them, a flow rewrote
        /// them), no panic, and fragments are never larger than asked.
        #[test]
        fn any_frame_is_cut_or_refused(
            v6 in any::<bool>(),
            hdr in prop::collection::vec(any::<u8>(), 0..120),
            body in 0usize..9000,
            max in 0usize..70_000,
        ) {
            let mut f = MACS.to_vec();
            f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[8, 0] });
            let mut ip = hdr;
            if let Some(b) = ip.first_mut() {
                *b = (*b & 0x0f) | if v6 { 0x60 } else { 0x40 };
            }
            ip.resize(ip.len() + body, 0x33);
            f.extend_from_slice(&ip);
            let mut out = Vec::new();
            match fragment(&Packet::from_slice(&f), max, 1, &mut out) {
                Ok(()) if out.len() > 1 => {
                    for p in &out {
                        prop_assert!(l3_len(p.data()).unwrap() <= max);
                    }
                }
                Ok(()) => prop_assert_eq!(out.len(), 1),
                Err(_) => prop_assert!(out.is_empty()),
            }
        }
    }

    #[test]
    fn fragments_carry_only_copied_options_after_the_first() {
        // Security (copied, 4 bytes), record route (not, 7), NOP, EOL.
        let opts = [0x82, 4, 1, 2, 0x07, 7, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let f = v4_frame(false, &opts, 7, &[9; 3000]);
        let mut out = Vec::new();
        fragment(&Packet::from_slice(&f), 1500, 0, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let ihl = |p: &Packet| p.data()[14] & 0xf;
        assert_eq!(ihl(&out[0]), 9);
        assert_eq!(ihl(&out[1]), 6);
        assert_eq!(&out[1].data()[34..38], &[0x82, 4, 1, 2]);
        // Offsets: 1500 - 36 = 1464 bytes per first fragment, 1480 after.
        let off = |p: &Packet| be16(&p.data()[14..], 6) & 0x1fff;
        assert_eq!(off(&out[1]) * 8, 1464);
        assert_eq!(off(&out[2]) * 8, 1464 + 1472);
    }

    #[test]
    fn v6_fragment_header_goes_after_the_unfragmentable_part() {
        // Hop-by-Hop, Destination Options before a Routing header,
        // Routing, Destination Options for the destination.
        let f = v6_frame(&[(0, 0), (60, 0), (43, 0), (60, 1)], &[3; 3000]);
        let mut out = Vec::new();
        fragment(&Packet::from_slice(&f), 1280, 0x1234_5678, &mut out).unwrap();
        for (i, p) in out.iter().enumerate() {
            let d = &p.data()[14..];
            // The Routing header (third) now says Fragment next.
            assert_eq!(d[40 + 16], 44);
            let fh = &d[40 + 24..];
            assert_eq!(fh[0], 60, "the destination's options follow");
            assert_eq!(be32(fh, 4), 0x1234_5678);
            assert_eq!(fh[3] & 1 != 0, i + 1 < out.len(), "M flag");
        }
    }

    #[test]
    fn refusals_emit_nothing() {
        let f = v4_frame(false, &[], 1, &[0; 3000]);
        let mut out = Vec::new();
        let mut df = f.clone();
        df[20] = 0x40;
        let c = !fold(sum(
            &{
                let mut h = df[14..34].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            },
            0,
        ));
        df[24..26].copy_from_slice(&c.to_be_bytes());
        let r = |d: &[u8], max| fragment(&Packet::from_slice(d), max, 0, &mut Vec::new());
        assert_eq!(r(&df, 1500), Err(FragError::DontFragment));
        assert_eq!(r(&f, 27), Err(FragError::TooSmall));
        assert_eq!(r(&f, 28), Ok(()));
        assert_eq!(r(&[0u8; 60], 1500), Err(FragError::NotIp));
        let big = v4_frame(false, &[], 1, &[0; 20_000]);
        assert_eq!(r(&big, 28), Err(FragError::TooMany));
        // Options overrunning the header.
        let bad = v4_frame(false, &[0x82, 9, 0, 0], 1, &[0; 3000]);
        assert_eq!(r(&bad, 1500), Err(FragError::Malformed));
        // A datagram that fits is one copy.
        assert_eq!(r(&f, 3020), Ok(()));
        fragment(&Packet::from_slice(&f), 3020, 0, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data(), &f[..]);
        let mut partial = Packet::from_slice(&f);
        partial.csum = Csum::Partial {
            start: 34,
            offset: 6,
        };
        assert_eq!(
            fragment(&partial, 1500, 0, &mut out),
            Err(FragError::ChecksumPartial)
        );
        assert_eq!(out.len(), 1);
        // An IPv6 datagram that is already a fragment.
        let v6 = v6_frame(&[(44, 0)], &[0; 3000]);
        assert_eq!(r(&v6, 1280), Err(FragError::Malformed));
    }
}
