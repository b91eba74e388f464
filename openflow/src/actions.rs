//! The action family (Open vSwitch `lib/ofp-actions.c`) for OpenFlow 1.0,
//! 1.3, 1.4 and 1.5: action lists to and from the model's [`Action`]s.
//! Nicira actions (`nx_action_header`, the same in every version) are
//! [`crate::nx_action`]'s; instructions are [`crate::instructions`]'.
//!
//! - OpenFlow 1.0 (`ofp_action_*`, [`decode_actions_ofp10`],
//!   [`encode_actions_ofp10`]): 16-bit ports, the 1.0 set actions
//!   (`SET_VLAN_VID`, `SET_DL_SRC`, `SET_TP_SRC`, …) as set-fields,
//!   `ENQUEUE` as set-queue and output, and Nicira actions for what 1.0
//!   has no action for (`NXAST_REG_LOAD` for other set-fields, as
//!   `ovs-ofctl` sends them).
//! - OpenFlow 1.3 to 1.5 (1.3 §7.2.5, [`decode_actions_version`],
//!   `put_actions_version`): 32-bit ports, OXM set-field (masked only
//!   in 1.5), MPLS and VLAN push/pop, group, queue, TTLs; 1.5's
//!   `OFPAT_COPY_FIELD` as the model's move.

use crate::error::{DecodeError, OfError};
use crate::header::{OFP10_VERSION, OFP13_VERSION, OFP15_VERSION};
use crate::model::{Action, EncodeError, MfField, OxmField, OFPP_ANY, OFPP_IN_PORT, OFPP_MAX};
use crate::nicira::*;
use crate::nx_action;
use crate::oxm::{self, Flavor};
use crate::port::{port10, port_from_ofp10, port_to_ofp10};
use crate::wire::{be16, be32, be_value, end_record, err, ones, put_mac, unsupported, Put, Rd};

// ---------------------------------------------------------------------------
// OpenFlow 1.0 actions.

/// OpenFlow 1.0 `OFPP_IN_PORT`.
pub(crate) const OFPP10_IN_PORT: u16 = 0xfff8;

pub(crate) const OFPAT10_OUTPUT: u16 = 0;

pub(crate) const OFPAT10_SET_VLAN_VID: u16 = 1;

pub(crate) const OFPAT10_SET_VLAN_PCP: u16 = 2;

pub(crate) const OFPAT10_STRIP_VLAN: u16 = 3;

pub(crate) const OFPAT10_SET_DL_SRC: u16 = 4;

pub(crate) const OFPAT10_SET_DL_DST: u16 = 5;

pub(crate) const OFPAT10_SET_NW_SRC: u16 = 6;

pub(crate) const OFPAT10_SET_NW_DST: u16 = 7;

pub(crate) const OFPAT10_SET_NW_TOS: u16 = 8;

pub(crate) const OFPAT10_SET_TP_SRC: u16 = 9;

pub(crate) const OFPAT10_SET_TP_DST: u16 = 10;

pub(crate) const OFPAT10_ENQUEUE: u16 = 11;

pub(crate) const OFPAT10_VENDOR: u16 = 0xffff;

pub(crate) fn bad_len() -> DecodeError {
    err(OfError::BAD_ACTION_LEN, "bad action length")
}

/// OVS `ofpact_check_output_port` with the 1.0 `OFPP_MAX` (0xff00).
pub(crate) fn check_output_port(p: u16) -> Result<(), DecodeError> {
    match p {
        0xfff8..=0xfffe => Ok(()),
        p if p < 0xff00 => Ok(()),
        _ => Err(err(OfError::BAD_OUT_PORT, "bad output port")),
    }
}

/// Which L4 set-field a 1.0 `SET_TP_SRC`/`SET_TP_DST` is, from the flow's
/// IP protocol (TCP when unknown: all three share the key bits).
pub(crate) fn tp_fields(proto: Option<u8>) -> (OxmField, OxmField) {
    match proto {
        Some(17) => (OxmField::UdpSrc, OxmField::UdpDst),
        Some(132) => (OxmField::SctpSrc, OxmField::SctpDst),
        _ => (OxmField::TcpSrc, OxmField::TcpDst),
    }
}

/// Decode a 1.0 action list (`ofp_action_*`, Nicira `nx_action_*`).
///
/// `OFPAT10_SET_VLAN_VID` / `SET_VLAN_PCP` decode to
/// `SetVlan10{VlanVid, 0x1000 | vid}` / `SetVlan10{VlanPcp, pcp}` with
/// `flow_has_vlan` false (the flow decoders set it from the match,
/// [`crate::model::note_vlan_presence`]): in OpenFlow 1.0 (and OVS,
/// `push_vlan_if_needed`) these push an 802.1Q tag when the packet has
/// none, where a 1.3 set-field on an untagged packet does nothing.
/// `OFPAT10_ENQUEUE` decodes to `SetQueue(q)` followed by
/// `Output{port, max_len: 0}`. `proto` is the flow's IP protocol, used to
/// name the field `SET_TP_SRC/DST` writes.
///
/// Nicira actions (`nx_action_header`, vendor 0x00002320) are
/// [`crate::nx_action::decode`]'s; afterwards runs of `NXAST_REG_LOAD`s
/// into one field are merged and a load of a whole model field becomes a
/// set-field ([`crate::nx_action::merge_loads`]: OVS splits values wider
/// than 64 bits into several loads, and sends 1.0 set-fields as loads).
/// Open vSwitch has no Nicira push-VLAN action (1.0 pushes through
/// `SET_VLAN_VID`/`PCP`).
///
/// # Errors
/// `BAD_ACTION/*`: `BAD_LEN`, `BAD_TYPE` (unknown type), `BAD_EXPERIMENTER`
/// (vendor other than Nicira), `BAD_EXP_TYPE` (unknown Nicira subtype),
/// `BAD_OUT_PORT`, `BAD_ARGUMENT`, set-field errors.
pub fn decode_actions_ofp10(buf: &[u8], proto: Option<u8>) -> Result<Vec<Action>, DecodeError> {
    let mut acts = Vec::new();
    let mut rest = buf;
    let arg = |what| err(OfError::BAD_ACTION_ARGUMENT, what);
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(bad_len());
        }
        let typ = be16(rest, 0);
        let len = usize::from(be16(rest, 2));
        if len < 8 || len % 8 != 0 || len > rest.len() {
            return Err(bad_len());
        }
        let a = &rest[..len];
        rest = &rest[len..];
        let fixed = |n: usize| if len == n { Ok(()) } else { Err(bad_len()) };
        match typ {
            OFPAT10_OUTPUT => {
                fixed(8)?;
                let port = be16(a, 4);
                check_output_port(port)?;
                acts.push(Action::Output {
                    port: port_from_ofp10(port),
                    max_len: be16(a, 6),
                });
            }
            OFPAT10_SET_VLAN_VID => {
                fixed(8)?;
                let vid = be16(a, 4);
                if vid & !0x0fff != 0 {
                    return Err(arg("VLAN VID above 4095"));
                }
                acts.push(Action::SetVlan10 {
                    field: OxmField::VlanVid,
                    value: u128::from(0x1000 | vid),
                    flow_has_vlan: false,
                });
            }
            OFPAT10_SET_VLAN_PCP => {
                fixed(8)?;
                if a[4] > 7 {
                    return Err(arg("VLAN PCP above 7"));
                }
                acts.push(Action::SetVlan10 {
                    field: OxmField::VlanPcp,
                    value: u128::from(a[4]),
                    flow_has_vlan: false,
                });
            }
            OFPAT10_STRIP_VLAN => {
                fixed(8)?;
                acts.push(Action::PopVlan);
            }
            OFPAT10_SET_DL_SRC | OFPAT10_SET_DL_DST => {
                fixed(16)?;
                let field = if typ == OFPAT10_SET_DL_SRC {
                    OxmField::EthSrc
                } else {
                    OxmField::EthDst
                };
                acts.push(Action::SetField {
                    field,
                    value: be_value(&a[4..10]),
                });
            }
            OFPAT10_SET_NW_SRC | OFPAT10_SET_NW_DST => {
                fixed(8)?;
                let field = if typ == OFPAT10_SET_NW_SRC {
                    OxmField::Ipv4Src
                } else {
                    OxmField::Ipv4Dst
                };
                acts.push(Action::SetField {
                    field,
                    value: u128::from(be32(a, 4)),
                });
            }
            OFPAT10_SET_NW_TOS => {
                fixed(8)?;
                if a[4] & 0x03 != 0 {
                    return Err(arg("SET_NW_TOS with ECN bits"));
                }
                acts.push(Action::SetField {
                    field: OxmField::IpDscp,
                    value: u128::from(a[4] >> 2),
                });
            }
            OFPAT10_SET_TP_SRC | OFPAT10_SET_TP_DST => {
                fixed(8)?;
                let (s, d) = tp_fields(proto);
                acts.push(Action::SetField {
                    field: if typ == OFPAT10_SET_TP_SRC { s } else { d },
                    value: u128::from(be16(a, 4)),
                });
            }
            OFPAT10_ENQUEUE => {
                fixed(16)?;
                let port = be16(a, 4);
                if port >= 0xff00 && port != 0xfff8 && port != 0xfffe {
                    return Err(err(OfError::BAD_OUT_PORT, "bad enqueue port"));
                }
                acts.push(Action::SetQueue(be32(a, 12)));
                acts.push(Action::Output {
                    port: port_from_ofp10(port),
                    max_len: 0,
                });
            }
            OFPAT10_VENDOR => decode_nx_action(a, &mut acts, proto)?,
            _ => return Err(err(OfError::BAD_ACTION_TYPE, "unknown action type")),
        }
    }
    crate::nx_action::merge_loads(&mut acts, true);
    Ok(acts)
}

/// Decode one Nicira action (`nx_action_header`, `a` is the whole
/// action) with [`crate::nx_action::decode`].
pub(crate) fn decode_nx_action(
    a: &[u8],
    acts: &mut Vec<Action>,
    proto: Option<u8>,
) -> Result<(), DecodeError> {
    if a.len() < 16 {
        return Err(bad_len());
    }
    if be32(a, 4) != NX_VENDOR_ID {
        return Err(err(
            OfError::BAD_ACTION_EXPERIMENTER,
            "unknown action vendor",
        ));
    }
    let nested = |b: &[u8]| decode_actions_ofp10(b, proto);
    acts.push(crate::nx_action::decode(a, OFP10_VERSION, &nested)?);
    Ok(())
}

/// The bits of an NXM field's value that a load must cover to set field
/// `f` (whose value is `bytes` wide on the wire): the whole value, except
/// for fields narrower than their bytes (`ip_ecn`: 2, `tcp_flags`: 12), as
/// OVS `mf_field.n_bits`.
pub(crate) fn load_bits(f: OxmField, bytes: u32) -> u32 {
    if f.bits() % 8 == 0 {
        bytes * 8
    } else {
        f.bits()
    }
}

/// Append a Nicira action header (`type`, placeholder `len`, vendor,
/// subtype); returns its offset.
pub(crate) fn begin_nx_action(out: &mut Vec<u8>, subtype: u16) -> usize {
    let start = out.len();
    out.u16(OFPAT10_VENDOR);
    out.u16(0);
    out.u32(NX_VENDOR_ID);
    out.u16(subtype);
    start
}

/// Pad the action that starts at `start` to 8 bytes and set its length.
pub(crate) fn finish_action(out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
    out.pad8(start);
    let len = u16::try_from(out.len() - start).map_err(|_| unsupported("action too long"))?;
    out.patch16(start + 2, len);
    Ok(())
}

/// A Nicira action with a 32-bit argument at offset 12 (16 bytes).
pub(crate) fn put_nx_u32(out: &mut Vec<u8>, subtype: u16, v: u32) {
    begin_nx_action(out, subtype);
    let start = out.len() - 10;
    out.u16(0);
    out.u32(v);
    out.patch16(start + 2, 16);
}

pub(crate) fn put_simple(out: &mut Vec<u8>, typ: u16, len: u16) {
    out.u16(typ);
    out.u16(len);
}

/// Append `set_field` as the 1.0 action for it, or `NXAST_REG_LOAD2`.
pub(crate) fn encode_set_field(
    field: OxmField,
    value: u128,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if value & !ones(field.bits()) != 0 {
        return Err(unsupported("set-field value wider than the field"));
    }
    if !field.is_writable() {
        return Err(unsupported("set-field of a read-only field"));
    }
    match field {
        OxmField::VlanVid => {
            if value & 0x1000 == 0 {
                return Err(unsupported("set-field VLAN VID without OFPVID_PRESENT"));
            }
            put_simple(out, OFPAT10_SET_VLAN_VID, 8);
            out.u16((value & 0x0fff) as u16);
            out.u16(0);
        }
        OxmField::VlanPcp => {
            put_simple(out, OFPAT10_SET_VLAN_PCP, 8);
            out.u8(value as u8);
            out.zeros(3);
        }
        OxmField::EthSrc | OxmField::EthDst => {
            let t = if field == OxmField::EthSrc {
                OFPAT10_SET_DL_SRC
            } else {
                OFPAT10_SET_DL_DST
            };
            put_simple(out, t, 16);
            put_mac(out, value);
            out.zeros(6);
        }
        OxmField::Ipv4Src | OxmField::Ipv4Dst => {
            let t = if field == OxmField::Ipv4Src {
                OFPAT10_SET_NW_SRC
            } else {
                OFPAT10_SET_NW_DST
            };
            put_simple(out, t, 8);
            out.u32(value as u32);
        }
        OxmField::IpDscp => {
            put_simple(out, OFPAT10_SET_NW_TOS, 8);
            out.u8((value as u8) << 2);
            out.zeros(3);
        }
        OxmField::TcpSrc | OxmField::UdpSrc | OxmField::SctpSrc => {
            put_simple(out, OFPAT10_SET_TP_SRC, 8);
            out.u16(value as u16);
            out.u16(0);
        }
        OxmField::TcpDst | OxmField::UdpDst | OxmField::SctpDst => {
            put_simple(out, OFPAT10_SET_TP_DST, 8);
            out.u16(value as u16);
            out.u16(0);
        }
        _ => put_reg_load(field, value, out)?,
    }
    Ok(())
}

/// A set-field as `NXAST_REG_LOAD`s of its NXM (or OXM) field, at most 64
/// bits each, low bits first, as OVS `set_field_to_nxast` does.
pub(crate) fn put_reg_load(
    field: OxmField,
    value: u128,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if crate::nx_action::is_variable_len(crate::model::MfField::Oxm(field)) {
        return crate::nx_action::put_reg_load2(
            crate::model::MfField::Oxm(field),
            value,
            ones(field.bits()),
            out,
        );
    }
    let dst = oxm::header(field, Flavor::Nxm, false);
    let bytes = dst & 0xff;
    if bytes == 0 || bytes > 16 || dst >> 16 == 0xffff {
        return Err(unsupported("set-field with no NXM form"));
    }
    let total = load_bits(field, bytes);
    let mut ofs = 0;
    while ofs < total {
        let n = (total - ofs).min(64);
        put_simple(out, OFPAT10_VENDOR, 24);
        out.u32(NX_VENDOR_ID);
        out.u16(NXAST_REG_LOAD);
        out.u16(((ofs as u16) << 6) | (n as u16 - 1));
        out.u32(dst);
        out.u64(((value >> ofs) & ones(n)) as u64);
        ofs += n;
    }
    Ok(())
}

/// Check that `acts` have an exact 1.0 form, for a flow-mod or packet-out
/// (a flow dump writes what 1.0 can express, as OVS does): a `PushVlan`
/// must be of 0x8100 and followed by a VLAN VID or PCP set, which pushes
/// it in 1.0.
///
/// # Errors
/// `Unsupported` otherwise.
pub(crate) fn check_exact_ofp10_actions(acts: &[Action]) -> Result<(), EncodeError> {
    for (i, a) in acts.iter().enumerate() {
        if let Action::PushVlan(tpid) = a {
            let next_sets_vlan = matches!(
                acts.get(i + 1),
                Some(
                    Action::SetField {
                        field: OxmField::VlanVid | OxmField::VlanPcp,
                        ..
                    } | Action::SetVlan10 { .. }
                )
            );
            if *tpid != 0x8100 || !next_sets_vlan {
                return Err(unsupported(
                    "push_vlan not followed by a VLAN set-field (OpenFlow 1.0)",
                ));
            }
        }
    }
    Ok(())
}

/// Append `acts` as 1.0 actions, with Nicira actions where 1.0 has none.
///
/// - `SetQueue(q)` right before `Output{port, max_len: 0}` to a physical
///   port, `IN_PORT` or `LOCAL` becomes `OFPAT10_ENQUEUE` (the inverse of
///   the decoder); otherwise `NXAST_SET_QUEUE`.
/// - `PushVlan` has no 1.0 form and is left out, as OVS
///   `encode_PUSH_VLAN` leaves it out (1.0 pushes through a following
///   `SET_VLAN_VID/PCP`); a flow-mod or packet-out, which must not change
///   meaning, is checked first ([`check_exact_ofp10_actions`]).
/// - `SetVlan10` is `SET_VLAN_VID/PCP`, as a VLAN VID/PCP set-field.
/// - `Group` is `NXAST_GROUP` (40), `DecNwTtl` `NXAST_DEC_TTL`;
///   set-fields without a 1.0 action and `SetNwTtl` are `NXAST_REG_LOAD`s
///   (as `ovs-ofctl` sends them); the other Nicira actions are
///   [`crate::nx_action::encode`]'s.
///
/// # Errors
/// `Unsupported` for a port beyond 16 bits, a PushVlan 1.0 cannot express,
/// a set-field of a read-only field or with a value too wide.
pub fn encode_actions_ofp10(acts: &[Action], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut i = 0;
    while i < acts.len() {
        match &acts[i] {
            Action::Output { port, max_len } => {
                put_simple(out, OFPAT10_OUTPUT, 8);
                out.u16(port10(*port)?);
                out.u16(*max_len);
            }
            Action::SetQueue(q) => {
                let enqueue = match acts.get(i + 1) {
                    Some(Action::Output { port, max_len: 0 }) => {
                        port_to_ofp10(*port).filter(|&p| p < 0xff00 || p == 0xfff8 || p == 0xfffe)
                    }
                    _ => None,
                };
                if let Some(p) = enqueue {
                    put_simple(out, OFPAT10_ENQUEUE, 16);
                    out.u16(p);
                    out.zeros(6);
                    out.u32(*q);
                    i += 1;
                } else {
                    put_nx_u32(out, NXAST_SET_QUEUE, *q);
                }
            }
            Action::Group(g) => put_nx_u32(out, NXAST_GROUP, *g),
            // OVS `encode_PUSH_VLAN` for OFP10_VERSION: nothing.
            Action::PushVlan(_) => {}
            Action::SetVlan10 { field, value, .. } => encode_set_field(*field, *value, out)?,
            Action::PopVlan => {
                put_simple(out, OFPAT10_STRIP_VLAN, 8);
                out.zeros(4);
            }
            Action::SetField { field, value } => encode_set_field(*field, *value, out)?,
            Action::DecNwTtl => {
                let start = begin_nx_action(out, NXAST_DEC_TTL);
                finish_action(out, start)?;
            }
            Action::PushMpls(eth) | Action::PopMpls(eth) => {
                let sub = if matches!(acts[i], Action::PushMpls(_)) {
                    NXAST_PUSH_MPLS
                } else {
                    NXAST_POP_MPLS
                };
                let start = begin_nx_action(out, sub);
                out.u16(*eth);
                finish_action(out, start)?;
            }
            Action::SetMplsTtl(t) => {
                let start = begin_nx_action(out, NXAST_SET_MPLS_TTL);
                out.u8(*t);
                finish_action(out, start)?;
            }
            Action::DecMplsTtl => {
                let start = begin_nx_action(out, NXAST_DEC_MPLS_TTL);
                finish_action(out, start)?;
            }
            Action::SetNwTtl(t) => encode_set_field(OxmField::IpTtl, u128::from(*t), out)?,
            a => {
                let nested = |acts: &[Action], out: &mut Vec<u8>| encode_actions_ofp10(acts, out);
                if !crate::nx_action::encode(a, OFP10_VERSION, out, &nested)? {
                    return Err(unsupported("action without an OpenFlow 1.0 form"));
                }
            }
        }
        i += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3 to 1.5 actions (1.3 §7.2.5).

pub(crate) mod at {
    pub const OUTPUT: u16 = 0;
    pub const SET_MPLS_TTL: u16 = 15;
    pub const DEC_MPLS_TTL: u16 = 16;
    pub const PUSH_MPLS: u16 = 19;
    pub const POP_MPLS: u16 = 20;
    pub const PUSH_VLAN: u16 = 17;
    pub const POP_VLAN: u16 = 18;
    pub const SET_QUEUE: u16 = 21;
    pub const GROUP: u16 = 22;
    pub const SET_NW_TTL: u16 = 23;
    pub const DEC_NW_TTL: u16 = 24;
    pub const SET_FIELD: u16 = 25;
    pub const COPY_FIELD: u16 = 28;
    pub const EXPERIMENTER: u16 = 0xffff;
}

pub(crate) fn decode_action(typ: u16, a: &mut Rd<'_>, version: u8) -> Result<Action, DecodeError> {
    let fixed = |a: &Rd<'_>, n: usize| {
        if a.b.len() == n {
            Ok(())
        } else {
            Err(err(OfError::BAD_ACTION_LEN, "bad action length"))
        }
    };
    Ok(match typ {
        at::OUTPUT => {
            fixed(a, 12)?;
            let port = a.u32()?;
            let max_len = a.u16()?;
            if port == 0 || port == OFPP_ANY || (port > OFPP_MAX && port < OFPP_IN_PORT) {
                return Err(err(OfError::BAD_OUT_PORT, "bad output port"));
            }
            Action::Output { port, max_len }
        }
        at::PUSH_VLAN => {
            fixed(a, 4)?;
            let tpid = a.u16()?;
            if tpid != 0x8100 && tpid != 0x88a8 {
                return Err(err(OfError::BAD_ACTION_ARGUMENT, "bad push_vlan ethertype"));
            }
            Action::PushVlan(tpid)
        }
        at::POP_VLAN => {
            fixed(a, 4)?;
            Action::PopVlan
        }
        at::PUSH_MPLS => {
            fixed(a, 4)?;
            let eth = a.u16()?;
            if eth != 0x8847 && eth != 0x8848 {
                return Err(err(OfError::BAD_ACTION_ARGUMENT, "bad push_mpls ethertype"));
            }
            Action::PushMpls(eth)
        }
        at::POP_MPLS => {
            fixed(a, 4)?;
            let eth = a.u16()?;
            // OVS `decode_OFPAT_RAW11_POP_MPLS`: any EtherType but MPLS's
            // own is taken (an inner label stack entry pops to 0x8847).
            Action::PopMpls(eth)
        }
        at::SET_MPLS_TTL => {
            fixed(a, 4)?;
            Action::SetMplsTtl(a.u8()?)
        }
        at::DEC_MPLS_TTL => {
            fixed(a, 4)?;
            Action::DecMplsTtl
        }
        at::SET_QUEUE => {
            fixed(a, 4)?;
            Action::SetQueue(a.u32()?)
        }
        at::GROUP => {
            fixed(a, 4)?;
            Action::Group(a.u32()?)
        }
        at::SET_NW_TTL => {
            fixed(a, 4)?;
            Action::SetNwTtl(a.u8()?)
        }
        at::DEC_NW_TTL => {
            fixed(a, 4)?;
            Action::DecNwTtl
        }
        at::SET_FIELD => {
            let body = a.rest();
            // OpenFlow 1.5 set-field may be masked (OVS
            // `decode_OFPAT_RAW15_SET_FIELD`): a `Load` of those bits.
            // So is a set-field of a field that is not one model field
            // (`vlan_tci`, `nw_tos`, the 16-bit `in_port`), or of in_port
            // (OVS: writable, changes the pipeline's in_port).
            let masked = body.len() >= 4 && body[2] & 1 != 0;
            let (f, v, m, _) = oxm::decode_wire_set_field(body)?;
            let as_load = !matches!(f, MfField::Oxm(f) if f != OxmField::InPort);
            if masked && version < OFP15_VERSION {
                return Err(err(
                    OfError::BAD_SET_ARGUMENT,
                    "masked set-field before 1.5",
                ));
            }
            let ct_field = matches!(f, MfField::Oxm(OxmField::CtMark | OxmField::CtLabel));
            if let (true, false, true, MfField::Oxm(field)) =
                (ct_field, masked, nx_action::in_ct(), f)
            {
                // ct(exec(set_field:..->ct_mark)): only inside ct.
                Action::SetField { field, value: v }
            } else if masked || as_load {
                nx_action::set_field_action(f, v, m)?
            } else {
                let (field, value, _) = oxm::decode_set_field(body)?;
                Action::SetField { field, value }
            }
        }
        at::COPY_FIELD if version >= OFP15_VERSION => {
            if a.b.len() < 12 {
                return Err(err(OfError::BAD_ACTION_LEN, "bad action length"));
            }
            let n_bits = a.u16()?;
            let src_ofs = a.u16()?;
            let dst_ofs = a.u16()?;
            a.skip(2)?;
            nx_action::decode_move(n_bits, src_ofs, dst_ofs, a.rest())?
        }
        at::EXPERIMENTER => {
            let vendor = a.u32()?;
            if vendor != NX_VENDOR_ID {
                return Err(err(
                    OfError::BAD_ACTION_EXPERIMENTER,
                    "unknown action experimenter",
                ));
            }
            // The whole action again, header included.
            let mut whole = vec![0xff, 0xff, 0, 0];
            whole.extend_from_slice(&NX_VENDOR_ID.to_be_bytes());
            whole.extend_from_slice(a.rest());
            let len = u16::try_from(whole.len()).unwrap_or(u16::MAX);
            whole[2..4].copy_from_slice(&len.to_be_bytes());
            let nested = |b: &[u8]| decode_actions_version(b, version);
            nx_action::decode(&whole, version, &nested)?
        }
        _ => return Err(err(OfError::BAD_ACTION_TYPE, "unsupported action")),
    })
}

/// Decode an OpenFlow 1.3 action list (`ofp_action_*`, each a multiple
/// of 8 bytes).
///
/// # Errors
/// `BAD_ACTION/*`.
pub fn decode_actions(buf: &[u8]) -> Result<Vec<Action>, DecodeError> {
    decode_actions_version(buf, OFP13_VERSION)
}

/// Decode an action list of OpenFlow `version` (1.3 to 1.5; Nicira
/// actions through [`nx_action`]).
///
/// # Errors
/// `BAD_ACTION/*`.
pub fn decode_actions_version(buf: &[u8], version: u8) -> Result<Vec<Action>, DecodeError> {
    let mut rd = Rd::new(buf, OfError::BAD_ACTION_LEN);
    let mut acts = Vec::new();
    while !rd.is_empty() {
        let (typ, mut a) = rd.tlv8("action length not a multiple of 8")?;
        acts.push(decode_action(typ, &mut a, version)?);
    }
    nx_action::merge_loads(&mut acts, false);
    Ok(acts)
}

pub(crate) fn put_action(out: &mut Vec<u8>, a: &Action, version: u8) -> Result<(), EncodeError> {
    let start = out.len();
    let nested = |acts: &[Action], out: &mut Vec<u8>| put_actions_version(out, acts, version);
    if nx_action::encode(a, version, out, &nested)? {
        return Ok(());
    }
    let hdr = |out: &mut Vec<u8>, typ: u16, len: u16| {
        out.u16(typ);
        out.u16(len);
    };
    match a {
        Action::Output { port, max_len } => {
            hdr(out, at::OUTPUT, 16);
            out.u32(*port);
            out.u16(*max_len);
            out.zeros(6);
        }
        Action::Group(g) => {
            hdr(out, at::GROUP, 8);
            out.u32(*g);
        }
        Action::SetQueue(q) => {
            hdr(out, at::SET_QUEUE, 8);
            out.u32(*q);
        }
        Action::PushVlan(tpid) => {
            hdr(out, at::PUSH_VLAN, 8);
            out.u16(*tpid);
            out.zeros(2);
        }
        Action::PopVlan => {
            hdr(out, at::POP_VLAN, 8);
            out.zeros(4);
        }
        Action::SetVlan10 {
            field,
            value,
            flow_has_vlan,
        } => {
            // OVS `encode_SET_VLAN_VID/PCP` for 1.2+: a push first when
            // the rule's flow has no tag, then the set-field.
            if !flow_has_vlan {
                put_action(out, &Action::PushVlan(0x8100), version)?;
            }
            let set = Action::SetField {
                field: *field,
                value: *value,
            };
            put_action(out, &set, version)?;
        }
        Action::SetField { field, value } => {
            hdr(out, at::SET_FIELD, 0);
            oxm::encode_set_field(*field, *value, Flavor::Oxm, out);
            out.pad8(start);
            end_record(out, start, start + 2)?;
        }
        Action::DecNwTtl => {
            hdr(out, at::DEC_NW_TTL, 8);
            out.zeros(4);
        }
        Action::PushMpls(eth) | Action::PopMpls(eth) => {
            let typ = if matches!(a, Action::PushMpls(_)) {
                at::PUSH_MPLS
            } else {
                at::POP_MPLS
            };
            hdr(out, typ, 8);
            out.u16(*eth);
            out.zeros(2);
        }
        Action::SetMplsTtl(ttl) => {
            hdr(out, at::SET_MPLS_TTL, 8);
            out.u8(*ttl);
            out.zeros(3);
        }
        Action::DecMplsTtl => {
            hdr(out, at::DEC_MPLS_TTL, 8);
            out.zeros(4);
        }
        Action::SetNwTtl(ttl) => {
            hdr(out, at::SET_NW_TTL, 8);
            out.u8(*ttl);
            out.zeros(3);
        }
        _ => {
            return Err(EncodeError::Unsupported(
                "action without an OpenFlow 1.3 form",
            ))
        }
    }
    Ok(())
}

/// Append `acts` as an OpenFlow `version` (1.3 to 1.5) action list.
///
/// # Errors
/// `Unsupported` for an action the version cannot carry.
pub fn encode_actions_version(
    acts: &[Action],
    version: u8,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    put_actions_version(out, acts, version)
}

/// Append `acts` in OpenFlow `version`'s forms (1.3 to 1.5).
pub(crate) fn put_actions_version(
    out: &mut Vec<u8>,
    acts: &[Action],
    version: u8,
) -> Result<(), EncodeError> {
    acts.iter().try_for_each(|a| put_action(out, a, version))
}
