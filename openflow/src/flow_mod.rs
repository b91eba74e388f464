//! The flow-mod family (Open vSwitch `lib/ofp-flow.c`,
//! `ofputil_decode_flow_mod` / `ofputil_encode_flow_mod`) for OpenFlow
//! 1.0, 1.3, 1.4 and 1.5: message bodies after the header (and after the
//! `nicira_header` for `NXT_FLOW_MOD`).
//!
//! - OpenFlow 1.0 `ofp_flow_mod` (`ofp_match`, 1.0 actions) and Nicira
//!   `nx_flow_mod` (NXM match with `NXM_NX_COOKIE(_W)`): the table id rides
//!   in the high byte of `command` ([`DecodeOptions`]); an add always
//!   resets the counters; `OFPFF_EMERG` is refused (`TABLE_FULL`), other
//!   unknown flags `BAD_FLAGS`; an exact-match `ofp_flow_mod` has the
//!   highest priority.
//! - OpenFlow 1.3 to 1.5 `ofp_flow_mod` (1.3 §7.3.4.1): in 1.4+ the two
//!   bytes after `flags` are `importance`, which xennet (no eviction)
//!   ignores.

use crate::error::{DecodeError, OfError};
use crate::instructions::{
    check_flow_mod_instructions, decode_instructions, decode_instructions_ofp10,
    encode_instructions_as_actions, put_instructions,
};
use crate::model::{flow_flags, EncodeError, FlowMod, FlowModCommand, OFPG_ANY, OFPTT_ALL};
use crate::ofp_match::{
    decode_nx_match_cookie, encode_match, encode_nx_match_cookie, get_match, match_from_ofp10,
    put_match, take_nx_match, MATCH_LEN,
};
use crate::port::{port10, port_from_ofp10};
use crate::v10::DecodeOptions;
use crate::wire::{err, unsupported, Put, Rd};

/// `ofp_flow_mod_command` (the low byte of the 1.0 `command`).
///
/// # Errors
/// `FLOW_MOD_FAILED/BAD_COMMAND` for an unknown command.
pub(crate) fn decode_command(c: u8) -> Result<FlowModCommand, DecodeError> {
    FlowModCommand::from_wire(c)
        .ok_or_else(|| err(OfError::BAD_COMMAND, "unknown flow-mod command"))
}

// ---------------------------------------------------------------------------
// OpenFlow 1.0 `ofp_flow_mod` and Nicira `nx_flow_mod`.

/// The 1.0 `command`: the command in the low byte, the table id in the
/// high byte (see [`DecodeOptions::flow_mod_table_id`]).
pub(crate) fn flow_mod_command(
    raw: u16,
    opts: &DecodeOptions,
) -> Result<(FlowModCommand, u8), DecodeError> {
    let command = decode_command((raw & 0xff) as u8)?;
    let high = (raw >> 8) as u8;
    let table = if high != 0 || opts.flow_mod_table_id || command == FlowModCommand::Add {
        high
    } else {
        OFPTT_ALL
    };
    Ok((command, table))
}

/// The wire command: the table id in the high byte (0 for `OFPTT_ALL`,
/// which is also what a modify/delete of table 0 becomes: only a peer
/// with `NXT_FLOW_MOD_TABLE_ID` on tells them apart).
pub(crate) fn command_with_table(fm: &FlowMod) -> u16 {
    let table = if fm.table_id == OFPTT_ALL {
        0
    } else {
        fm.table_id
    };
    (u16::from(table) << 8) | u16::from(fm.command.to_wire())
}

/// 1.0 `ofp_flow_mod_flags`: SEND_FLOW_REM, CHECK_OVERLAP, EMERG.
pub(crate) fn flow_mod_flags(raw: u16, command: FlowModCommand) -> Result<u16, DecodeError> {
    if raw & 4 != 0 {
        // OFPFF_EMERG: the emergency flow cache is not supported (OVS
        // answers OFPFMFC_TABLE_FULL, or the 1.0-only BAD_EMERG_TIMEOUT
        // when a timeout is set).
        return Err(err(OfError::TABLE_FULL, "emergency flows not supported"));
    }
    if raw & !3 != 0 {
        return Err(err(OfError::BAD_FLAGS, "unknown flow-mod flags"));
    }
    // In 1.0 an add always resets the counters (OVS).
    let reset = if command == FlowModCommand::Add {
        flow_flags::RESET_COUNTS
    } else {
        0
    };
    Ok(raw | reset)
}

pub(crate) fn flow_mod_flags_to_wire(flags: u16) -> u16 {
    flags & (flow_flags::SEND_FLOW_REM | flow_flags::CHECK_OVERLAP)
}

/// `ofp_flow_mod` body after the header.
pub(crate) fn decode_flow_mod(r: &mut Rd, opts: &DecodeOptions) -> Result<FlowMod, DecodeError> {
    let (matcher, wc) = match_from_ofp10(r.take(MATCH_LEN)?, true);
    let cookie = r.u64()?;
    let (command, table_id) = flow_mod_command(r.u16()?, opts)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = port_from_ofp10(r.u16()?);
    let flags = flow_mod_flags(r.u16()?, command)?;
    let acts = r.rest();
    let instructions = decode_instructions_ofp10(acts, &matcher)?;
    Ok(FlowMod {
        cookie,
        cookie_mask: 0,
        table_id,
        command,
        idle_timeout,
        hard_timeout,
        // OpenFlow 1.0: exact-match flows have the highest priority.
        priority: if wc == 0 { 0xffff } else { priority },
        buffer_id,
        out_port,
        out_group: OFPG_ANY,
        flags,
        matcher,
        instructions,
    })
}

/// Append an `ofp_flow_mod` body.
///
/// # Errors
/// `Unsupported` for a cookie mask, an out group, a match, port or
/// instructions with no 1.0 form.
pub(crate) fn encode_flow_mod(fm: &FlowMod, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if fm.cookie_mask != 0 {
        return Err(unsupported("cookie mask in an OpenFlow 1.0 flow-mod"));
    }
    if fm.out_group != OFPG_ANY {
        return Err(unsupported("out_group in an OpenFlow 1.0 flow-mod"));
    }
    check_flow_mod_instructions(&fm.instructions)?;
    encode_match(&fm.matcher, out)?;
    out.u64(fm.cookie);
    out.u16(command_with_table(fm));
    out.u16(fm.idle_timeout);
    out.u16(fm.hard_timeout);
    out.u16(fm.priority);
    out.u32(fm.buffer_id);
    out.u16(port10(fm.out_port)?);
    out.u16(flow_mod_flags_to_wire(fm.flags));
    encode_instructions_as_actions(&fm.instructions, out)
}

/// `nx_flow_mod` body after the `nicira_header`. The cookie of a
/// modify/delete comes from `NXM_NX_COOKIE(_W)` when the match has one
/// (else the `cookie` field, with mask 0).
pub(crate) fn decode_nx_flow_mod(r: &mut Rd, opts: &DecodeOptions) -> Result<FlowMod, DecodeError> {
    let cookie = r.u64()?;
    let (command, table_id) = flow_mod_command(r.u16()?, opts)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = port_from_ofp10(r.u16()?);
    let flags = flow_mod_flags(r.u16()?, command)?;
    let match_len = usize::from(r.u16()?);
    r.skip(6)?;
    let (matcher, mcookie, mmask) = decode_nx_match_cookie(take_nx_match(r, match_len)?)?;
    if command == FlowModCommand::Add && mmask != 0 {
        // OVS: NXBRC_NXM_INVALID ("flow additions may only set a new
        // cookie"), which has no 1.3 equivalent.
        return Err(err(OfError::BAD_FIELD, "cookie match in a flow add"));
    }
    let instructions = decode_instructions_ofp10(r.rest(), &matcher)?;
    let (cookie, cookie_mask) = if mmask != 0 {
        (mcookie, mmask)
    } else {
        (cookie, 0)
    };
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
        out_group: OFPG_ANY,
        flags,
        matcher,
        instructions,
    })
}

/// Append an `nx_flow_mod` body (after the `nicira_header`).
///
/// # Errors
/// `Unsupported` for an out group, a port or instructions with no 1.0
/// form.
pub(crate) fn encode_nx_flow_mod(fm: &FlowMod, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if fm.out_group != OFPG_ANY {
        return Err(unsupported("out_group in an OpenFlow 1.0 flow-mod"));
    }
    check_flow_mod_instructions(&fm.instructions)?;
    // With a cookie match, the header cookie is the new cookie: none
    // (all ones) for a modify, 0 for a delete, as `ovs-ofctl` sends.
    let header_cookie = match fm.command {
        _ if fm.cookie_mask == 0 => fm.cookie,
        FlowModCommand::Add => fm.cookie,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => u64::MAX,
        FlowModCommand::Delete | FlowModCommand::DeleteStrict => 0,
    };
    out.u64(header_cookie);
    out.u16(command_with_table(fm));
    out.u16(fm.idle_timeout);
    out.u16(fm.hard_timeout);
    out.u16(fm.priority);
    out.u32(fm.buffer_id);
    out.u16(port10(fm.out_port)?);
    out.u16(flow_mod_flags_to_wire(fm.flags));
    let len_at = out.len();
    out.u16(0);
    out.zeros(6);
    let cookie_mask = if fm.command == FlowModCommand::Add {
        0
    } else {
        fm.cookie_mask
    };
    let ml = encode_nx_match_cookie(&fm.matcher, fm.cookie, cookie_mask, out)?;
    out.patch16(len_at, ml);
    encode_instructions_as_actions(&fm.instructions, out)
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3 to 1.5 `ofp_flow_mod` (1.3 §7.3.4.1).

/// `ofp_flow_mod` after the header (§7.3.4.1). In 1.4+ the two bytes
/// after `flags` are `importance`, which xennet (no eviction) ignores.
pub(crate) fn get_flow_mod(rd: &mut Rd<'_>, version: u8) -> Result<FlowMod, DecodeError> {
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
    let command = decode_command(command)?;
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

pub(crate) fn put_flow_mod(out: &mut Vec<u8>, f: &FlowMod, version: u8) -> Result<(), EncodeError> {
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
