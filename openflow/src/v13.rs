//! OpenFlow 1.3, 1.4 and 1.5 messages (ONF TS-006 1.3.5 §7, TS-024
//! 1.4.1 §7, TS-025 1.5.1 §7), both directions, with the wire version as
//! a parameter. What the three share (header, match, actions,
//! instructions, meters, table features, most multiparts) is here; the
//! message families whose layout changed after 1.3 live in their own
//! modules and take the version: [`crate::port`] (port descriptions,
//! port statistics, port-mod: properties in 1.4+), [`crate::flow`] (flow
//! statistics, aggregate and flow-removed: OXS statistics in 1.5),
//! [`crate::group`] (group-mod and group descriptions: bucket properties
//! in 1.5), [`crate::async_config`] (properties in 1.4+). Also by
//! version: 1.5 packet-out carries an `ofp_match` instead of `in_port`;
//! 1.5 port-desc and group-desc requests carry a port / group filter;
//! 1.5 meter is an action (`OFPAT_METER`, first in apply-actions), not an
//! instruction; 1.4 queue statistics are length-prefixed; 1.4 table-mod
//! carries properties (refused: xennet has no eviction or vacancy
//! events). Bundles (`OFPT_BUNDLE_*` in 1.4+, the ONF extension in 1.3)
//! are [`crate::bundle`]'s. Flow monitors, table and queue
//! descriptions are answered `BAD_TYPE` / `BAD_MULTIPART`, as by a
//! switch without them; xennet never sends role-status, table-status or
//! request-forward messages (Open vSwitch sends none by default either).
//!
//! Decoding checks every length field against the bytes that are really
//! there (never indexing past them, never allocating more than the input
//! holds) and answers with the 1.3 error the spec (or Open vSwitch, where
//! the spec is silent) gives. Encoding appends whole messages; multipart
//! replies whose body would exceed 65535 bytes are split into several
//! messages, all but the last with `OFPMPF_REPLY_MORE` (§7.3.5).
//!
//! Not supported (decode error): `OFPT_QUEUE_GET_CONFIG_*` (`BAD_TYPE`),
//! experimenter messages other than Nicira `NXT_SET_PACKET_IN_FORMAT`,
//! `NXT_PACKET_IN2` ([`crate::packet_in2`]), `NXT_SET_CONTROLLER_ID`,
//! `NXT_FLOW_MOD_TABLE_ID` and the ONF bundle
//! messages (`BAD_EXPERIMENTER`
//! / `BAD_EXP_TYPE`), experimenter multiparts (`BAD_EXPERIMENTER`), MPLS,
//! PBB and TTL-copy actions (`BAD_ACTION_TYPE`), experimenter meter bands
//! (`METER_BAD_BAND`), standard (`OFPMT_STANDARD`) matches
//! (`BAD_MATCH_TYPE`). Lossy on purpose: `SwitchFeatures::ports` (1.0
//! only) is not sent in 1.3, `FlowStats::idle_age`/`hard_age` (Nicira
//! only) decode as `None`, queue statistics replies decode as the empty
//! [`MpReply::Queue`], the reserved fields are sent as zero.

use crate::error::OFPET_EXPERIMENTER;
use crate::error::{DecodeError, OfError};
use crate::header::{self, Header, HEADER_LEN, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION};
use crate::model::*;
pub use crate::nicira::NX_VENDOR_ID;
use crate::nicira::{NXT_FLOW_MOD_TABLE_ID, NXT_SET_CONTROLLER_ID, NXT_SET_PACKET_IN_FORMAT};
use crate::nx_action;
use crate::oxm::{self, Flavor};
use crate::wire::{self, end_record, get_str, put_split_reply, Put, Rd};
use crate::{async_config, bundle, flow, group, port};

/// 1.3 message types (`ofp_type`).
mod t {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
    pub const METER_MOD: u8 = 29;
}

/// Multipart types (`ofp_multipart_type`).
mod mp {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// `OFPMPF_REPLY_MORE` / `OFPMPF_REQ_MORE`: more messages follow.
pub const OFPMPF_MORE: u16 = 1;
/// `OFPMT_OXM`.
const OFPMT_OXM: u16 = 1;

// ---------------------------------------------------------------------------
// Reading.

fn err(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
}

// ---------------------------------------------------------------------------
// Writing.

/// Append one message of type `typ`: header, then what `body` writes.
/// On error nothing is appended.
fn message(
    out: &mut Vec<u8>,
    version: u8,
    typ: u8,
    xid: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = wire::begin(out, version, typ, xid);
    let r = body(out).and_then(|()| wire::finish(out, start));
    if r.is_err() {
        out.truncate(start);
    }
    r
}

// ---------------------------------------------------------------------------
// ofp_match (§7.2.2).

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

// ---------------------------------------------------------------------------
// Actions (§7.2.5).

mod at {
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

fn decode_action(typ: u16, a: &mut Rd<'_>, version: u8) -> Result<Action, DecodeError> {
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

fn put_action(out: &mut Vec<u8>, a: &Action, version: u8) -> Result<(), EncodeError> {
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

// ---------------------------------------------------------------------------
// Instructions (§7.2.4).

mod it {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Decode an instruction list. A repeated instruction type is refused
/// with `UNSUP_INST` (OVS's `OFPBIC_DUP_INST` has no 1.3 code).
///
/// # Errors
/// `BAD_INSTRUCTION/*` and the actions' `BAD_ACTION/*`.
///
/// In 1.5 the meter instruction is gone (`UNKNOWN_INST`, as in Open
/// vSwitch) and an `OFPAT_METER` first in apply-actions is the meter.
pub fn decode_instructions(buf: &[u8], version: u8) -> Result<Instructions, DecodeError> {
    let mut rd = Rd::new(buf, OfError::BAD_INST_LEN);
    let mut ins = Instructions::default();
    let mut seen = 0u32;
    while !rd.is_empty() {
        let (typ, mut i) = rd.tlv8("instruction length not a multiple of 8")?;
        let fixed = |i: &Rd<'_>, n: usize| {
            if i.b.len() == n {
                Ok(())
            } else {
                Err(err(OfError::BAD_INST_LEN, "bad instruction length"))
            }
        };
        if (1..=6).contains(&typ) {
            if seen & (1 << typ) != 0 {
                return Err(err(OfError::UNSUP_INST, "duplicate instruction"));
            }
            seen |= 1 << typ;
        }
        match typ {
            it::GOTO_TABLE => {
                fixed(&i, 4)?;
                ins.goto_table = Some(i.u8()?);
            }
            it::WRITE_METADATA => {
                fixed(&i, 20)?;
                i.skip(4)?;
                let v = i.u64()?;
                let m = i.u64()?;
                ins.write_metadata = Some((v, m));
            }
            it::WRITE_ACTIONS | it::APPLY_ACTIONS => {
                i.skip(4)?;
                let mut body = i.rest();
                if version >= OFP15_VERSION && typ == it::APPLY_ACTIONS {
                    if let [0, 29, 0, 8, a, b, c, d, rest @ ..] = body {
                        ins.meter = Some(u32::from_be_bytes([*a, *b, *c, *d]));
                        body = rest;
                        if body.is_empty() {
                            // apply_actions(meter:N) alone is just the meter.
                            continue;
                        }
                    }
                }
                let acts = decode_actions_version(body, version)?;
                if typ == it::WRITE_ACTIONS {
                    ins.write = Some(acts);
                } else {
                    ins.apply = Some(acts);
                }
            }
            it::CLEAR_ACTIONS => {
                fixed(&i, 4)?;
                ins.clear = true;
            }
            it::METER if version >= OFP15_VERSION => {
                return Err(err(OfError::UNKNOWN_INST, "meter is an action in 1.5"));
            }
            it::METER => {
                fixed(&i, 4)?;
                ins.meter = Some(i.u32()?);
            }
            it::EXPERIMENTER => {
                return Err(err(
                    OfError::BAD_INST_EXPERIMENTER,
                    "experimenter instruction",
                ));
            }
            _ => return Err(err(OfError::UNKNOWN_INST, "unknown instruction")),
        }
    }
    Ok(ins)
}

/// Append `ins` in Open vSwitch's order: meter, apply-actions,
/// clear-actions, write-actions, write-metadata, goto-table.
/// In 1.5 the meter goes first into apply-actions as `OFPAT_METER`.
pub(crate) fn put_instructions(
    out: &mut Vec<u8>,
    ins: &Instructions,
    version: u8,
) -> Result<(), EncodeError> {
    let meter_action = version >= OFP15_VERSION;
    if let (Some(m), false) = (ins.meter, meter_action) {
        out.u16(it::METER);
        out.u16(8);
        out.u32(m);
    }
    let put_acts = |out: &mut Vec<u8>, typ: u16, meter: Option<u32>, acts: &[Action]| {
        let start = out.len();
        out.u16(typ);
        out.u16(0);
        out.zeros(4);
        if let Some(m) = meter {
            out.u16(29);
            out.u16(8);
            out.u32(m);
        }
        put_actions_version(out, acts, version)?;
        end_record(out, start, start + 2)
    };
    let meter = ins.meter.filter(|_| meter_action);
    if ins.apply.is_some() || meter.is_some() {
        let none = Vec::new();
        let a = ins.apply.as_ref().unwrap_or(&none);
        put_acts(out, it::APPLY_ACTIONS, meter, a)?;
    }
    if ins.clear {
        out.u16(it::CLEAR_ACTIONS);
        out.u16(8);
        out.zeros(4);
    }
    if let Some(a) = &ins.write {
        put_acts(out, it::WRITE_ACTIONS, None, a)?;
    }
    if let Some((v, m)) = ins.write_metadata {
        out.u16(it::WRITE_METADATA);
        out.u16(24);
        out.zeros(4);
        out.u64(v);
        out.u64(m);
    }
    if let Some(t) = ins.goto_table {
        out.u16(it::GOTO_TABLE);
        out.u16(8);
        out.u8(t);
        out.zeros(3);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Shared structures.

/// `ofp_meter_band_*` list (§7.3.4.4).
fn get_bands(buf: &[u8]) -> Result<Vec<MeterBand>, DecodeError> {
    let mut rd = Rd::new(buf, OfError::METER_BAD_BAND);
    let mut v = Vec::new();
    while !rd.is_empty() {
        let typ = rd.peek_len(0)?;
        let len = rd.peek_len(2)?;
        if len != 16 {
            return Err(err(OfError::METER_BAD_BAND, "bad meter band length"));
        }
        let mut b = rd.record(len, 16)?;
        b.skip(4)?;
        let rate = b.u32()?;
        let burst_size = b.u32()?;
        let kind = match typ {
            1 => MeterBandKind::Drop,
            2 => MeterBandKind::DscpRemark {
                prec_level: b.u8()?,
            },
            _ => return Err(err(OfError::METER_BAD_BAND, "unsupported meter band")),
        };
        v.push(MeterBand {
            kind,
            rate,
            burst_size,
        });
    }
    Ok(v)
}

fn put_bands(out: &mut Vec<u8>, bands: &[MeterBand]) {
    for b in bands {
        let (typ, prec) = match b.kind {
            MeterBandKind::Drop => (1, 0),
            MeterBandKind::DscpRemark { prec_level } => (2, prec_level),
        };
        out.u16(typ);
        out.u16(16);
        out.u32(b.rate);
        out.u32(b.burst_size);
        out.u8(prec);
        out.zeros(3);
    }
}

/// `(packets, bytes)` counter pairs.
fn get_counters(rd: &mut Rd<'_>) -> Result<Vec<(u64, u64)>, DecodeError> {
    if rd.b.len() % 16 != 0 {
        return Err(err(OfError::BAD_LEN, "bad counter list length"));
    }
    let mut v = Vec::new();
    while !rd.is_empty() {
        v.push((rd.u64()?, rd.u64()?));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Messages.

fn flow_mod_command(c: u8) -> Result<FlowModCommand, DecodeError> {
    FlowModCommand::from_wire(c)
        .ok_or_else(|| err(OfError::BAD_COMMAND, "unknown flow-mod command"))
}

/// `ofp_flow_mod` after the header (§7.3.4.1). In 1.4+ the two bytes
/// after `flags` are `importance`, which xennet (no eviction) ignores.
fn get_flow_mod(rd: &mut Rd<'_>, version: u8) -> Result<FlowMod, DecodeError> {
    let cookie = rd.u64()?;
    let cookie_mask = rd.u64()?;
    let table_id = rd.u8()?;
    let command = rd.u8()?;
    let idle_timeout = rd.u16()?;
    let hard_timeout = rd.u16()?;
    let priority = rd.u16()?;
    let buffer_id = rd.u32()?;
    let out_port = rd.u32()?;
    let out_group = rd.u32()?;
    let flags = rd.u16()?;
    rd.skip(2)?;
    let command = flow_mod_command(command)?;
    let matcher = get_match(rd)?;
    let instructions = decode_instructions(rd.rest(), version)?;
    Ok(FlowMod {
        cookie,
        cookie_mask,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        priority,
        buffer_id,
        out_port,
        out_group,
        flags,
        matcher,
        instructions,
    })
}

fn put_flow_mod(out: &mut Vec<u8>, f: &FlowMod, version: u8) -> Result<(), EncodeError> {
    out.u64(f.cookie);
    out.u64(f.cookie_mask);
    out.u8(f.table_id);
    out.u8(f.command.to_wire());
    out.u16(f.idle_timeout);
    out.u16(f.hard_timeout);
    out.u16(f.priority);
    out.u32(f.buffer_id);
    out.u32(f.out_port);
    out.u32(f.out_group);
    out.u16(f.flags);
    out.zeros(2);
    put_match(out, &f.matcher);
    put_instructions(out, &f.instructions, version)
}

fn get_packet_in(rd: &mut Rd<'_>) -> Result<PacketIn, DecodeError> {
    let buffer_id = rd.u32()?;
    let total_len = rd.u16()?;
    let reason = rd.u8()?;
    let table_id = rd.u8()?;
    let cookie = rd.u64()?;
    let (in_port, metadata) = oxm::decode_pipeline_fields(take_match(rd)?)?;
    let in_port = in_port.ok_or(err(OfError::BAD_PORT, "packet-in without in_port"))?;
    rd.skip(2)?;
    Ok(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        in_port,
        metadata,
        data: rd.rest().to_vec(),
        ..PacketIn::default()
    })
}

fn put_packet_in(out: &mut Vec<u8>, p: &PacketIn) {
    out.u32(p.buffer_id);
    out.u16(p.total_len);
    out.u8(p.reason);
    out.u8(p.table_id);
    out.u64(p.cookie);
    let mut m = Match::CATCHALL;
    m.key.set_in_port(p.in_port);
    m.mask.set_exact(xennet_datapath::flow::Field::InPort);
    if p.metadata != 0 {
        m.key.set(
            xennet_datapath::flow::Field::Metadata,
            u128::from(p.metadata),
        );
        m.mask.set_exact(xennet_datapath::flow::Field::Metadata);
    }
    put_match(out, &m);
    out.zeros(2);
    out.extend_from_slice(&p.data);
}

/// `ofp_packet_out` after the header: 1.3/1.4 `buffer_id`, `in_port`,
/// `actions_len`, 6 pad bytes; 1.5 (1.5.1 §7.3.6) `buffer_id`,
/// `actions_len`, 2 pad bytes, an `ofp_match` holding the pipeline
/// fields (xennet uses `in_port`, `OFPP_ANY` when absent). Then actions
/// and the packet.
fn get_packet_out(rd: &mut Rd<'_>, version: u8) -> Result<PacketOut, DecodeError> {
    let buffer_id = rd.u32()?;
    let (in_port, actions_len) = if version >= OFP15_VERSION {
        let actions_len = usize::from(rd.u16()?);
        rd.skip(2)?;
        let (in_port, _metadata) = oxm::decode_pipeline_fields(take_match(rd)?)?;
        (in_port.unwrap_or(OFPP_ANY), actions_len)
    } else {
        let in_port = rd.u32()?;
        let actions_len = usize::from(rd.u16()?);
        rd.skip(6)?;
        (in_port, actions_len)
    };
    let actions = decode_actions_version(rd.take(actions_len)?, version)?;
    Ok(PacketOut {
        buffer_id,
        in_port,
        actions,
        data: rd.rest().to_vec(),
    })
}

fn put_packet_out(out: &mut Vec<u8>, p: &PacketOut, version: u8) -> Result<(), EncodeError> {
    out.u32(p.buffer_id);
    let at;
    if version >= OFP15_VERSION {
        at = out.len();
        out.u16(0);
        out.zeros(2);
        let mut m = Match::CATCHALL;
        m.key.set_in_port(p.in_port);
        m.mask.set_exact(xennet_datapath::flow::Field::InPort);
        put_match(out, &m);
    } else {
        out.u32(p.in_port);
        at = out.len();
        out.u16(0);
        out.zeros(6);
    }
    let start = out.len();
    put_actions_version(out, &p.actions, version)?;
    let len = u16::try_from(out.len() - start)
        .map_err(|_| EncodeError::Unsupported("actions longer than 65535 bytes"))?;
    out.patch16(at, len);
    out.extend_from_slice(&p.data);
    Ok(())
}

fn get_meter_mod(rd: &mut Rd<'_>) -> Result<MeterMod, DecodeError> {
    let command = match rd.u16()? {
        0 => MeterModCommand::Add,
        1 => MeterModCommand::Modify,
        2 => MeterModCommand::Delete,
        _ => return Err(err(OfError::METER_BAD_COMMAND, "unknown meter-mod command")),
    };
    Ok(MeterMod {
        command,
        flags: rd.u16()?,
        meter_id: rd.u32()?,
        bands: get_bands(rd.rest())?,
    })
}

fn put_meter_mod(out: &mut Vec<u8>, m: &MeterMod) {
    out.u16(match m.command {
        MeterModCommand::Add => 0,
        MeterModCommand::Modify => 1,
        MeterModCommand::Delete => 2,
    });
    out.u16(m.flags);
    out.u32(m.meter_id);
    put_bands(out, &m.bands);
}

fn get_role(rd: &mut Rd<'_>) -> Result<RoleMsg, DecodeError> {
    let role = rd.u32()?;
    if role > 3 {
        return Err(err(OfError::BAD_ROLE, "unknown controller role"));
    }
    rd.skip(4)?;
    let generation_id = rd.u64()?;
    rd.end()?;
    Ok(RoleMsg {
        role,
        generation_id,
    })
}

fn put_role(out: &mut Vec<u8>, r: &RoleMsg) {
    out.u32(r.role);
    out.zeros(4);
    out.u64(r.generation_id);
}

// ---------------------------------------------------------------------------
// Multipart (§7.3.5).

/// `ofp_flow_stats_request` / `ofp_aggregate_stats_request`.
fn get_flow_stats_request(rd: &mut Rd<'_>) -> Result<FlowStatsRequest, DecodeError> {
    let table_id = rd.u8()?;
    rd.skip(3)?;
    let out_port = rd.u32()?;
    let out_group = rd.u32()?;
    rd.skip(4)?;
    let cookie = rd.u64()?;
    let cookie_mask = rd.u64()?;
    let matcher = get_match(rd)?;
    rd.end()?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group,
        cookie,
        cookie_mask,
        matcher,
    })
}

fn put_flow_stats_request(out: &mut Vec<u8>, r: &FlowStatsRequest) {
    out.u8(r.table_id);
    out.zeros(3);
    out.u32(r.out_port);
    out.u32(r.out_group);
    out.zeros(4);
    out.u64(r.cookie);
    out.u64(r.cookie_mask);
    put_match(out, &r.matcher);
}

/// `port_no`/`group_id`/`meter_id` followed by 4 pad bytes.
fn get_id_pad(rd: &mut Rd<'_>) -> Result<u32, DecodeError> {
    let id = rd.u32()?;
    rd.skip(4)?;
    rd.end()?;
    Ok(id)
}

/// `ofp_table_features` (§7.3.5.5), variable length.
fn get_table_features(rd: &mut Rd<'_>) -> Result<TableFeatures, DecodeError> {
    let len = rd.peek_len(0)?;
    if len % 8 != 0 {
        return Err(err(
            OfError::BAD_LEN,
            "table features length not a multiple of 8",
        ));
    }
    let mut r = rd.record(len, 64)?;
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(5)?;
    let name = get_str(r.take(32)?);
    let metadata_match = r.u64()?;
    let metadata_write = r.u64()?;
    let config = r.u32()?;
    let max_entries = r.u32()?;
    let mut properties = Vec::new();
    while !r.is_empty() {
        let typ = r.peek_len(0)? as u16;
        let plen = r.peek_len(2)?;
        if plen < 4 {
            return Err(err(OfError::BAD_LEN, "bad table feature property length"));
        }
        let padded = r.take(plen.next_multiple_of(8))?;
        properties.push(table_prop(typ, &padded[4..plen]));
    }
    Ok(TableFeatures {
        table_id,
        name,
        metadata_match,
        metadata_write,
        config,
        max_entries,
        properties,
    })
}

/// A list of 4-byte `(type, len = 4)` ids, or `None` if the body holds
/// anything else (then the property is kept raw).
fn prop_ids(body: &[u8]) -> Option<Vec<u16>> {
    if body.len() % 4 != 0 {
        return None;
    }
    body.chunks_exact(4)
        .map(|c| (u16::from_be_bytes([c[2], c[3]]) == 4).then(|| u16::from_be_bytes([c[0], c[1]])))
        .collect()
}

/// A list of 32-bit OXM headers (no experimenter ones), or `None`.
fn prop_oxms(body: &[u8]) -> Option<Vec<u32>> {
    if body.len() % 4 != 0 {
        return None;
    }
    body.chunks_exact(4)
        .map(|c| {
            let h = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            (h >> 16 != u32::from(oxm::EXPERIMENTER)).then_some(h)
        })
        .collect()
}

fn table_prop(typ: u16, body: &[u8]) -> TableFeatureProp {
    use TableFeatureProp as P;
    let miss = typ & 1 == 1;
    let p = match typ {
        0 | 1 => prop_ids(body).map(|ids| P::Instructions { miss, ids }),
        2 | 3 => Some(P::NextTables {
            miss,
            tables: body.to_vec(),
        }),
        4 | 5 => prop_ids(body).map(|ids| P::WriteActions { miss, ids }),
        6 | 7 => prop_ids(body).map(|ids| P::ApplyActions { miss, ids }),
        8 => prop_oxms(body).map(P::Match),
        10 => prop_oxms(body).map(P::Wildcards),
        12 | 13 => prop_oxms(body).map(|fields| P::WriteSetField { miss, fields }),
        14 | 15 => prop_oxms(body).map(|fields| P::ApplySetField { miss, fields }),
        _ => None,
    };
    p.unwrap_or_else(|| P::Other {
        typ,
        body: body.to_vec(),
    })
}

fn put_table_prop(out: &mut Vec<u8>, p: &TableFeatureProp) -> Result<(), EncodeError> {
    use TableFeatureProp as P;
    let start = out.len();
    let ids = |out: &mut Vec<u8>, ids: &[u16]| {
        for id in ids {
            out.u16(*id);
            out.u16(4);
        }
    };
    let oxms = |out: &mut Vec<u8>, hs: &[u32]| hs.iter().for_each(|h| out.u32(*h));
    let m = |miss: bool| u16::from(miss);
    let typ = match p {
        P::Instructions { miss, .. } => m(*miss),
        P::NextTables { miss, .. } => 2 + m(*miss),
        P::WriteActions { miss, .. } => 4 + m(*miss),
        P::ApplyActions { miss, .. } => 6 + m(*miss),
        P::Match(_) => 8,
        P::Wildcards(_) => 10,
        P::WriteSetField { miss, .. } => 12 + m(*miss),
        P::ApplySetField { miss, .. } => 14 + m(*miss),
        P::Other { typ, .. } => *typ,
    };
    out.u16(typ);
    out.u16(0);
    match p {
        P::Instructions { ids: v, .. }
        | P::WriteActions { ids: v, .. }
        | P::ApplyActions { ids: v, .. } => ids(out, v),
        P::NextTables { tables, .. } => out.extend_from_slice(tables),
        P::Match(v) | P::Wildcards(v) => oxms(out, v),
        P::WriteSetField { fields, .. } | P::ApplySetField { fields, .. } => oxms(out, fields),
        P::Other { body, .. } => out.extend_from_slice(body),
    }
    end_record(out, start, start + 2)?;
    out.pad8(start);
    Ok(())
}

fn put_table_features(out: &mut Vec<u8>, f: &TableFeatures) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(f.table_id);
    out.zeros(5);
    out.str(&f.name, 32);
    out.u64(f.metadata_match);
    out.u64(f.metadata_write);
    out.u32(f.config);
    out.u32(f.max_entries);
    for p in &f.properties {
        put_table_prop(out, p)?;
    }
    end_record(out, start, start)
}

fn get_mp_request(typ: u16, rd: &mut Rd<'_>, version: u8) -> Result<MpRequest, DecodeError> {
    let v15 = version >= OFP15_VERSION;
    let empty = |rd: &Rd<'_>, r: MpRequest| rd.end().map(|()| r);
    Ok(match typ {
        mp::DESC => empty(rd, MpRequest::Desc)?,
        mp::FLOW => MpRequest::Flow(get_flow_stats_request(rd)?),
        mp::AGGREGATE => MpRequest::Aggregate(get_flow_stats_request(rd)?),
        mp::TABLE => empty(rd, MpRequest::Table)?,
        mp::PORT_STATS => MpRequest::PortStats(get_id_pad(rd)?),
        mp::QUEUE => {
            let port_no = rd.u32()?;
            let queue_id = rd.u32()?;
            rd.end()?;
            MpRequest::Queue { port_no, queue_id }
        }
        mp::GROUP => MpRequest::Group(get_id_pad(rd)?),
        mp::GROUP_DESC if v15 => MpRequest::GroupDesc(get_id_pad(rd)?),
        mp::GROUP_DESC => empty(rd, MpRequest::GroupDesc(OFPG_ALL))?,
        mp::GROUP_FEATURES => empty(rd, MpRequest::GroupFeatures)?,
        mp::METER => MpRequest::Meter(get_id_pad(rd)?),
        mp::METER_CONFIG => MpRequest::MeterConfig(get_id_pad(rd)?),
        mp::METER_FEATURES => empty(rd, MpRequest::MeterFeatures)?,
        mp::TABLE_FEATURES => {
            let mut v = Vec::new();
            while !rd.is_empty() {
                v.push(get_table_features(rd)?);
            }
            MpRequest::TableFeatures(v)
        }
        mp::PORT_DESC if v15 => MpRequest::PortDesc(get_id_pad(rd)?),
        mp::PORT_DESC => empty(rd, MpRequest::PortDesc(OFPP_ANY))?,
        mp::EXPERIMENTER => return Err(err(OfError::BAD_EXPERIMENTER, "experimenter multipart")),
        _ => return Err(err(OfError::BAD_MULTIPART, "unknown multipart type")),
    })
}

fn put_mp_request(
    out: &mut Vec<u8>,
    flags: u16,
    r: &MpRequest,
    version: u8,
) -> Result<(), EncodeError> {
    let typ = match r {
        MpRequest::Desc => mp::DESC,
        MpRequest::Flow(_) => mp::FLOW,
        MpRequest::Aggregate(_) => mp::AGGREGATE,
        MpRequest::Table => mp::TABLE,
        MpRequest::TableFeatures(_) => mp::TABLE_FEATURES,
        MpRequest::PortStats(_) => mp::PORT_STATS,
        MpRequest::PortDesc(_) => mp::PORT_DESC,
        MpRequest::Queue { .. } => mp::QUEUE,
        MpRequest::Group(_) => mp::GROUP,
        MpRequest::GroupDesc(_) => mp::GROUP_DESC,
        MpRequest::GroupFeatures => mp::GROUP_FEATURES,
        MpRequest::Meter(_) => mp::METER,
        MpRequest::MeterConfig(_) => mp::METER_CONFIG,
        MpRequest::MeterFeatures => mp::METER_FEATURES,
        MpRequest::NxFlow(_) | MpRequest::NxAggregate(_) => {
            return Err(EncodeError::Unsupported("Nicira flow statistics request"))
        }
    };
    out.u16(typ);
    out.u16(flags);
    out.zeros(4);
    match r {
        MpRequest::Flow(f) | MpRequest::Aggregate(f) => put_flow_stats_request(out, f),
        MpRequest::PortStats(id) | MpRequest::Group(id) | MpRequest::Meter(id) => {
            out.u32(*id);
            out.zeros(4);
        }
        MpRequest::MeterConfig(id) => {
            out.u32(*id);
            out.zeros(4);
        }
        MpRequest::PortDesc(id) | MpRequest::GroupDesc(id) if version >= OFP15_VERSION => {
            out.u32(*id);
            out.zeros(4);
        }
        MpRequest::Queue { port_no, queue_id } => {
            out.u32(*port_no);
            out.u32(*queue_id);
        }
        MpRequest::TableFeatures(v) => {
            for f in v {
                put_table_features(out, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn get_group_stats(rd: &mut Rd<'_>) -> Result<GroupStats, DecodeError> {
    let len = rd.peek_len(0)?;
    let mut r = rd.record(len, 40)?;
    r.skip(4)?;
    let group_id = r.u32()?;
    let ref_count = r.u32()?;
    r.skip(4)?;
    Ok(GroupStats {
        group_id,
        ref_count,
        packet_count: r.u64()?,
        byte_count: r.u64()?,
        duration_sec: r.u32()?,
        duration_nsec: r.u32()?,
        buckets: get_counters(&mut r)?,
    })
}

fn put_group_stats(out: &mut Vec<u8>, g: &GroupStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.zeros(2);
    out.u32(g.group_id);
    out.u32(g.ref_count);
    out.zeros(4);
    out.u64(g.packet_count);
    out.u64(g.byte_count);
    out.u32(g.duration_sec);
    out.u32(g.duration_nsec);
    for (p, b) in &g.buckets {
        out.u64(*p);
        out.u64(*b);
    }
    end_record(out, start, start)
}

fn get_meter_stats(rd: &mut Rd<'_>) -> Result<MeterStats, DecodeError> {
    let len = rd.peek_len(4)?;
    let mut r = rd.record(len, 40)?;
    let meter_id = r.u32()?;
    r.skip(8)?;
    Ok(MeterStats {
        meter_id,
        flow_count: r.u32()?,
        packet_in_count: r.u64()?,
        byte_in_count: r.u64()?,
        duration_sec: r.u32()?,
        duration_nsec: r.u32()?,
        bands: get_counters(&mut r)?,
    })
}

fn put_meter_stats(out: &mut Vec<u8>, m: &MeterStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u32(m.meter_id);
    out.u16(0);
    out.zeros(6);
    out.u32(m.flow_count);
    out.u64(m.packet_in_count);
    out.u64(m.byte_in_count);
    out.u32(m.duration_sec);
    out.u32(m.duration_nsec);
    for (p, b) in &m.bands {
        out.u64(*p);
        out.u64(*b);
    }
    end_record(out, start, start + 4)
}

fn get_meter_config(rd: &mut Rd<'_>) -> Result<MeterConfig, DecodeError> {
    let len = rd.peek_len(0)?;
    let mut r = rd.record(len, 8)?;
    r.skip(2)?;
    Ok(MeterConfig {
        flags: r.u16()?,
        meter_id: r.u32()?,
        bands: get_bands(r.rest())?,
    })
}

fn put_meter_config(out: &mut Vec<u8>, m: &MeterConfig) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u16(m.flags);
    out.u32(m.meter_id);
    put_bands(out, &m.bands);
    end_record(out, start, start)
}

/// Decode records until the body is used up.
fn get_list<'a, T>(
    rd: &mut Rd<'a>,
    mut f: impl FnMut(&mut Rd<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut v = Vec::new();
    while !rd.is_empty() {
        v.push(f(rd)?);
    }
    Ok(v)
}

/// Fixed-size records of `size` bytes.
fn get_fixed_list<'a, T>(
    rd: &mut Rd<'a>,
    size: usize,
    f: impl Fn(&mut Rd<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    if rd.b.len() % size != 0 {
        return Err(err(OfError::BAD_LEN, "bad multipart body length"));
    }
    get_list(rd, f)
}

fn get_mp_reply(typ: u16, rd: &mut Rd<'_>, v: u8) -> Result<MpReply, DecodeError> {
    Ok(match typ {
        mp::DESC => MpReply::Desc(wire::get_desc(rd)?),
        mp::FLOW => MpReply::Flow(get_list(rd, |r| flow::get_flow_stats(r, v))?),
        mp::AGGREGATE => {
            let (packet_count, byte_count, flow_count) = flow::get_aggregate(rd, v)?;
            MpReply::Aggregate {
                packet_count,
                byte_count,
                flow_count,
            }
        }
        mp::TABLE => MpReply::Table(get_fixed_list(rd, 24, |r| {
            let table_id = r.u8()?;
            r.skip(3)?;
            Ok(TableStats {
                table_id,
                name: String::new(),
                active_count: r.u32()?,
                lookup_count: r.u64()?,
                matched_count: r.u64()?,
            })
        })?),
        mp::PORT_STATS => MpReply::PortStats(get_list(rd, |r| port::get_port_stats(r, v))?),
        mp::QUEUE if v >= OFP14_VERSION => {
            // ofp_queue_stats with properties (1.4 §7.3.5.8): skipped.
            get_list(rd, |r| {
                let len = r.peek_len(0)?;
                r.record(len, 48).map(|_| ())
            })?;
            MpReply::Queue
        }
        mp::QUEUE => {
            // ofp_queue_stats (40 bytes each); xennet has no queues and
            // the model keeps none.
            get_fixed_list(rd, 40, |r| r.skip(40))?;
            MpReply::Queue
        }
        mp::GROUP => MpReply::Group(get_list(rd, get_group_stats)?),
        mp::GROUP_DESC => MpReply::GroupDesc(get_list(rd, |r| group::get_group_desc(r, v))?),
        mp::GROUP_FEATURES => {
            let types = rd.u32()?;
            let capabilities = rd.u32()?;
            let mut max_groups = [0u32; 4];
            for v in &mut max_groups {
                *v = rd.u32()?;
            }
            let mut actions = [0u32; 4];
            for v in &mut actions {
                *v = rd.u32()?;
            }
            rd.end()?;
            MpReply::GroupFeatures(GroupFeatures {
                types,
                capabilities,
                max_groups,
                actions,
            })
        }
        mp::METER => MpReply::Meter(get_list(rd, get_meter_stats)?),
        mp::METER_CONFIG => MpReply::MeterConfig(get_list(rd, get_meter_config)?),
        mp::METER_FEATURES => {
            let f = MeterFeatures {
                max_meter: rd.u32()?,
                band_types: rd.u32()?,
                capabilities: rd.u32()?,
                max_bands: rd.u8()?,
                max_color: rd.u8()?,
            };
            rd.skip(2)?;
            rd.end()?;
            MpReply::MeterFeatures(f)
        }
        mp::TABLE_FEATURES => MpReply::TableFeatures(get_list(rd, get_table_features)?),
        mp::PORT_DESC => MpReply::PortDesc(get_list(rd, |r| port::get_port(r, v))?),
        mp::EXPERIMENTER => return Err(err(OfError::BAD_EXPERIMENTER, "experimenter multipart")),
        _ => return Err(err(OfError::BAD_MULTIPART, "unknown multipart type")),
    })
}

/// Append a multipart reply of type `typ` whose body is `items`, split
/// into as few messages as fit 65535 bytes; every message but the last
/// gets `OFPMPF_REPLY_MORE` on top of `flags`.
fn put_mp_list<T>(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    typ: u16,
    flags: u16,
    items: &[T],
    put: impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    put_split_reply(
        out,
        flags,
        |out| {
            let start = wire::begin(out, v, t::MULTIPART_REPLY, xid);
            out.u16(typ);
            out.u16(flags);
            out.zeros(4);
            start
        },
        items,
        put,
    )
}

/// An item writer that cannot fail.
fn infallible<T>(
    f: impl Fn(&mut Vec<u8>, &T),
) -> impl Fn(&mut Vec<u8>, &T) -> Result<(), EncodeError> {
    move |out, x| {
        f(out, x);
        Ok(())
    }
}

fn put_mp_reply(
    out: &mut Vec<u8>,
    (v, xid): (u8, u32),
    flags: u16,
    body: &MpReply,
) -> Result<(), EncodeError> {
    let single = |out: &mut Vec<u8>, typ: u16, f: &dyn Fn(&mut Vec<u8>)| {
        message(out, v, t::MULTIPART_REPLY, xid, |out| {
            out.u16(typ);
            out.u16(flags);
            out.zeros(4);
            f(out);
            Ok(())
        })
    };
    let vx = (v, xid);
    match body {
        MpReply::Desc(d) => single(out, mp::DESC, &|out| wire::put_desc(out, d)),
        MpReply::Flow(l) => put_mp_list(out, vx, mp::FLOW, flags, l, |out, f| {
            flow::put_flow_stats(out, f, v)
        }),
        MpReply::Aggregate {
            packet_count,
            byte_count,
            flow_count,
        } => single(out, mp::AGGREGATE, &|out| {
            flow::put_aggregate(out, *packet_count, *byte_count, *flow_count, v)
        }),
        MpReply::Table(l) => put_mp_list(
            out,
            vx,
            mp::TABLE,
            flags,
            l,
            |out: &mut Vec<u8>, s: &TableStats| {
                out.u8(s.table_id);
                out.zeros(3);
                out.u32(s.active_count);
                out.u64(s.lookup_count);
                out.u64(s.matched_count);
                Ok(())
            },
        ),
        MpReply::TableFeatures(l) => {
            put_mp_list(out, vx, mp::TABLE_FEATURES, flags, l, put_table_features)
        }
        MpReply::PortStats(l) => put_mp_list(
            out,
            vx,
            mp::PORT_STATS,
            flags,
            l,
            infallible(|out, s| port::put_port_stats(out, s, v)),
        ),
        MpReply::PortDesc(l) => put_mp_list(
            out,
            vx,
            mp::PORT_DESC,
            flags,
            l,
            infallible(|out, p| port::put_port(out, p, v)),
        ),
        MpReply::Queue => single(out, mp::QUEUE, &|_| {}),
        MpReply::Group(l) => put_mp_list(out, vx, mp::GROUP, flags, l, put_group_stats),
        MpReply::GroupDesc(l) => put_mp_list(out, vx, mp::GROUP_DESC, flags, l, |out, g| {
            group::put_group_desc(out, g, v)
        }),
        MpReply::GroupFeatures(g) => single(out, mp::GROUP_FEATURES, &|out| {
            out.u32(g.types);
            out.u32(g.capabilities);
            g.max_groups
                .iter()
                .chain(&g.actions)
                .for_each(|v| out.u32(*v));
        }),
        MpReply::Meter(l) => put_mp_list(out, vx, mp::METER, flags, l, put_meter_stats),
        MpReply::MeterConfig(l) => {
            put_mp_list(out, vx, mp::METER_CONFIG, flags, l, put_meter_config)
        }
        MpReply::MeterFeatures(f) => single(out, mp::METER_FEATURES, &|out| {
            out.u32(f.max_meter);
            out.u32(f.band_types);
            out.u32(f.capabilities);
            out.u8(f.max_bands);
            out.u8(f.max_color);
            out.zeros(2);
        }),
        MpReply::NxFlow(_) | MpReply::NxAggregate { .. } => {
            Err(EncodeError::Unsupported("Nicira flow statistics reply"))
        }
    }
}

// ---------------------------------------------------------------------------
// Entry points.

/// Decode one OpenFlow 1.3, 1.4 or 1.5 message (`buf` is the whole
/// message, header included, exactly `h.length` bytes; the version is
/// `h.version`).
///
/// # Errors
/// The [`OfError`] to send back.
pub fn decode(h: &Header, buf: &[u8]) -> Result<Msg, DecodeError> {
    let v = h.version;
    let body = buf.get(HEADER_LEN..).unwrap_or(&[]);
    let mut rd = Rd::new(body, OfError::BAD_LEN);
    let rd = &mut rd;
    let empty = |rd: &Rd<'_>, m: Msg| rd.end().map(|()| m);
    Ok(match h.typ {
        t::HELLO => header::decode_hello(buf)?,
        t::ERROR => {
            let typ = rd.u16()?;
            let code = rd.u16()?;
            let data = rd.rest();
            // 1.3 carries 1.4's bundle (and property, async) errors as ONF
            // experimenter errors.
            let onf = match data {
                [a, b, c, d, rest @ ..] if typ == OFPET_EXPERIMENTER => {
                    let exp = u32::from_be_bytes([*a, *b, *c, *d]);
                    if exp == NX_VENDOR_ID && crate::error::nx_error_to_10(code).is_some() {
                        Some((
                            OfError {
                                typ: crate::error::NX_ERROR_TYPE,
                                code,
                            },
                            rest,
                        ))
                    } else if v == OFP13_VERSION {
                        bundle::error_from_13(code, exp).map(|e| (e, rest))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let (err, data) = onf.unwrap_or((OfError { typ, code }, data));
            Msg::Error {
                err,
                data: data.to_vec(),
            }
        }
        t::ECHO_REQUEST => Msg::EchoRequest(rd.rest().to_vec()),
        t::ECHO_REPLY => Msg::EchoReply(rd.rest().to_vec()),
        t::EXPERIMENTER => decode_experimenter(h, rd)?,
        t::FEATURES_REQUEST => empty(rd, Msg::FeaturesRequest)?,
        t::FEATURES_REPLY => {
            let f = SwitchFeatures {
                datapath_id: rd.u64()?,
                n_buffers: rd.u32()?,
                n_tables: rd.u8()?,
                auxiliary_id: rd.u8()?,
                capabilities: {
                    rd.skip(2)?;
                    rd.u32()?
                },
                ports: Vec::new(),
            };
            rd.skip(4)?;
            rd.end()?;
            Msg::FeaturesReply(f)
        }
        t::GET_CONFIG_REQUEST => empty(rd, Msg::GetConfigRequest)?,
        t::GET_CONFIG_REPLY | t::SET_CONFIG => {
            let c = SwitchConfig {
                flags: rd.u16()?,
                miss_send_len: rd.u16()?,
            };
            rd.end()?;
            if h.typ == t::SET_CONFIG {
                Msg::SetConfig(c)
            } else {
                Msg::GetConfigReply(c)
            }
        }
        t::PACKET_IN => Msg::PacketIn(get_packet_in(rd)?),
        t::FLOW_REMOVED => Msg::FlowRemoved(flow::get_flow_removed(rd, v)?),
        t::PORT_STATUS => {
            let reason = rd.u8()?;
            rd.skip(7)?;
            let desc = port::get_port(rd, v)?;
            rd.end()?;
            Msg::PortStatus(PortStatus { reason, desc })
        }
        t::PACKET_OUT => Msg::PacketOut(get_packet_out(rd, v)?),
        t::FLOW_MOD => Msg::FlowMod(get_flow_mod(rd, v)?),
        t::GROUP_MOD => Msg::GroupMod(group::get_group_mod(rd, v)?),
        t::PORT_MOD => Msg::PortMod(port::get_port_mod(rd, v)?),
        t::TABLE_MOD => {
            let table_id = rd.u8()?;
            rd.skip(3)?;
            let config = rd.u32()?;
            if v >= OFP14_VERSION {
                port::check_table_mod_props(rd)?;
            }
            rd.end()?;
            Msg::TableMod { table_id, config }
        }
        t::MULTIPART_REQUEST | t::MULTIPART_REPLY => {
            let typ = rd.u16()?;
            let flags = rd.u16()?;
            rd.skip(4)?;
            if h.typ == t::MULTIPART_REQUEST {
                Msg::MultipartRequest {
                    flags,
                    body: get_mp_request(typ, rd, v)?,
                }
            } else {
                Msg::MultipartReply {
                    flags,
                    body: get_mp_reply(typ, rd, v)?,
                }
            }
        }
        t::BARRIER_REQUEST => empty(rd, Msg::BarrierRequest)?,
        t::BARRIER_REPLY => empty(rd, Msg::BarrierReply)?,
        t::ROLE_REQUEST => Msg::RoleRequest(get_role(rd)?),
        t::ROLE_REPLY => Msg::RoleReply(get_role(rd)?),
        t::GET_ASYNC_REQUEST => empty(rd, Msg::GetAsyncRequest)?,
        t::GET_ASYNC_REPLY => Msg::GetAsyncReply(async_config::get_config(rd, v)?),
        t::SET_ASYNC if v >= OFP14_VERSION => Msg::SetAsyncProps(async_config::get_props(rd)?),
        t::SET_ASYNC => Msg::SetAsync(async_config::get_config(rd, v)?),
        t::METER_MOD => Msg::MeterMod(get_meter_mod(rd)?),
        bundle::OFPT_BUNDLE_CONTROL if v >= OFP14_VERSION => {
            Msg::BundleControl(bundle::get_ctrl(rd, v)?)
        }
        bundle::OFPT_BUNDLE_ADD_MESSAGE if v >= OFP14_VERSION => {
            Msg::BundleAdd(bundle::get_add(rd, h, HEADER_LEN)?)
        }
        _ => return Err(err(OfError::BAD_TYPE, "unsupported message type")),
    })
}

/// `struct nx_zone_id` (OVS `nicira-ext.h`): 6 reserved bytes, which must
/// be zero (OVS: `NXBRC_MUST_BE_ZERO`; xennet's codec has no Nicira
/// vendor errors and answers `OFPBRC_EPERM`), then the zone.
pub(crate) fn get_nx_zone_id(rd: &mut Rd<'_>) -> Result<u16, DecodeError> {
    for _ in 0..6 {
        if rd.u8()? != 0 {
            return Err(err(
                OfError::BAD_REQUEST_EPERM,
                "nonzero reserved bytes in nx_zone_id (NXBRC_MUST_BE_ZERO)",
            ));
        }
    }
    rd.u16()
}

fn decode_experimenter(h: &Header, rd: &mut Rd<'_>) -> Result<Msg, DecodeError> {
    let experimenter = rd.u32()?;
    let exp_type = rd.u32()?;
    if experimenter == bundle::ONF_EXPERIMENTER_ID {
        // Open vSwitch knows these in 1.3 only (`ONFT 1.3 (2300)`); other
        // ONF types, or these in 1.4+, are `OFPBRC_BAD_EXP_TYPE` there.
        return match exp_type {
            bundle::ONFT_BUNDLE_CONTROL if h.version == OFP13_VERSION => {
                Ok(Msg::BundleControl(bundle::get_ctrl(rd, h.version)?))
            }
            bundle::ONFT_BUNDLE_ADD_MESSAGE if h.version == OFP13_VERSION => {
                Ok(Msg::BundleAdd(bundle::get_add(rd, h, HEADER_LEN + 8)?))
            }
            _ => Err(err(OfError::BAD_EXP_TYPE, "unsupported ONF message")),
        };
    }
    if experimenter != NX_VENDOR_ID {
        return Err(err(OfError::BAD_EXPERIMENTER, "unknown experimenter"));
    }
    let m = match exp_type {
        NXT_SET_PACKET_IN_FORMAT => Msg::NxSetPacketInFormat(rd.u32()?),
        crate::packet_in2::NXT_PACKET_IN2 => {
            return Ok(Msg::NxPacketIn2(crate::packet_in2::get_body(
                rd.rest(),
                h.version,
            )?));
        }
        crate::packet_in2::NXT_RESUME => {
            return Ok(Msg::NxResume(crate::packet_in2::get_resume(
                rd.rest(),
                h.version,
            )?));
        }
        NXT_SET_CONTROLLER_ID => {
            rd.skip(6)?;
            Msg::NxSetControllerId(rd.u16()?)
        }
        crate::nicira::NXT_CT_FLUSH_ZONE => Msg::NxCtFlushZone(get_nx_zone_id(rd)?),
        NXT_FLOW_MOD_TABLE_ID => {
            let set = rd.u8()?;
            rd.skip(7)?;
            Msg::NxFlowModTableId(set != 0)
        }
        crate::tlv::NXT_TLV_TABLE_MOD => Msg::NxTlvTableMod(crate::tlv::get_table_mod(rd)?),
        crate::tlv::NXT_TLV_TABLE_REQUEST => Msg::NxTlvTableRequest,
        crate::tlv::NXT_TLV_TABLE_REPLY => Msg::NxTlvTableReply(crate::tlv::get_table_reply(rd)?),
        _ => return Err(err(OfError::BAD_EXP_TYPE, "unsupported Nicira message")),
    };
    rd.end()?;
    Ok(m)
}

/// Append a bundle message (`add`: add-message, else control) in version
/// `v`: `OFPT_BUNDLE_*` in 1.4+, the ONF experimenter message in 1.3.
fn bundle_msg(
    out: &mut Vec<u8>,
    v: u8,
    xid: u32,
    add: bool,
    body: &dyn Fn(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    if v >= OFP14_VERSION {
        let typ = if add {
            bundle::OFPT_BUNDLE_ADD_MESSAGE
        } else {
            bundle::OFPT_BUNDLE_CONTROL
        };
        return message(out, v, typ, xid, body);
    }
    message(out, v, t::EXPERIMENTER, xid, |out| {
        out.u32(bundle::ONF_EXPERIMENTER_ID);
        out.u32(if add {
            bundle::ONFT_BUNDLE_ADD_MESSAGE
        } else {
            bundle::ONFT_BUNDLE_CONTROL
        });
        body(out)
    })
}

/// Encode one message as OpenFlow 1.3 (several messages for a multipart
/// reply beyond 64 KiB). On error nothing is appended.
///
/// # Errors
/// As [`encode_version`].
pub fn encode(msg: &Msg, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_version(msg, OFP13_VERSION, xid, out)
}

/// Encode one message as OpenFlow `v` (1.3, 1.4 or 1.5; several messages
/// for a multipart reply beyond 64 KiB). On error nothing is appended.
///
/// # Errors
/// When the message has no form in `v` (`NXT_SET_FLOW_FORMAT`, Nicira flow
/// statistics, 1.4 async properties in 1.3), `v` is not 1.3..=1.5, or it
/// does not fit in 65535 bytes.
pub fn encode_version(msg: &Msg, v: u8, xid: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if !(OFP13_VERSION..=OFP15_VERSION).contains(&v) {
        return Err(EncodeError::Version(v));
    }
    let m = |out: &mut Vec<u8>, typ: u8, f: &dyn Fn(&mut Vec<u8>) -> Result<(), EncodeError>| {
        message(out, v, typ, xid, f)
    };
    let nothing = |_: &mut Vec<u8>| Ok(());
    let nx = |out: &mut Vec<u8>, subtype: u32, f: &dyn Fn(&mut Vec<u8>)| {
        message(out, v, t::EXPERIMENTER, xid, |out| {
            out.u32(NX_VENDOR_ID);
            out.u32(subtype);
            f(out);
            Ok(())
        })
    };
    match msg {
        Msg::Hello { versions } => {
            header::encode_hello(v, *versions, xid, out);
            Ok(())
        }
        Msg::Error { err, data } => m(out, t::ERROR, &|out| {
            if err.typ == crate::error::NX_ERROR_TYPE {
                out.u16(OFPET_EXPERIMENTER);
                out.u16(err.code);
                out.u32(NX_VENDOR_ID);
            } else if v == OFP13_VERSION {
                let (typ, code, experimenter) = bundle::error_to_13(*err);
                out.u16(typ);
                out.u16(code);
                if let Some(e) = experimenter {
                    out.u32(e);
                }
            } else {
                out.u16(err.typ);
                out.u16(err.code);
            }
            out.extend_from_slice(data);
            Ok(())
        }),
        Msg::EchoRequest(d) => m(out, t::ECHO_REQUEST, &|out| {
            out.extend_from_slice(d);
            Ok(())
        }),
        Msg::EchoReply(d) => m(out, t::ECHO_REPLY, &|out| {
            out.extend_from_slice(d);
            Ok(())
        }),
        Msg::FeaturesRequest => m(out, t::FEATURES_REQUEST, &nothing),
        Msg::FeaturesReply(f) => m(out, t::FEATURES_REPLY, &|out| {
            out.u64(f.datapath_id);
            out.u32(f.n_buffers);
            out.u8(f.n_tables);
            out.u8(f.auxiliary_id);
            out.zeros(2);
            out.u32(f.capabilities);
            out.zeros(4);
            Ok(())
        }),
        Msg::GetConfigRequest => m(out, t::GET_CONFIG_REQUEST, &nothing),
        Msg::GetConfigReply(c) | Msg::SetConfig(c) => {
            let typ = if matches!(msg, Msg::SetConfig(_)) {
                t::SET_CONFIG
            } else {
                t::GET_CONFIG_REPLY
            };
            m(out, typ, &|out| {
                out.u16(c.flags);
                out.u16(c.miss_send_len);
                Ok(())
            })
        }
        Msg::PacketIn(p) => m(out, t::PACKET_IN, &|out| {
            put_packet_in(out, p);
            Ok(())
        }),
        Msg::FlowRemoved(f) => m(out, t::FLOW_REMOVED, &|out| {
            flow::put_flow_removed(out, f, v);
            Ok(())
        }),
        Msg::PortStatus(p) => m(out, t::PORT_STATUS, &|out| {
            out.u8(p.reason);
            out.zeros(7);
            port::put_port(out, &p.desc, v);
            Ok(())
        }),
        Msg::PacketOut(p) => m(out, t::PACKET_OUT, &|out| put_packet_out(out, p, v)),
        Msg::FlowMod(f) => m(out, t::FLOW_MOD, &|out| put_flow_mod(out, f, v)),
        Msg::GroupMod(g) => m(out, t::GROUP_MOD, &|out| group::put_group_mod(out, g, v)),
        Msg::PortMod(p) => m(out, t::PORT_MOD, &|out| {
            port::put_port_mod(out, p, v);
            Ok(())
        }),
        Msg::TableMod { table_id, config } => m(out, t::TABLE_MOD, &|out| {
            out.u8(*table_id);
            out.zeros(3);
            out.u32(*config);
            Ok(())
        }),
        Msg::MultipartRequest { flags, body } => m(out, t::MULTIPART_REQUEST, &|out| {
            put_mp_request(out, *flags, body, v)
        }),
        Msg::MultipartReply { flags, body } => put_mp_reply(out, (v, xid), *flags, body),
        Msg::BarrierRequest => m(out, t::BARRIER_REQUEST, &nothing),
        Msg::BarrierReply => m(out, t::BARRIER_REPLY, &nothing),
        Msg::RoleRequest(r) => m(out, t::ROLE_REQUEST, &|out| {
            put_role(out, r);
            Ok(())
        }),
        Msg::RoleReply(r) => m(out, t::ROLE_REPLY, &|out| {
            put_role(out, r);
            Ok(())
        }),
        Msg::GetAsyncRequest => m(out, t::GET_ASYNC_REQUEST, &nothing),
        Msg::GetAsyncReply(c) => m(out, t::GET_ASYNC_REPLY, &|out| {
            async_config::put_config(out, c, v);
            Ok(())
        }),
        Msg::SetAsync(c) => m(out, t::SET_ASYNC, &|out| {
            async_config::put_config(out, c, v);
            Ok(())
        }),
        Msg::SetAsyncProps(_) if v < OFP14_VERSION => {
            Err(EncodeError::Unsupported("async-config properties"))
        }
        Msg::SetAsyncProps(p) => m(out, t::SET_ASYNC, &|out| {
            async_config::put_props(out, p);
            Ok(())
        }),
        Msg::MeterMod(mm) => m(out, t::METER_MOD, &|out| {
            put_meter_mod(out, mm);
            Ok(())
        }),
        Msg::NxSetFlowFormat(_) => Err(EncodeError::Unsupported("NXT_SET_FLOW_FORMAT")),
        Msg::NxSetPacketInFormat(f) => nx(out, NXT_SET_PACKET_IN_FORMAT, &|out| out.u32(*f)),
        Msg::NxPacketIn2(p) | Msg::NxResume(p) => {
            nx(out, crate::packet_in2::subtype(msg), &|out| {
                crate::packet_in2::put_body(p, v, out);
            })
        }
        Msg::NxFlowModTableId(set) => nx(out, NXT_FLOW_MOD_TABLE_ID, &|out| {
            out.u8(u8::from(*set));
            out.zeros(7);
        }),
        Msg::NxSetControllerId(id) => nx(out, NXT_SET_CONTROLLER_ID, &|out| {
            out.zeros(6);
            out.u16(*id);
        }),
        Msg::NxTlvTableMod(tm) => nx(out, crate::tlv::NXT_TLV_TABLE_MOD, &|out| {
            crate::tlv::put_table_mod(out, tm);
        }),
        Msg::NxTlvTableRequest => nx(out, crate::tlv::NXT_TLV_TABLE_REQUEST, &|_| {}),
        Msg::NxTlvTableReply(r) => nx(out, crate::tlv::NXT_TLV_TABLE_REPLY, &|out| {
            crate::tlv::put_table_reply(out, r);
        }),
        Msg::NxCtFlushZone(zone) => nx(out, crate::nicira::NXT_CT_FLUSH_ZONE, &|out| {
            out.zeros(6);
            out.u16(*zone);
        }),
        Msg::BundleControl(c) => bundle_msg(out, v, xid, false, &|out| {
            bundle::put_ctrl(out, c);
            Ok(())
        }),
        Msg::BundleAdd(a) => bundle_msg(out, v, xid, true, &|out| bundle::put_add(out, a, v, xid)),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_of14_of15;
