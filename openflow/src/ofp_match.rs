//! The match family (Open vSwitch `lib/ofp-match.c`, the framing parts of
//! `lib/nx-match.c`) for OpenFlow 1.0, 1.3, 1.4 and 1.5; the OXM and NXM
//! TLVs themselves are [`crate::oxm`]'s.
//!
//! - OpenFlow 1.0 `ofp_match` (40 bytes, `OFPFW10_*` [`wildcards`])
//!   becomes a [`Match`] as `ofputil_match_from_ofp10_match` does:
//!   `dl_vlan` 0xffff (`OFP_VLAN_NONE`) is "no tag" (`vlan_tci` 0 exact),
//!   `nw_tos` keeps only the DSCP bits, EtherTypes below 0x600 become
//!   0x05ff, wildcarded fields are zeroed, and for flow-mods
//!   (`ofputil_normalize_match`) fields whose prerequisites the match does
//!   not pin are wildcarded rather than rejected. Bits of `wildcards`
//!   above `OFPFW10_ALL` are ignored, as Open vSwitch does. A match is
//!   only encoded as `ofp_match` when it decodes back to itself
//!   ([`match_fits_ofp10`]).
//! - Nicira `nx_match` (OpenFlow 1.0 `NXT_FLOW_MOD`, `NXST_FLOW`, …):
//!   NXM TLVs of `match_len` bytes padded to 8, possibly with
//!   `NXM_NX_COOKIE(_W)`.
//! - OpenFlow 1.3+ `ofp_match` (1.3 §7.2.2): `OFPMT_OXM`, length, OXM
//!   TLVs, padding to 8.

use xennet_datapath::flow::Field;
use xennet_datapath::{FlowKey, FlowMask};

use crate::error::{DecodeError, OfError};
use crate::model::{EncodeError, Match, OxmField};
use crate::oxm::{self, Flavor};
use crate::port::{port_from_ofp10, port_to_ofp10};
use crate::wire::{be16, be32, be_value, err, ones, put_mac, unsupported, Put, Rd};

// ---------------------------------------------------------------------------
// OpenFlow 1.0 `ofp_match`.

/// `OFPFW10_*` wildcard bits of `ofp_match`.
pub mod wildcards {
    /// `OFPFW10_IN_PORT`.
    pub const IN_PORT: u32 = 1 << 0;
    /// `OFPFW10_DL_VLAN`.
    pub const DL_VLAN: u32 = 1 << 1;
    /// `OFPFW10_DL_SRC`.
    pub const DL_SRC: u32 = 1 << 2;
    /// `OFPFW10_DL_DST`.
    pub const DL_DST: u32 = 1 << 3;
    /// `OFPFW10_DL_TYPE`.
    pub const DL_TYPE: u32 = 1 << 4;
    /// `OFPFW10_NW_PROTO`.
    pub const NW_PROTO: u32 = 1 << 5;
    /// `OFPFW10_TP_SRC`.
    pub const TP_SRC: u32 = 1 << 6;
    /// `OFPFW10_TP_DST`.
    pub const TP_DST: u32 = 1 << 7;
    /// `OFPFW10_NW_SRC_SHIFT`: six bits of "low bits ignored" count.
    pub const NW_SRC_SHIFT: u32 = 8;
    /// `OFPFW10_NW_DST_SHIFT`.
    pub const NW_DST_SHIFT: u32 = 14;
    /// `OFPFW10_DL_VLAN_PCP`.
    pub const DL_VLAN_PCP: u32 = 1 << 20;
    /// `OFPFW10_NW_TOS`.
    pub const NW_TOS: u32 = 1 << 21;
    /// `OFPFW10_ALL`: every defined bit.
    pub const ALL: u32 = (1 << 22) - 1;
}

/// `sizeof(struct ofp_match)` (1.0).
pub(crate) const MATCH_LEN: usize = 40;

/// `OFP_VLAN_NONE`.
pub(crate) const OFP_VLAN_NONE: u16 = 0xffff;

/// OVS `ofputil_wcbits_to_netmask`.
pub(crate) fn wcbits_to_netmask(wcbits: u32) -> u32 {
    let w = wcbits & 0x3f;
    if w < 32 {
        !((1u32 << w) - 1)
    } else {
        0
    }
}

/// Decode `ofp_match` (40 bytes) as OVS `ofputil_match_from_ofp10_match`;
/// with `normalize`, also wildcard the fields whose prerequisites are not
/// met (`ofputil_normalize_match`, used for flow-mods). Returns the match
/// and the wire `wildcards` masked to `OFPFW10_ALL`.
pub(crate) fn match_from_ofp10(b: &[u8], normalize: bool) -> (Match, u32) {
    use wildcards as w;
    let wc = be32(b, 0) & w::ALL;
    let mut key = FlowKey::default();
    let mut mask = FlowMask::default();
    let mut set = |f: Field, v: u128, m: u128| {
        key.set(f, v & m);
        mask.set(f, m);
    };
    if wc & w::IN_PORT == 0 {
        set(
            Field::InPort,
            u128::from(port_from_ofp10(be16(b, 4))),
            0xffff_ffff,
        );
    }
    if wc & w::DL_SRC == 0 {
        set(Field::DlSrc, be_value(&b[6..12]), ones(48));
    }
    if wc & w::DL_DST == 0 {
        set(Field::DlDst, be_value(&b[12..18]), ones(48));
    }
    let dl_vlan = be16(b, 18);
    let pcp = u16::from(b[20]);
    if wc & w::DL_VLAN == 0 && dl_vlan == OFP_VLAN_NONE {
        set(Field::VlanTci, 0, 0xffff);
    } else {
        let tci = (dl_vlan & 0x0fff) | ((pcp << 13) & 0xe000) | 0x1000;
        let mut m = 0u16;
        if wc & w::DL_VLAN_PCP == 0 {
            m |= 0xe000 | 0x1000;
        }
        if wc & w::DL_VLAN == 0 {
            m |= 0x0fff | 0x1000;
        }
        if m != 0 {
            set(Field::VlanTci, u128::from(tci), u128::from(m));
        }
    }
    if wc & w::DL_TYPE == 0 {
        let t = be16(b, 22);
        let t = if t < 0x600 { 0x05ff } else { t };
        set(Field::DlType, u128::from(t), 0xffff);
    }
    if wc & w::NW_TOS == 0 {
        set(Field::NwTos, u128::from(b[24]), 0xfc);
    }
    if wc & w::NW_PROTO == 0 {
        set(Field::NwProto, u128::from(b[25]), 0xff);
    }
    let src_mask = wcbits_to_netmask(wc >> w::NW_SRC_SHIFT);
    if src_mask != 0 {
        set(Field::NwSrc, u128::from(be32(b, 28)), u128::from(src_mask));
    }
    let dst_mask = wcbits_to_netmask(wc >> w::NW_DST_SHIFT);
    if dst_mask != 0 {
        set(Field::NwDst, u128::from(be32(b, 32)), u128::from(dst_mask));
    }
    if wc & w::TP_SRC == 0 {
        set(Field::TpSrc, u128::from(be16(b, 36)), 0xffff);
    }
    if wc & w::TP_DST == 0 {
        set(Field::TpDst, u128::from(be16(b, 38)), 0xffff);
    }
    if normalize {
        normalize_match(&mut key, &mut mask);
    }
    (Match { key, mask }, wc)
}

/// OVS `ofputil_normalize_match` for the fields an `ofp_match` has.
pub(crate) fn normalize_match(key: &mut FlowKey, mask: &mut FlowMask) {
    let dl_type = key.get(Field::DlType);
    let proto = key.get(Field::NwProto);
    let (nw_addr, tp, nw_proto, ipvx) = match dl_type {
        0x0800 => (true, matches!(proto, 6 | 17 | 132 | 1), true, true),
        0x86dd => (false, matches!(proto, 6 | 17 | 132 | 58), true, true),
        0x0806 | 0x8035 => (true, false, true, false),
        _ => (false, false, false, false),
    };
    let mut clear = |f: Field| {
        mask.set(f, 0);
        key.set(f, 0);
    };
    if !nw_addr {
        clear(Field::NwSrc);
        clear(Field::NwDst);
    }
    if !tp {
        clear(Field::TpSrc);
        clear(Field::TpDst);
    }
    if !nw_proto {
        clear(Field::NwProto);
    }
    if !ipvx {
        clear(Field::NwTos);
        clear(Field::NwTtl);
    }
}

/// OVS `ofputil_match_to_ofp10_match`, without any check.
pub(crate) fn match_to_ofp10_raw(m: &Match) -> [u8; MATCH_LEN] {
    use wildcards as w;
    let k = &m.key;
    let mk = &m.mask;
    let mut wc = 0u32;
    if mk.get(Field::InPort) == 0 {
        wc |= w::IN_PORT;
    }
    if mk.get(Field::DlType) == 0 {
        wc |= w::DL_TYPE;
    }
    if mk.get(Field::NwProto) == 0 {
        wc |= w::NW_PROTO;
    }
    let netmask_wcbits = |f: Field| {
        let m = mk.get(f) as u32;
        if m == 0 {
            32
        } else {
            m.trailing_zeros()
        }
    };
    wc |= netmask_wcbits(Field::NwSrc) << w::NW_SRC_SHIFT;
    wc |= netmask_wcbits(Field::NwDst) << w::NW_DST_SHIFT;
    if mk.get(Field::NwTos) & 0xfc == 0 {
        wc |= w::NW_TOS;
    }
    if mk.get(Field::TpSrc) == 0 {
        wc |= w::TP_SRC;
    }
    if mk.get(Field::TpDst) == 0 {
        wc |= w::TP_DST;
    }
    if mk.get(Field::DlSrc) == 0 {
        wc |= w::DL_SRC;
    }
    if mk.get(Field::DlDst) == 0 {
        wc |= w::DL_DST;
    }
    let tci = k.vlan_tci();
    let tci_mask = mk.get(Field::VlanTci) as u16;
    let (mut dl_vlan, mut pcp) = (0u16, 0u8);
    if tci_mask == 0 {
        wc |= w::DL_VLAN | w::DL_VLAN_PCP;
    } else if tci_mask & 0x1000 != 0 && tci & 0x1000 == 0 {
        dl_vlan = OFP_VLAN_NONE;
    } else {
        if tci_mask & 0x0fff == 0 {
            wc |= w::DL_VLAN;
        } else {
            dl_vlan = tci & 0x0fff;
        }
        if tci_mask & 0xe000 == 0 {
            wc |= w::DL_VLAN_PCP;
        } else {
            pcp = (tci >> 13) as u8;
        }
    }
    let mut out = Vec::with_capacity(MATCH_LEN);
    out.u32(wc);
    out.u16(port_to_ofp10(k.get(Field::InPort) as u32).unwrap_or(0));
    put_mac(&mut out, k.get(Field::DlSrc));
    put_mac(&mut out, k.get(Field::DlDst));
    out.u16(dl_vlan);
    out.u8(pcp);
    out.u8(0);
    out.u16(k.dl_type());
    out.u8(k.nw_tos() & 0xfc);
    out.u8(k.nw_proto());
    out.u16(0);
    out.u32(k.get(Field::NwSrc) as u32);
    out.u32(k.get(Field::NwDst) as u32);
    out.u16(k.tp_src());
    out.u16(k.tp_dst());
    let mut a = [0u8; MATCH_LEN];
    a.copy_from_slice(&out);
    a
}

/// `vlan_tci` matches that say "no tag" in another way (CFI matched as 0)
/// are the same as the exact 0 the 1.0 decoder produces.
pub(crate) fn canonical(m: &Match) -> Match {
    let mut c = *m;
    let mk = c.mask.get(Field::VlanTci);
    if mk & 0x1000 != 0 && c.key.get(Field::VlanTci) & 0x1000 == 0 {
        c.key.set(Field::VlanTci, 0);
        c.mask.set(Field::VlanTci, 0xffff);
    }
    c
}

/// Whether a model match has an `ofp_match` form that decodes back to it.
pub fn match_fits_ofp10(m: &Match) -> bool {
    let raw = match_to_ofp10_raw(m);
    let (back, _) = match_from_ofp10(&raw, false);
    canonical(&back) == canonical(m)
}

/// Append `m` as `ofp_match`.
///
/// # Errors
/// `Unsupported` when `m` has no exact 1.0 form (metadata, TTL, fragment
/// or TCP-flags bits, IPv6 addresses, ECN, non-CIDR or partial masks, a
/// port beyond 16 bits, …); use NXM ([`EncodeOptions::nxm`]) for those.
pub(crate) fn encode_match(m: &Match, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let raw = match_to_ofp10_raw(m);
    let (back, _) = match_from_ofp10(&raw, false);
    if canonical(&back) != canonical(m) {
        return Err(unsupported("match with no ofp_match (OpenFlow 1.0) form"));
    }
    out.extend_from_slice(&raw);
    Ok(())
}

/// The IP protocol a match pins, if any.
pub(crate) fn match_proto(m: &Match) -> Option<u8> {
    let (v, mk) = m.field(OxmField::IpProto);
    (mk == 0xff).then_some(v as u8)
}

// ---------------------------------------------------------------------------
// Nicira `nx_match`.

/// Decode an `nx_match` that may carry `NXM_NX_COOKIE(_W)` (flow-mods and
/// flow-stats requests): the match, and the cookie and its mask (0, 0
/// when absent).
pub(crate) fn decode_nx_match_cookie(buf: &[u8]) -> Result<(Match, u64, u64), DecodeError> {
    oxm::decode_tlvs_with_cookie(buf)
}

/// Append `m` (and the cookie when `cookie_mask` is nonzero) as an NXM
/// match, returning its unpadded length; then pad to 8 bytes.
pub(crate) fn encode_nx_match_cookie(
    m: &Match,
    cookie: u64,
    cookie_mask: u64,
    out: &mut Vec<u8>,
) -> Result<u16, EncodeError> {
    let start = out.len();
    oxm::encode_tlvs(m, Flavor::Nxm, out);
    oxm::encode_cookie(cookie, cookie_mask, out);
    let len = out.len() - start;
    out.pad8(start);
    u16::try_from(len).map_err(|_| unsupported("nx_match too long"))
}

/// Take `match_len` bytes of `nx_match` plus its padding from `r`.
pub(crate) fn take_nx_match<'a>(r: &mut Rd<'a>, match_len: usize) -> Result<&'a [u8], DecodeError> {
    let m = r.take(match_len)?;
    r.skip(match_len.next_multiple_of(8) - match_len)?;
    Ok(m)
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3+ `ofp_match` (OXM).

/// `OFPMT_OXM`.
pub(crate) const OFPMT_OXM: u16 = 1;

/// Cut an `ofp_match` (type, length, OXM TLVs, padding to 8) and return
/// its TLVs.
pub(crate) fn take_match<'a>(rd: &mut Rd<'a>) -> Result<&'a [u8], DecodeError> {
    let bad_len = |_| err(OfError::BAD_MATCH_LEN, "bad match length");
    let len = rd.peek_len(2).map_err(bad_len)?;
    let typ = rd.peek_len(0).map_err(bad_len)?;
    if typ != usize::from(OFPMT_OXM) {
        return Err(err(OfError::BAD_MATCH_TYPE, "match is not OXM"));
    }
    if len < 4 {
        return Err(err(OfError::BAD_MATCH_LEN, "bad match length"));
    }
    let all = rd.take(len.next_multiple_of(8)).map_err(bad_len)?;
    Ok(&all[4..len])
}

pub(crate) fn get_match(rd: &mut Rd<'_>) -> Result<Match, DecodeError> {
    oxm::decode_tlvs(take_match(rd)?)
}

pub(crate) fn put_match(out: &mut Vec<u8>, m: &Match) {
    let start = out.len();
    out.u16(OFPMT_OXM);
    out.u16(0);
    oxm::encode_tlvs(m, Flavor::Oxm, out);
    let len = (out.len() - start) as u16;
    out.patch16(start + 2, len);
    out.pad8(start);
}
