//! The instruction family (Open vSwitch `lib/ofp-actions.c`,
//! `ofpacts_pull_openflow11_instructions` and the OpenFlow 1.0 encodings
//! of instructions) for OpenFlow 1.0, 1.3, 1.4 and 1.5.
//!
//! - OpenFlow 1.0 has no instructions: a flow's actions are the
//!   apply-actions, Nicira `NXAST_WRITE_METADATA` is write-metadata, and
//!   a flow dump writes goto-table as `NXAST_RESUBMIT_TABLE`
//!   (`encode_instructions_as_actions`), as Open vSwitch does.
//! - OpenFlow 1.3 to 1.5 (1.3 §7.2.4): `ofp_instruction_*`; in 1.5 the
//!   meter is an action (`OFPAT_METER`, first in apply-actions).

use crate::actions::{
    bad_len, begin_nx_action, check_exact_ofp10_actions, decode_actions_ofp10,
    decode_actions_version, encode_actions_ofp10, finish_action, put_actions_version,
    OFPAT10_VENDOR, OFPP10_IN_PORT,
};
use crate::error::{DecodeError, OfError};
use crate::header::OFP15_VERSION;
use crate::model::{note_vlan_presence, Action, EncodeError, Instructions, Match};
use crate::nicira::*;
use crate::ofp_match::match_proto;
use crate::wire::{be16, be32, end_record, err, unsupported, Put, Rd};
use xennet_datapath::flow::Field;

// ---------------------------------------------------------------------------
// OpenFlow 1.0: instructions as actions.

/// Decode the actions of a 1.0 flow (flow-mod, flow statistics) into
/// instructions: the actions are the apply-actions, except a Nicira
/// `NXAST_WRITE_METADATA` (32 bytes: 6 zero bytes, value, mask), which is
/// the write-metadata instruction, as in OVS (`decode_NXAST_RAW_WRITE_METADATA`).
/// As OVS's `ofpacts_verify` requires the 1.1 instruction order, nothing
/// may follow it. `m` is the flow's match: its IP protocol names the
/// field of `SET_TP_SRC/DST`, its tag sets the 1.0 VLAN sets'
/// `flow_has_vlan` ([`note_vlan_presence`]).
///
/// # Errors
/// As [`decode_actions_ofp10`]; `BAD_ACTION/BAD_LEN` for a write-metadata of
/// another length, `BAD_ACTION/BAD_ARGUMENT` for nonzero padding,
/// `BAD_ACTION/UNSUPPORTED_ORDER` for an action after it.
pub(crate) fn decode_instructions_ofp10(
    buf: &[u8],
    m: &Match,
) -> Result<Instructions, DecodeError> {
    let proto = match_proto(m);
    // OVS `ofpact_check__`: whether the flow has a tag where a 1.0 VLAN
    // set runs (`flow_has_vlan`).
    let tagged = m.key.vlan_tci() & m.mask.get(Field::VlanTci) as u16 & 0x1000 != 0;
    let apply = |b: &[u8]| -> Result<Instructions, DecodeError> {
        let mut acts = decode_actions_ofp10(b, proto)?;
        note_vlan_presence(&mut acts, tagged);
        Ok(Instructions::apply(acts))
    };
    let mut at = 0;
    while at + 10 <= buf.len() {
        let len = usize::from(be16(buf, at + 2));
        let is_write_metadata = be16(buf, at) == OFPAT10_VENDOR
            && be32(buf, at + 4) == NX_VENDOR_ID
            && be16(buf, at + 8) == NXAST_WRITE_METADATA;
        if is_write_metadata {
            let a = buf
                .get(at..at + 32)
                .filter(|_| len == 32)
                .ok_or_else(bad_len)?;
            if a[10..16] != [0; 6] {
                return Err(err(
                    OfError::BAD_ACTION_ARGUMENT,
                    "nonzero write_metadata padding",
                ));
            }
            if buf.len() > at + 32 {
                return Err(err(
                    OfError::UNSUPPORTED_ORDER,
                    "action after write_metadata",
                ));
            }
            let value = u64::from_be_bytes(a[16..24].try_into().unwrap_or_default());
            let mask = u64::from_be_bytes(a[24..32].try_into().unwrap_or_default());
            let mut ins = apply(&buf[..at])?;
            ins.write_metadata = Some((value, mask));
            return Ok(ins);
        }
        if len < 8 {
            break;
        }
        at += len;
    }
    apply(buf)
}

/// Check that a flow-mod's instructions have an exact 1.0 form: apply-actions
/// and write-metadata (`NXAST_WRITE_METADATA`) only. (A flow dump writes
/// the others as OVS does, see [`encode_instructions_as_actions`]; a
/// flow-mod must not change meaning.)
pub(crate) fn check_flow_mod_instructions(ins: &Instructions) -> Result<(), EncodeError> {
    if ins.meter.is_some() || ins.clear || ins.write.is_some() || ins.goto_table.is_some() {
        return Err(unsupported(
            "instructions other than apply-actions and write-metadata (OpenFlow 1.0)",
        ));
    }
    check_exact_ofp10_actions(ins.apply.as_deref().unwrap_or(&[]))
}

/// The OpenFlow 1.0 action list of a flow's `ins` in a flow statistics
/// reply, as Open vSwitch 3.1 writes a flow with 1.1+ instructions for
/// OpenFlow 1.0 (`lib/ofp-actions.c`, `encode_<INSTRUCTION>` for
/// `OFP10_VERSION`): the apply-actions, then write-metadata as
/// `NXAST_WRITE_METADATA` (32 bytes: value, mask), then goto-table as
/// `NXAST_RESUBMIT_TABLE` to that table with in_port `OFPP_IN_PORT`
/// (`ovs-ofctl` shows `resubmit(,N)`). Meter, clear-actions and
/// write-actions have no 1.0 form and are left out, as OVS leaves them.
///
/// # Errors
/// As [`encode_actions_ofp10`] for the apply-actions.
pub(crate) fn encode_instructions_as_actions(
    ins: &Instructions,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_actions_ofp10(ins.apply.as_deref().unwrap_or(&[]), out)?;
    if let Some((value, mask)) = ins.write_metadata {
        let start = begin_nx_action(out, NXAST_WRITE_METADATA);
        out.zeros(6);
        out.u64(value);
        out.u64(mask);
        finish_action(out, start)?;
    }
    if let Some(table) = ins.goto_table {
        let start = begin_nx_action(out, NXAST_RESUBMIT_TABLE);
        out.u16(OFPP10_IN_PORT);
        out.u8(table);
        out.zeros(3);
        finish_action(out, start)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3 to 1.5 instructions (1.3 §7.2.4).

pub(crate) mod it {
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
