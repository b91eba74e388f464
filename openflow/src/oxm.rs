//! OXM (OpenFlow 1.3.5 §7.2.3) and NXM (Open vSwitch `nicira-ext.h`,
//! `meta-flow.h`) TLV matches.
//!
//! A TLV is a 32-bit header — class (16 bits), field (7 bits), hasmask
//! (1 bit), payload length in bytes (8 bits) — followed by the value and,
//! when hasmask is set, a mask of the same width. Experimenter OXMs (class
//! `0xffff`) carry a 32-bit experimenter id after the header, counted in
//! the length. Values and masks are big-endian.
//!
//! Decoding accepts OXM (`OFPXMC_OPENFLOW_BASIC`, 0x8000), NXM (`NXM_OF_*`
//! class 0x0000, `NXM_NX_*` class 0x0001) and the ONF experimenter
//! `ONFOXM_ET_TCP_FLAGS` in the same match, as Open vSwitch does, and
//! follows Open vSwitch's checks (`lib/nx-match.c`):
//! - a truncated TLV, a payload length that is not the field's width (or
//!   twice it with hasmask): `BAD_MATCH/BAD_LEN`;
//! - an unknown or unsupported field (`NXM_NX_REG*`, tunnel fields, …):
//!   `BAD_FIELD`;
//! - a 1-bit in the value where the mask has a 0-bit: `BAD_WILDCARDS`
//!   (OVS `is_mask_consistent`);
//! - a partial mask on a field that is not maskable (`in_port`,
//!   `eth_type`, `vlan_pcp`, `ip_dscp`, `ip_ecn`, `ip_proto`, `ip_ttl`,
//!   `arp_op`, ICMP type/code): `BAD_MASK`;
//! - a value wider than the field (a DSCP above 63, a VLAN VID with PCP
//!   bits, an ARP opcode above 255, TCP flags above 0xfff, …): `BAD_VALUE`;
//! - a field (or part of one) matched twice: `DUP_FIELD`;
//! - finally every field's prerequisite (§7.2.3.6, order independent):
//!   `BAD_PREREQ`.
//!
//! A TLV whose mask is all zeros matches everything and is ignored.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::{DecodeError, OfError};
use crate::field::Prereq;
use crate::model::{Match, MfField, OxmField};
use crate::wire::{be_value, ones};

/// Which TLV classes to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `OFPXMC_OPENFLOW_BASIC` (0x8000) where the field has one, else the
    /// Nicira class (OpenFlow 1.3 messages).
    Oxm,
    /// `NXM_OF_*` (0x0000) / `NXM_NX_*` (0x0001) classes (`NXT_FLOW_MOD`,
    /// `NXST_FLOW`, `NXT_PACKET_IN`).
    Nxm,
}

/// `NXM_OF_*` class (Nicira, OpenFlow 1.0 fields).
pub const NXM_OF: u16 = 0x0000;
/// `NXM_NX_*` class (Nicira extension fields).
pub const NXM_NX: u16 = 0x0001;
/// `OFPXMC_OPENFLOW_BASIC` (OpenFlow 1.3 §7.2.3.2).
pub const OPENFLOW_BASIC: u16 = 0x8000;
/// `OFPXMC_PACKET_REGS` (OpenFlow 1.5 `OXM_OF_PKT_REG<k>`).
pub const PACKET_REGS: u16 = 0x8001;
/// The Ericsson OXM class of `nd_reserved` and `nd_options_type`.
pub const ERICOXM: u16 = 0x1000;
/// `NXM_NX_MPLS_TTL` field number: the same as `NXM_NX_COOKIE`, told apart
/// by length (1 byte against 8).
const NXM_NX_MPLS_TTL: u8 = 30;
/// `OFPXMC_EXPERIMENTER`.
pub const EXPERIMENTER: u16 = 0xffff;
/// `ONF_EXPERIMENTER_ID` ("ONF\0"), owner of `ONFOXM_ET_TCP_FLAGS`.
pub const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;
/// `ONFOXM_ET_TCP_FLAGS` field number (OpenFlow 1.3 extension 1.5 adopted
/// as `OXM_OF_TCP_FLAGS`).
const ONFOXM_ET_TCP_FLAGS: u8 = 42;

/// How a wire TLV maps onto the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The value is the model field's value, right-aligned.
    Plain(OxmField),
    /// `NXM_OF_IN_PORT`: a 16-bit OpenFlow 1.0 port number.
    InPort16,
    /// `NXM_OF_VLAN_TCI`: the whole TCI with the CFI bit as "present".
    VlanTci,
    /// `NXM_OF_IP_TOS`: the TOS byte with the ECN bits zero (DSCP unshifted).
    IpTos,
}

/// A wire field: where it is and how wide its value is.
#[derive(Debug, Clone, Copy)]
struct Wire {
    class: u16,
    field: u8,
    /// Experimenter id for class 0xffff.
    exp: Option<u32>,
    /// Value width in bytes.
    len: usize,
    kind: Kind,
    /// Whether Open vSwitch accepts an arbitrary mask (`Maskable: bitwise`).
    maskable: bool,
}

const fn w(class: u16, field: u8, len: usize, kind: Kind, maskable: bool) -> Wire {
    Wire {
        class,
        field,
        exp: None,
        len,
        kind,
        maskable,
    }
}

/// The TLV that carries `f` in `flavor` (for matches and set-field).
fn wire_of(f: OxmField, flavor: Flavor) -> Wire {
    use OxmField::*;
    let p = Kind::Plain(f);
    let b = OPENFLOW_BASIC;
    match flavor {
        Flavor::Oxm => match f {
            InPort => w(b, 0, 4, p, false),
            Metadata => w(b, 2, 8, p, true),
            EthDst => w(b, 3, 6, p, true),
            EthSrc => w(b, 4, 6, p, true),
            EthType => w(b, 5, 2, p, false),
            VlanVid => w(b, 6, 2, p, true),
            VlanPcp => w(b, 7, 1, p, false),
            IpDscp => w(b, 8, 1, p, false),
            IpEcn => w(b, 9, 1, p, false),
            IpProto => w(b, 10, 1, p, false),
            Ipv4Src => w(b, 11, 4, p, true),
            Ipv4Dst => w(b, 12, 4, p, true),
            TcpSrc => w(b, 13, 2, p, true),
            TcpDst => w(b, 14, 2, p, true),
            UdpSrc => w(b, 15, 2, p, true),
            UdpDst => w(b, 16, 2, p, true),
            SctpSrc => w(b, 17, 2, p, true),
            SctpDst => w(b, 18, 2, p, true),
            Icmpv4Type => w(b, 19, 1, p, false),
            Icmpv4Code => w(b, 20, 1, p, false),
            ArpOp => w(b, 21, 2, p, false),
            ArpSpa => w(b, 22, 4, p, true),
            ArpTpa => w(b, 23, 4, p, true),
            Ipv6Src => w(b, 26, 16, p, true),
            Ipv6Dst => w(b, 27, 16, p, true),
            Icmpv6Type => w(b, 29, 1, p, false),
            Icmpv6Code => w(b, 30, 1, p, false),
            // No OpenFlow 1.3 basic field: Open vSwitch uses these.
            IpTtl => w(NXM_NX, 29, 1, p, false),
            IpFrag => w(NXM_NX, 26, 1, p, true),
            TcpFlags => Wire {
                class: EXPERIMENTER,
                field: ONFOXM_ET_TCP_FLAGS,
                exp: Some(ONF_EXPERIMENTER_ID),
                len: 2,
                kind: p,
                maskable: true,
            },
            Ipv6Label => w(b, 28, 4, p, true),
            ArpSha => w(b, 24, 6, p, true),
            ArpTha => w(b, 25, 6, p, true),
            NdTarget => w(b, 31, 16, p, true),
            NdSll => w(b, 32, 6, p, true),
            NdTll => w(b, 33, 6, p, true),
            MplsLabel => w(b, 34, 4, p, false),
            MplsTc => w(b, 35, 1, p, false),
            MplsBos => w(b, 36, 1, p, false),
            TunId => w(b, 38, 8, p, true),
            Xreg(k) => w(PACKET_REGS, k, 8, p, true),
            NdReserved => w(ERICOXM, 1, 4, p, false),
            NdOptionsType => w(ERICOXM, 2, 1, p, false),
            // Nicira fields: the NXM header in OXM matches too, as OVS.
            _ => wire_of(f, Flavor::Nxm),
        },
        Flavor::Nxm => match f {
            InPort => w(NXM_OF, 0, 2, Kind::InPort16, false),
            EthDst => w(NXM_OF, 1, 6, p, true),
            EthSrc => w(NXM_OF, 2, 6, p, true),
            EthType => w(NXM_OF, 3, 2, p, false),
            IpDscp => w(NXM_OF, 5, 1, Kind::IpTos, false),
            IpProto => w(NXM_OF, 6, 1, p, false),
            Ipv4Src => w(NXM_OF, 7, 4, p, true),
            Ipv4Dst => w(NXM_OF, 8, 4, p, true),
            TcpSrc => w(NXM_OF, 9, 2, p, true),
            TcpDst => w(NXM_OF, 10, 2, p, true),
            UdpSrc => w(NXM_OF, 11, 2, p, true),
            UdpDst => w(NXM_OF, 12, 2, p, true),
            Icmpv4Type => w(NXM_OF, 13, 1, p, false),
            Icmpv4Code => w(NXM_OF, 14, 1, p, false),
            ArpOp => w(NXM_OF, 15, 2, p, false),
            ArpSpa => w(NXM_OF, 16, 4, p, true),
            ArpTpa => w(NXM_OF, 17, 4, p, true),
            Ipv6Src => w(NXM_NX, 19, 16, p, true),
            Ipv6Dst => w(NXM_NX, 20, 16, p, true),
            Icmpv6Type => w(NXM_NX, 21, 1, p, false),
            Icmpv6Code => w(NXM_NX, 22, 1, p, false),
            IpFrag => w(NXM_NX, 26, 1, p, true),
            IpEcn => w(NXM_NX, 28, 1, p, false),
            IpTtl => w(NXM_NX, 29, 1, p, false),
            TcpFlags => w(NXM_NX, 34, 2, p, true),
            Reg(n) => w(NXM_NX, n, 4, p, true),
            TunId => w(NXM_NX, 16, 8, p, true),
            ArpSha => w(NXM_NX, 17, 6, p, true),
            ArpTha => w(NXM_NX, 18, 6, p, true),
            NdTarget => w(NXM_NX, 23, 16, p, true),
            NdSll => w(NXM_NX, 24, 6, p, true),
            NdTll => w(NXM_NX, 25, 6, p, true),
            Ipv6Label => w(NXM_NX, 27, 4, p, true),
            MplsTtl => w(NXM_NX, NXM_NX_MPLS_TTL, 1, p, false),
            TunIpv4Src => w(NXM_NX, 31, 4, p, true),
            TunIpv4Dst => w(NXM_NX, 32, 4, p, true),
            PktMark => w(NXM_NX, 33, 4, p, true),
            DpHash => w(NXM_NX, 35, 4, p, true),
            RecircId => w(NXM_NX, 36, 4, p, false),
            ConjId => w(NXM_NX, 37, 4, p, false),
            TunFlags => w(NXM_NX, 104, 2, p, true),
            CtState => w(NXM_NX, 105, 4, p, true),
            CtZone => w(NXM_NX, 106, 2, p, false),
            CtMark => w(NXM_NX, 107, 4, p, true),
            CtLabel => w(NXM_NX, 108, 16, p, true),
            TunIpv6Src => w(NXM_NX, 109, 16, p, true),
            TunIpv6Dst => w(NXM_NX, 110, 16, p, true),
            Xxreg(k) => w(NXM_NX, 111 + k, 16, p, true),
            CtNwProto => w(NXM_NX, 119, 1, p, false),
            CtNwSrc => w(NXM_NX, 120, 4, p, true),
            CtNwDst => w(NXM_NX, 121, 4, p, true),
            CtIpv6Src => w(NXM_NX, 122, 16, p, true),
            CtIpv6Dst => w(NXM_NX, 123, 16, p, true),
            CtTpSrc => w(NXM_NX, 124, 2, p, true),
            CtTpDst => w(NXM_NX, 125, 2, p, true),
            TunMetadata { index, len, .. } => w(
                NXM_NX,
                NXM_NX_TUN_METADATA0 + index % 64,
                usize::from(len),
                p,
                true,
            ),
            // No NXM field: Open vSwitch sends the OXM one in NXM matches too.
            Metadata | VlanVid | VlanPcp | SctpSrc | SctpDst | MplsLabel | MplsTc | MplsBos
            | Xreg(_) | NdReserved | NdOptionsType => wire_of(f, Flavor::Oxm),
        },
    }
}

/// `NXM_NX_TUN_METADATA0` field number (`tun_metadata<n>` is 40 + n).
const NXM_NX_TUN_METADATA0: u8 = 40;

/// If `(class, field, exp)` names `NXM_NX_TUN_METADATA<n>`: the field as
/// the current TLV map ([`crate::tlv::with_map`]) places it, or
/// `NXFMFC_INVALID_TLV_FIELD` when it is not mapped (OVS
/// `mf_vl_mff_invalid`).
fn tun_metadata(class: u16, field: u8, exp: Option<u32>) -> Option<Result<OxmField, DecodeError>> {
    if class != NXM_NX || exp.is_some() || !(40..104).contains(&field) {
        return None;
    }
    let index = field - NXM_NX_TUN_METADATA0;
    Some(
        crate::tlv::current_loc(u16::from(index))
            .map(|l| OxmField::TunMetadata {
                index,
                offset: l.offset,
                len: l.map.option_len,
            })
            .ok_or(bad(
                OfError::NXFMFC_INVALID_TLV_FIELD,
                "tun_metadata not mapped",
            )),
    )
}

/// A `tun_metadata` TLV's value and mask (`payload` is the value, then
/// the mask if `hasmask`): each at most the mapped length, right-aligned
/// (OVS `copy_entry_value` for variable-length fields).
fn tun_metadata_value(
    f: OxmField,
    payload: &[u8],
    hasmask: bool,
    len_err: OfError,
) -> Result<(u128, u128), DecodeError> {
    let width = (f.bits() / 8) as usize;
    let n = if hasmask {
        payload.len() / 2
    } else {
        payload.len()
    };
    if (hasmask && payload.len() % 2 != 0) || n > width || n == 0 {
        return Err(bad(len_err, "bad tun_metadata length"));
    }
    let value = be_value(&payload[..n]);
    let mask = if hasmask {
        be_value(&payload[n..])
    } else {
        ones(f.bits())
    };
    Ok((value, mask))
}

/// `NXM_OF_VLAN_TCI`.
const NXM_OF_VLAN_TCI: Wire = w(NXM_OF, 4, 2, Kind::VlanTci, true);

/// The known TLV with this class, field number and experimenter id.
fn lookup(class: u16, field: u8, exp: Option<u32>) -> Option<Wire> {
    /// `(class, field, experimenter)` of a TLV header.
    type WireId = (u16, u8, Option<u32>);
    // Looked up for every TLV of every match and set-field decoded: a
    // fixed-seed foldhash rather than SipHash (the keys are ours, not
    // the peer's choice of what to insert).
    type Table = HashMap<WireId, Wire, foldhash::fast::FixedState>;
    static TABLE: OnceLock<Table> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = Table::default();
        t.insert((NXM_OF, 4, None), NXM_OF_VLAN_TCI);
        for f in OxmField::ALL {
            for w in [wire_of(f, Flavor::Oxm), wire_of(f, Flavor::Nxm)] {
                t.entry((w.class, w.field, w.exp)).or_insert(w);
            }
        }
        t
    });
    table.get(&(class, field, exp)).copied()
}

fn put_be(out: &mut Vec<u8>, v: u128, len: usize) {
    let bytes = v.to_be_bytes();
    out.extend_from_slice(&bytes[16 - len.min(16)..]);
}

fn bad(err: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(err, what)
}

/// One parsed TLV.
struct Tlv<'a> {
    class: u16,
    field: u8,
    hasmask: bool,
    exp: Option<u32>,
    /// Value then mask (if any).
    payload: &'a [u8],
    /// Bytes the TLV occupies.
    size: usize,
}

/// Parse the TLV at the start of `buf`; `Err(())` when truncated or its
/// length is impossible.
fn parse_tlv(buf: &[u8]) -> Result<Tlv<'_>, ()> {
    let h = buf.get(..4).ok_or(())?;
    let hdr = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let class = (hdr >> 16) as u16;
    let field = ((hdr >> 9) & 0x7f) as u8;
    let hasmask = hdr & 0x100 != 0;
    let len = (hdr & 0xff) as usize;
    let (exp, hlen, plen) = if class == EXPERIMENTER {
        let e = buf.get(4..8).ok_or(())?;
        let plen = len.checked_sub(4).ok_or(())?;
        (Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]])), 8, plen)
    } else {
        (None, 4, len)
    };
    let payload = buf.get(hlen..hlen + plen).ok_or(())?;
    Ok(Tlv {
        class,
        field,
        hasmask,
        exp,
        payload,
        size: hlen + plen,
    })
}

/// Up to two model `(field, value, mask)` triples.
type Parts = [(OxmField, u128, u128); 2];

/// The model `(field, value, mask)` triples a wire value and mask stand
/// for (value already checked to lie within mask).
fn to_model(kind: Kind, value: u128, mask: u128) -> Result<(Parts, usize), OfError> {
    let none = (OxmField::Metadata, 0, 0);
    Ok(match kind {
        Kind::Plain(f) => {
            if value & !ones(f.bits()) != 0 {
                return Err(OfError::BAD_VALUE);
            }
            ([(f, value, mask & ones(f.bits())), none], 1)
        }
        Kind::InPort16 => {
            let port = if value >= 0xff00 {
                0xffff_0000 | value
            } else {
                value
            };
            ([(OxmField::InPort, port, ones(32)), none], 1)
        }
        Kind::VlanTci => (
            [
                (OxmField::VlanVid, value & 0x1fff, mask & 0x1fff),
                (OxmField::VlanPcp, value >> 13, (mask >> 13) & 7),
            ],
            2,
        ),
        Kind::IpTos => {
            if value & 3 != 0 {
                return Err(OfError::BAD_VALUE);
            }
            (
                [(OxmField::IpDscp, value >> 2, (mask >> 2) & 0x3f), none],
                1,
            )
        }
    })
}

/// Decode a run of OXM or NXM TLVs (no `ofp_match` header, no padding)
/// into a match, checking lengths, masks, duplicates and prerequisites.
///
/// # Errors
/// `BAD_MATCH/*` errors: `BAD_LEN`, `BAD_FIELD` (unknown or unsupported
/// field), `DUP_FIELD`, `BAD_MASK`, `BAD_VALUE`, `BAD_WILDCARDS` (value
/// bits outside the mask), `BAD_PREREQ`.
pub fn decode_tlvs(buf: &[u8]) -> Result<Match, DecodeError> {
    decode_inner(buf, None)
}

/// `NXM_NX_COOKIE` field number (class `NXM_NX`, 64 bits, maskable).
const NXM_NX_COOKIE: u8 = 30;

/// Like [`decode_tlvs`], but also accept the `NXM_NX_COOKIE(_W)`
/// pseudo-field that `NXT_FLOW_MOD` and `NXST_FLOW`/`NXST_AGGREGATE`
/// requests may carry (Open vSwitch `nx_pull_match` with a cookie);
/// returns the match and the cookie's `(value, mask)`, `(0, 0)` when
/// absent.
///
/// # Errors
/// As [`decode_tlvs`]; a second cookie is `DUP_FIELD`.
pub fn decode_tlvs_with_cookie(buf: &[u8]) -> Result<(Match, u64, u64), DecodeError> {
    let mut cookie = (0, 0);
    let m = decode_inner(buf, Some(&mut cookie))?;
    Ok((m, cookie.0, cookie.1))
}

/// Append an `NXM_NX_COOKIE(_W)` TLV (after [`encode_tlvs`], as Open
/// vSwitch puts it last); nothing when `mask` is zero.
pub fn encode_cookie(cookie: u64, mask: u64, out: &mut Vec<u8>) {
    if mask == 0 {
        return;
    }
    let wire = w(
        NXM_NX,
        NXM_NX_COOKIE,
        8,
        Kind::Plain(OxmField::Metadata),
        true,
    );
    let m = (mask != u64::MAX).then_some(u128::from(mask));
    put_wire(out, &wire, u128::from(cookie & mask), m);
}

fn decode_inner(buf: &[u8], mut cookie: Option<&mut (u64, u64)>) -> Result<Match, DecodeError> {
    let mut m = Match::CATCHALL;
    // The prerequisites of the fields matched, each once: slot
    // `Prereq as usize` (no allocation per match; `extra` only if the
    // enum ever outgrows the slots).
    let mut needs = [None::<Prereq>; 32];
    let mut extra: Vec<Prereq> = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let tlv = parse_tlv(rest).map_err(|()| bad(OfError::BAD_MATCH_LEN, "truncated TLV"))?;
        rest = &rest[tlv.size..];
        if let Some(c) = cookie.as_deref_mut() {
            if tlv.class == NXM_NX
                && tlv.field == NXM_NX_COOKIE
                && tlv.exp.is_none()
                && tlv.payload.len() != 1
            {
                let want = if tlv.hasmask { 16 } else { 8 };
                if tlv.payload.len() != want {
                    return Err(bad(OfError::BAD_MATCH_LEN, "bad TLV length"));
                }
                let v = be_value(&tlv.payload[..8]) as u64;
                let mk = if tlv.hasmask {
                    be_value(&tlv.payload[8..]) as u64
                } else {
                    u64::MAX
                };
                if v & !mk != 0 {
                    return Err(bad(OfError::BAD_WILDCARDS, "value bits outside mask"));
                }
                if c.1 != 0 {
                    return Err(bad(OfError::DUP_FIELD, "cookie matched twice"));
                }
                *c = (v, mk);
                continue;
            }
        }
        if let Some(f) = tun_metadata(tlv.class, tlv.field, tlv.exp) {
            let f = f?;
            let (value, mask) =
                tun_metadata_value(f, tlv.payload, tlv.hasmask, OfError::BAD_MATCH_LEN)?;
            if value & !mask != 0 {
                return Err(bad(OfError::BAD_WILDCARDS, "value bits outside mask"));
            }
            if mask == 0 {
                continue;
            }
            if m.has_field(f) {
                return Err(bad(OfError::DUP_FIELD, "field matched twice"));
            }
            m.set_field(f, value, mask)
                .map_err(|e| bad(e, "value does not fit the field"))?;
            // As OVS `tun_metadata_set_match`: the option must be present.
            if let Some(i) = f.tun_metadata_index() {
                let present = xennet_datapath::flow::Field::TunMdPresent;
                let bit = 1u128 << i;
                m.key.set(present, m.key.get(present) | bit);
                m.mask.set(present, m.mask.get(present) | bit);
            }
            continue;
        }
        let is_cookie = tlv.class == NXM_NX && tlv.field == NXM_NX_COOKIE && tlv.payload.len() > 1;
        let wire = lookup(tlv.class, tlv.field, tlv.exp)
            .filter(|_| !is_cookie)
            .ok_or(bad(OfError::BAD_FIELD, "unsupported match field"))?;
        let want = if tlv.hasmask { 2 * wire.len } else { wire.len };
        if tlv.payload.len() != want {
            return Err(bad(OfError::BAD_MATCH_LEN, "bad TLV length"));
        }
        let value = be_value(&tlv.payload[..wire.len]);
        let all = ones(8 * wire.len as u32);
        let mask = if tlv.hasmask {
            be_value(&tlv.payload[wire.len..])
        } else {
            all
        };
        if value & !mask != 0 {
            return Err(bad(OfError::BAD_WILDCARDS, "value bits outside mask"));
        }
        if !wire.maskable && mask != 0 && mask != all {
            return Err(bad(OfError::BAD_MASK, "field is not maskable"));
        }
        if mask == 0 {
            continue;
        }
        let (parts, n) =
            to_model(wire.kind, value, mask).map_err(|e| bad(e, "value does not fit the field"))?;
        for &(f, v, mk) in &parts[..n] {
            if mk == 0 {
                continue;
            }
            if m.has_field(f) {
                return Err(bad(OfError::DUP_FIELD, "field matched twice"));
            }
            m.set_field(f, v, mk)
                .map_err(|e| bad(e, "value does not fit the field"))?;
            // NXM_OF_VLAN_TCI has no prerequisite of its own (OVS).
            if wire.kind != Kind::VlanTci {
                let p = f.prereq();
                match needs.get_mut(p as usize) {
                    Some(slot) => *slot = Some(p),
                    None => extra.push(p),
                }
            }
        }
    }
    if needs
        .iter()
        .flatten()
        .chain(&extra)
        .any(|&p| !m.satisfies(p))
    {
        return Err(bad(OfError::BAD_PREREQ, "prerequisite not met"));
    }
    m.check_prereqs()
        .map_err(|e| bad(e, "prerequisite not met"))?;
    Ok(m)
}

/// The `in_port` and `metadata` of a packet-in's match (OpenFlow 1.3
/// §7.4.1), skipping every other TLV as Open vSwitch's loose parser does
/// (a switch may add tunnel or register fields there).
///
/// # Errors
/// `BAD_MATCH/BAD_LEN` for a truncated TLV.
pub(crate) fn decode_pipeline_fields(buf: &[u8]) -> Result<(Option<u32>, u64), DecodeError> {
    let (in_port, metadata, _) = decode_pipeline_all(buf)?;
    Ok((in_port, metadata))
}

fn put_header(out: &mut Vec<u8>, wire: &Wire, hasmask: bool) {
    let plen = if hasmask { 2 * wire.len } else { wire.len };
    let plen = plen + if wire.exp.is_some() { 4 } else { 0 };
    let hdr = (u32::from(wire.class) << 16)
        | (u32::from(wire.field) << 9)
        | (u32::from(hasmask) << 8)
        | (plen as u32 & 0xff);
    out.extend_from_slice(&hdr.to_be_bytes());
    if let Some(e) = wire.exp {
        out.extend_from_slice(&e.to_be_bytes());
    }
}

/// Append one TLV of `wire` for the wire-level `value` under `mask`
/// (`None` = exact).
fn put_wire(out: &mut Vec<u8>, wire: &Wire, value: u128, mask: Option<u128>) {
    put_header(out, wire, mask.is_some());
    put_be(out, value, wire.len);
    if let Some(mk) = mask {
        put_be(out, mk, wire.len);
    }
}

/// Append the TLV for model field `f` matched as `(value, mask)`; nothing
/// when the mask is zero, the unmasked form when it covers the field.
fn put_field(out: &mut Vec<u8>, f: OxmField, value: u128, mask: u128, flavor: Flavor) {
    if mask == 0 {
        return;
    }
    let exact = mask == ones(f.bits());
    let mut wire = wire_of(f, flavor);
    let (v, mk) = match wire.kind {
        Kind::IpTos => (value << 2, mask << 2),
        Kind::InPort16 => {
            let p = value as u32;
            if exact && !(0xff00..0xffff_ff00).contains(&p) {
                (u128::from(p as u16), ones(16))
            } else {
                // Not expressible in 16 bits: the OXM field, which NXM
                // decoders (OVS, ours) accept too.
                wire = wire_of(f, Flavor::Oxm);
                (value, mask)
            }
        }
        _ => (value, mask),
    };
    put_wire(out, &wire, v, if exact { None } else { Some(mk) });
}

/// Append `m` as TLVs of `flavor` (no header, no padding), fields in the
/// order Open vSwitch emits them (`nx_put_raw`): in_port, eth_src, eth_dst,
/// eth_type, VLAN, then for IP src, dst, frag, DSCP, ECN, TTL, proto and
/// the L4 fields of that protocol, for ARP op, spa, tpa; metadata last.
/// L3/L4 fields whose prerequisites the match does not pin are not
/// emitted (such a match would not decode either).
pub fn encode_tlvs(m: &Match, flavor: Flavor, out: &mut Vec<u8>) {
    use OxmField::*;
    let put = |out: &mut Vec<u8>, f: OxmField| {
        let (v, mk) = m.field(f);
        put_field(out, f, v, mk, flavor);
    };
    put(out, InPort);
    put(out, EthSrc);
    put(out, EthDst);
    put(out, EthType);
    match flavor {
        Flavor::Oxm => {
            put(out, VlanVid);
            // As OVS: PCP only under a tag (no-tag matches leave it out).
            if m.key.vlan_tci() & 0x1000 != 0 {
                put(out, VlanPcp);
            }
        }
        Flavor::Nxm => {
            let tci = m.key.vlan_tci();
            let mk = m.mask.get(xennet_datapath::flow::Field::VlanTci) as u16;
            if mk != 0 {
                let mask = (mk != 0xffff).then_some(u128::from(mk));
                put_wire(out, &NXM_OF_VLAN_TCI, u128::from(tci), mask);
            }
        }
    }
    let eth = m.field(EthType);
    let (proto, proto_mask) = m.field(IpProto);
    let proto = if proto_mask == 0xff {
        Some(proto)
    } else {
        None
    };
    if eth == (0x0800, 0xffff) || eth == (0x86dd, 0xffff) {
        let v4 = eth.0 == 0x0800;
        if v4 {
            put(out, Ipv4Src);
            put(out, Ipv4Dst);
        } else {
            put(out, Ipv6Src);
            put(out, Ipv6Dst);
            put(out, Ipv6Label);
        }
        put(out, IpFrag);
        put(out, IpDscp);
        put(out, IpEcn);
        put(out, IpTtl);
        put(out, IpProto);
        let l4: &[OxmField] = match proto {
            Some(6) => &[TcpSrc, TcpDst, TcpFlags],
            Some(17) => &[UdpSrc, UdpDst],
            Some(132) => &[SctpSrc, SctpDst],
            Some(1) if v4 => &[Icmpv4Type, Icmpv4Code],
            Some(58) if !v4 => &[Icmpv6Type, Icmpv6Code],
            _ => &[],
        };
        for f in l4 {
            put(out, *f);
        }
        if proto == Some(58) && !v4 && m.field(Icmpv6Code).0 == 0 {
            let nd: &[OxmField] = match m.field(Icmpv6Type) {
                (135, 0xff) => &[NdTarget, NdSll, NdReserved, NdOptionsType],
                (136, 0xff) => &[NdTarget, NdTll, NdReserved, NdOptionsType],
                _ => &[],
            };
            for f in nd {
                put(out, *f);
            }
        }
    } else if eth == (0x0806, 0xffff) || eth == (0x8035, 0xffff) {
        put(out, ArpOp);
        put(out, ArpSpa);
        put(out, ArpTpa);
        put(out, ArpSha);
        put(out, ArpTha);
    } else if eth == (0x8847, 0xffff) || eth == (0x8848, 0xffff) {
        put(out, MplsLabel);
        put(out, MplsTc);
        put(out, MplsBos);
        put(out, MplsTtl);
    }
    // Tunnel, register and conntrack fields (OVS `nx_put_raw` order).
    put(out, TunId);
    put(out, TunFlags);
    let wide = |f: OxmField| {
        let (v, mk) = m.field(f);
        v > u128::from(u32::MAX) || mk > u128::from(u32::MAX)
    };
    for (f4, f6) in [(TunIpv4Src, TunIpv6Src), (TunIpv4Dst, TunIpv6Dst)] {
        put(out, if wide(f6) { f6 } else { f4 });
    }
    for n in 0..xennet_datapath::flow::N_REGS {
        put(out, Reg(n));
    }
    put(out, PktMark);
    put(out, CtState);
    put(out, CtZone);
    put(out, CtMark);
    put(out, CtLabel);
    put(out, CtNwProto);
    for (f4, f6) in [(CtNwSrc, CtIpv6Src), (CtNwDst, CtIpv6Dst)] {
        put(out, if wide(f6) { f6 } else { f4 });
    }
    put(out, CtTpSrc);
    put(out, CtTpDst);
    // Tunnel metadata, where the current map places each present field.
    let present = m.mask.get(xennet_datapath::flow::Field::TunMdPresent) as u64;
    for i in 0..64u8 {
        if present & (1 << i) == 0 {
            continue;
        }
        if let Some(l) = crate::tlv::current_loc(u16::from(i)) {
            put(
                out,
                TunMetadata {
                    index: i,
                    offset: l.offset,
                    len: l.map.option_len,
                },
            );
        }
    }
    put(out, ConjId);
    put(out, DpHash);
    put(out, RecircId);
    put(out, Metadata);
}

/// Decode the single unmasked TLV of a `set_field` action (OpenFlow 1.3
/// §7.2.5 `ofp_action_set_field`, without the action header); returns the
/// field, its value (`VlanVid` with `OFPVID_PRESENT`, `IpDscp` shifted
/// down, as in the model) and the bytes the TLV used (padding excluded).
///
/// # Errors
/// `BAD_ACTION/BAD_SET_TYPE` (unknown field, or `NXM_OF_VLAN_TCI`, which
/// is two model fields), `BAD_SET_LEN` (truncated or wrong length) or
/// `BAD_SET_ARGUMENT` (masked, value too wide, a VLAN VID without
/// `OFPVID_PRESENT`, a read-only field), as Open vSwitch.
pub fn decode_set_field(buf: &[u8]) -> Result<(OxmField, u128, usize), DecodeError> {
    let tlv = parse_tlv(buf).map_err(|()| bad(OfError::BAD_SET_LEN, "truncated set-field"))?;
    if let Some(f) = tun_metadata(tlv.class, tlv.field, tlv.exp) {
        let f = f?;
        if tlv.hasmask {
            return Err(bad(OfError::BAD_SET_ARGUMENT, "masked set-field"));
        }
        let (v, _) = tun_metadata_value(f, tlv.payload, false, OfError::BAD_SET_LEN)?;
        return Ok((f, v, tlv.size));
    }
    let wire = lookup(tlv.class, tlv.field, tlv.exp)
        .ok_or(bad(OfError::BAD_SET_TYPE, "unsupported set-field field"))?;
    if tlv.hasmask {
        return Err(bad(OfError::BAD_SET_ARGUMENT, "masked set-field"));
    }
    if tlv.payload.len() != wire.len {
        return Err(bad(OfError::BAD_SET_LEN, "bad set-field length"));
    }
    let value = be_value(tlv.payload);
    let arg = |e: OfError| {
        if e == OfError::BAD_VALUE {
            bad(OfError::BAD_SET_ARGUMENT, "bad set-field value")
        } else {
            bad(e, "bad set-field value")
        }
    };
    let (parts, n) = to_model(wire.kind, value, ones(8 * wire.len as u32)).map_err(arg)?;
    if n != 1 {
        return Err(bad(OfError::BAD_SET_TYPE, "set-field of VLAN_TCI"));
    }
    let (f, v, _) = parts[0];
    if !f.is_writable() {
        return Err(bad(OfError::BAD_SET_ARGUMENT, "read-only field"));
    }
    if !f.is_settable() {
        return Err(bad(
            OfError::BAD_SET_TYPE,
            "set-field of this field is not implemented",
        ));
    }
    if f == OxmField::VlanVid && v & 0x1000 == 0 {
        return Err(bad(
            OfError::BAD_SET_ARGUMENT,
            "VLAN VID without OFPVID_PRESENT",
        ));
    }
    Ok((f, v, tlv.size))
}

/// Append one unmasked TLV for `field = value` (value as in the model;
/// bits beyond the field's width are dropped).
pub fn encode_set_field(field: OxmField, value: u128, flavor: Flavor, out: &mut Vec<u8>) {
    put_field(
        out,
        field,
        value & ones(field.bits()),
        ones(field.bits()),
        flavor,
    );
}

/// The 32-bit TLV header of `field` in `flavor` (class, field, hasmask,
/// length), as table-features properties list them. `TcpFlags` has no
/// 32-bit OXM header in OpenFlow 1.3 (it is the experimenter
/// `ONFOXM_ET_TCP_FLAGS`), so both flavors give `NXM_NX_TCP_FLAGS`.
pub fn header(field: OxmField, flavor: Flavor, hasmask: bool) -> u32 {
    let mut wire = wire_of(field, flavor);
    if wire.exp.is_some() {
        wire = wire_of(field, Flavor::Nxm);
    }
    let plen = if hasmask { 2 * wire.len } else { wire.len };
    (u32::from(wire.class) << 16)
        | (u32::from(wire.field) << 9)
        | (u32::from(hasmask) << 8)
        | (plen as u32 & 0xff)
}

impl MfField {
    /// Width in bits (OVS `mf_field.n_bits`): the model width, but 16 for
    /// `arp_op` (carried as 16 bits).
    pub fn n_bits(self) -> u32 {
        match self {
            MfField::Oxm(OxmField::ArpOp) | MfField::VlanTci | MfField::InPort16 => 16,
            MfField::Oxm(f) => f.bits(),
            MfField::IpTos => 8,
        }
    }

    /// The OXM/NXM header that names this field in `flavor` (NXM for
    /// OpenFlow 1.0 to 1.4 actions, as OVS `nx_put_mff_header` with version
    /// 0; OXM for 1.5), hasmask clear, and the experimenter id when the
    /// header is an experimenter one (8 bytes on the wire).
    pub fn header(self, flavor: Flavor) -> (u32, Option<u32>) {
        let wire = match self {
            MfField::VlanTci => NXM_OF_VLAN_TCI,
            MfField::IpTos => wire_of(OxmField::IpDscp, Flavor::Nxm),
            MfField::InPort16 => wire_of(OxmField::InPort, Flavor::Nxm),
            MfField::Oxm(f) => {
                let w = wire_of(f, flavor);
                if w.kind == Kind::Plain(f) {
                    w
                } else {
                    wire_of(f, Flavor::Oxm)
                }
            }
        };
        let len = wire.len + if wire.exp.is_some() { 4 } else { 0 };
        (
            (u32::from(wire.class) << 16) | (u32::from(wire.field) << 9) | (len as u32 & 0xff),
            wire.exp,
        )
    }

    /// The field's name for traces: the model name, or OVS's for the
    /// three NXM-only fields.
    pub fn name(self) -> &'static str {
        match self {
            MfField::Oxm(f) => f.name(),
            MfField::VlanTci => "vlan_tci",
            MfField::IpTos => "nw_tos",
            MfField::InPort16 => "in_port",
        }
    }
}

/// Append the header of `f` for `flavor` (4 or 8 bytes).
pub fn put_mf_header(f: MfField, flavor: Flavor, out: &mut Vec<u8>) {
    let (h, exp) = f.header(flavor);
    out.extend_from_slice(&h.to_be_bytes());
    if let Some(e) = exp {
        out.extend_from_slice(&e.to_be_bytes());
    }
}

/// Read an OXM/NXM header naming a field (no value follows, as in
/// `NXAST_REG_MOVE`), with its experimenter id when class 0xffff; returns
/// the field, whether hasmask was set and the bytes used.
///
/// # Errors
/// `BAD_ACTION/BAD_LEN` when truncated, `BAD_ACTION/BAD_SET_TYPE` for an
/// unknown field (OVS `nx_pull_header__` in an action).
pub fn pull_mf_header(buf: &[u8]) -> Result<(MfField, bool, usize), DecodeError> {
    let h = buf
        .get(..4)
        .ok_or(bad(OfError::BAD_ACTION_LEN, "truncated field header"))?;
    let hdr = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let class = (hdr >> 16) as u16;
    let field = ((hdr >> 9) & 0x7f) as u8;
    let hasmask = hdr & 0x100 != 0;
    let (exp, used) = if class == EXPERIMENTER {
        let e = buf
            .get(4..8)
            .ok_or(bad(OfError::BAD_ACTION_LEN, "truncated field header"))?;
        (Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]])), 8)
    } else {
        (None, 4)
    };
    if let Some(f) = tun_metadata(class, field, exp) {
        // Variable length: the header's length is not checked (OVS).
        return Ok((MfField::Oxm(f?), hasmask, used));
    }
    let wire = lookup(class, field, exp).ok_or(bad(OfError::BAD_SET_TYPE, "unknown field"))?;
    // OVS `nxm_field_by_header`: the length must be the field's (halved
    // when hasmask); a wrong nonzero length is `BAD_SET_LEN`.
    let len = (hdr & 0xff) as usize;
    let extra = if exp.is_some() { 4 } else { 0 };
    let exact = if hasmask {
        len.saturating_sub(extra) / 2 + extra
    } else {
        len
    };
    if exact != wire.len + extra {
        return Err(if len > 0 {
            bad(OfError::BAD_SET_LEN, "bad field header length")
        } else {
            bad(OfError::BAD_SET_TYPE, "field header without length")
        });
    }
    let f = match wire.kind {
        Kind::Plain(f) => MfField::Oxm(f),
        Kind::InPort16 => MfField::InPort16,
        Kind::VlanTci => MfField::VlanTci,
        Kind::IpTos => MfField::IpTos,
    };
    Ok((f, hasmask, used))
}

/// One masked or unmasked OXM TLV as OpenFlow 1.5 `OFPAT_SET_FIELD`
/// carries it: the field, value and mask (all ones when unmasked) as
/// wire bits, and the bytes used.
///
/// # Errors
/// `BAD_SET_LEN` (truncated, wrong length), `BAD_SET_TYPE` (unknown field).
pub fn decode_wire_set_field(buf: &[u8]) -> Result<(MfField, u128, u128, usize), DecodeError> {
    let tlv = parse_tlv(buf).map_err(|()| bad(OfError::BAD_SET_LEN, "truncated set-field"))?;
    if let Some(f) = tun_metadata(tlv.class, tlv.field, tlv.exp) {
        let f = f?;
        let (v, mk) = tun_metadata_value(f, tlv.payload, tlv.hasmask, OfError::BAD_SET_LEN)?;
        return Ok((MfField::Oxm(f), v, mk, tlv.size));
    }
    let wire = lookup(tlv.class, tlv.field, tlv.exp)
        .ok_or(bad(OfError::BAD_SET_TYPE, "unsupported set-field field"))?;
    let n = wire.len;
    let want = if tlv.hasmask { 2 * n } else { n };
    if tlv.payload.len() != want {
        return Err(bad(OfError::BAD_SET_LEN, "bad set-field length"));
    }
    let value = be_value(&tlv.payload[..n]);
    let mask = if tlv.hasmask {
        be_value(&tlv.payload[n..])
    } else {
        ones(8 * n as u32)
    };
    let f = match wire.kind {
        Kind::Plain(f) => MfField::Oxm(f),
        Kind::InPort16 => MfField::InPort16,
        Kind::VlanTci => MfField::VlanTci,
        Kind::IpTos => MfField::IpTos,
    };
    Ok((f, value, mask, tlv.size))
}

/// Append a masked TLV `field = value/mask` (wire bits) in `flavor`.
pub fn encode_wire_set_field(
    f: MfField,
    value: u128,
    mask: u128,
    flavor: Flavor,
    out: &mut Vec<u8>,
) {
    let (h, exp) = f.header(flavor);
    let n = (h & 0xff) as usize - if exp.is_some() { 4 } else { 0 };
    let masked = mask != ones(8 * n as u32);
    let len = if masked { 2 * n } else { n } + if exp.is_some() { 4 } else { 0 };
    let h = (h & !0x1ff) | (u32::from(masked) << 8) | (len as u32 & 0xff);
    out.extend_from_slice(&h.to_be_bytes());
    if let Some(e) = exp {
        out.extend_from_slice(&e.to_be_bytes());
    }
    put_be(out, value & mask, n);
    if masked {
        put_be(out, mask, n);
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// Append one exact-match TLV of `f` with `value` (right-aligned) in
/// `flavor` (Open vSwitch `nx_put_raw` for one field); nothing for a zero
/// value is the caller's choice, not this function's.
pub fn encode_exact(f: OxmField, value: u128, flavor: Flavor, out: &mut Vec<u8>) {
    put_field(out, f, value & ones(f.bits()), ones(f.bits()), flavor);
}

/// `in_port` (if present), `metadata`, and the other nonzero pipeline
/// fields of a packet-in's match.
pub(crate) type PipelineFields = (Option<u32>, u64, Vec<(OxmField, u128)>);

/// The pipeline fields of a packet-in's match, loosely as Open vSwitch
/// `oxm_decode_match_loose`: `in_port`, `metadata`, and the other
/// pipeline-only fields ([`OxmField::is_metadata`]: registers, tunnel
/// metadata, packet mark; masked ones with the bits their mask covers)
/// and the conntrack fields with a nonzero exact value, in wire order;
/// other TLVs are skipped.
///
/// # Errors
/// `BAD_MATCH/BAD_LEN` on a truncated TLV.
pub(crate) fn decode_pipeline_all(buf: &[u8]) -> Result<PipelineFields, DecodeError> {
    let mut in_port = None;
    let mut metadata = 0;
    let mut extra = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let tlv = parse_tlv(rest).map_err(|()| bad(OfError::BAD_MATCH_LEN, "truncated TLV"))?;
        rest = &rest[tlv.size..];
        let Some(wire) = lookup(tlv.class, tlv.field, tlv.exp) else {
            continue;
        };
        // A masked pipeline field counts with the bits its mask covers:
        // Open vSwitch sends OpenFlow 1.5 registers as the 64-bit
        // `xreg`s, masked to the nonzero 32-bit halves.
        let v = if tlv.hasmask {
            let pipeline = matches!(wire.kind, Kind::Plain(f) if f.is_metadata());
            if !pipeline || tlv.payload.len() != 2 * wire.len {
                continue;
            }
            let (value, mask) = tlv.payload.split_at(wire.len);
            be_value(value) & be_value(mask)
        } else if tlv.payload.len() != wire.len {
            continue;
        } else {
            be_value(tlv.payload)
        };
        match wire.kind {
            Kind::Plain(OxmField::InPort) => in_port = Some(v as u32),
            Kind::InPort16 => {
                let p = v as u32;
                in_port = Some(if p >= 0xff00 { 0xffff_0000 | p } else { p });
            }
            Kind::Plain(OxmField::Metadata) => metadata = v as u64,
            // The conntrack fields too: a packet-in carries them, and an
            // `NXT_RESUME` hands them back (OVS `oxm_decode_match`).
            Kind::Plain(
                f @ (OxmField::CtState | OxmField::CtZone | OxmField::CtMark | OxmField::CtLabel),
            ) if v != 0 => {
                extra.retain(|(g, _)| *g != f);
                extra.push((f, v));
            }
            Kind::Plain(f) if f.is_metadata() && v != 0 => {
                extra.retain(|(g, _)| *g != f);
                extra.push((f, v));
            }
            _ => {}
        }
    }
    Ok((in_port, metadata, extra))
}
