//! The flow family (Open vSwitch `lib/ofp-flow.c`, but for flow-mods,
//! which are [`crate::flow_mod`]'s) for OpenFlow 1.0, 1.3, 1.4 and 1.5:
//! flow statistics requests and entries, aggregate statistics and
//! flow-removed, with the version as a parameter.
//!
//! - OpenFlow 1.0: `ofp_flow_removed` (no hard timeout or table id),
//!   `ofp_flow_stats_request`, `ofp_flow_stats` (no flags), with
//!   `ofp_match` and 1.0 actions; their Nicira forms `nx_flow_removed`,
//!   `nx_flow_stats_request` (cookie filter in the NXM match) and
//!   `nx_flow_stats` (with idle and hard ages), with NXM matches.
//! - Flow statistics requests: 1.3 to 1.5 `ofp_flow_stats_request`
//!   (§7.3.5.2), also the aggregate request.
//! - Flow statistics: 1.3/1.4 `ofp_flow_stats` (§7.3.5.2; 1.4 puts
//!   `importance` where 1.3 had padding, xennet sends 0) — 48 fixed bytes,
//!   `ofp_match`, instructions. 1.5 `ofp_flow_desc` (1.5.1 §7.3.5.2) —
//!   24 fixed bytes (`length`, `table_id`, `priority`, timeouts, `flags`,
//!   `importance`, `cookie`), `ofp_match`, `ofp_stats`, instructions.
//! - Aggregate: 1.3/1.4 fixed 24 bytes; 1.5 an `ofp_stats` holding
//!   `FLOW_COUNT`, `PACKET_COUNT`, `BYTE_COUNT`.
//! - Flow removed: 1.3/1.4 `ofp_flow_removed` (§7.4.2); 1.5
//!   (1.5.1 §7.4.2) — `table_id`, `reason`, `priority`, timeouts,
//!   `cookie`, `ofp_match`, `ofp_stats`.
//!
//! `ofp_stats` (OXS, 1.5.1 §7.2.4): `reserved` (u16), `length` (u16,
//! unpadded, from `reserved`), then TLVs with a 32-bit header (class
//! `0x8002`, 7-bit field shifted left by 9, 8-bit length), padded to 8.
//! xennet writes them in Open vSwitch's order: duration, idle time,
//! packet count, byte count, flow count.

use crate::error::{DecodeError, OfError};
use crate::header::OFP15_VERSION;
use crate::instructions::{decode_instructions, put_instructions};
use crate::instructions::{decode_instructions_ofp10, encode_instructions_as_actions};
use crate::model::{EncodeError, FlowRemoved, FlowStats, FlowStatsRequest, OFPG_ANY, OFPTT_ALL};
use crate::ofp_match::{
    decode_nx_match_cookie, encode_match, encode_nx_match_cookie, get_match, match_from_ofp10,
    put_match, take_nx_match, MATCH_LEN,
};
use crate::oxm;
use crate::port::{port10, port_from_ofp10};
use crate::wire::{self, end_record, err, unsupported, Put, Rd};

/// `OFPXSC_OPENFLOW_BASIC`.
const OXS_CLASS: u32 = 0x8002;
/// OXS fields (`oxs_ofb_stat_fields`).
mod xst {
    pub const DURATION: u32 = 0;
    pub const IDLE_TIME: u32 = 1;
    pub const FLOW_COUNT: u32 = 3;
    pub const PACKET_COUNT: u32 = 4;
    pub const BYTE_COUNT: u32 = 5;
}

const fn oxs_header(field: u32, len: u32) -> u32 {
    (OXS_CLASS << 16) | (field << 9) | len
}

/// The statistics an `ofp_stats` may carry; `None` = absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Oxs {
    /// `(sec, nsec)`.
    pub duration: Option<(u32, u32)>,
    /// Seconds idle.
    pub idle_sec: Option<u32>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub flows: Option<u32>,
}

/// Decode an `ofp_stats` (with its padding). Unknown stats are skipped.
///
/// # Errors
/// `BAD_MATCH/BAD_LEN` (what Open vSwitch answers) for bad lengths.
pub(crate) fn get_oxs(rd: &mut Rd<'_>) -> Result<Oxs, DecodeError> {
    let bad = |_| err(OfError::BAD_MATCH_LEN, "bad ofp_stats length");
    let len = rd.peek_len(2).map_err(bad)?;
    if len < 4 {
        return Err(err(OfError::BAD_MATCH_LEN, "bad ofp_stats length"));
    }
    let all = rd.take(len.next_multiple_of(8)).map_err(bad)?;
    let mut r = Rd::new(&all[4..len], OfError::BAD_MATCH_LEN);
    let mut s = Oxs::default();
    while !r.is_empty() {
        let h = r.u32()?;
        let class = h >> 16;
        let plen = (h & 0xff) as usize;
        let mut exp = 0;
        if class == 0xffff {
            // An experimenter id is part of the payload length.
            exp = 4;
        }
        let body = r.take(plen)?;
        let mut b = Rd::new(body.get(exp..).unwrap_or(&[]), OfError::BAD_MATCH_LEN);
        if class != OXS_CLASS {
            continue;
        }
        match ((h >> 9) & 0x7f, plen) {
            (xst::DURATION, 8) => s.duration = Some((b.u32()?, b.u32()?)),
            (xst::IDLE_TIME, 8) => s.idle_sec = Some(b.u32()?),
            (xst::FLOW_COUNT, 4) => s.flows = Some(b.u32()?),
            (xst::PACKET_COUNT, 8) => s.packets = Some(b.u64()?),
            (xst::BYTE_COUNT, 8) => s.bytes = Some(b.u64()?),
            _ => {}
        }
    }
    Ok(s)
}

/// Append an `ofp_stats` with the present statistics, padded to 8.
pub(crate) fn put_oxs(out: &mut Vec<u8>, s: &Oxs) {
    let start = out.len();
    out.u16(0);
    out.u16(0);
    if let Some((sec, nsec)) = s.duration {
        out.u32(oxs_header(xst::DURATION, 8));
        out.u32(sec);
        out.u32(nsec);
    }
    if let Some(idle) = s.idle_sec {
        out.u32(oxs_header(xst::IDLE_TIME, 8));
        out.u32(idle);
        out.u32(0);
    }
    if let Some(p) = s.packets {
        out.u32(oxs_header(xst::PACKET_COUNT, 8));
        out.u64(p);
    }
    if let Some(b) = s.bytes {
        out.u32(oxs_header(xst::BYTE_COUNT, 8));
        out.u64(b);
    }
    if let Some(f) = s.flows {
        out.u32(oxs_header(xst::FLOW_COUNT, 4));
        out.u32(f);
    }
    let len = (out.len() - start) as u16;
    out.patch16(start + 2, len);
    out.pad8(start);
}

/// Decode one flow statistics entry of `version`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN`, the match's and the instructions' errors.
pub(crate) fn get_flow_stats(rd: &mut Rd<'_>, version: u8) -> Result<FlowStats, DecodeError> {
    let len = rd.peek_len(0)?;
    if version >= OFP15_VERSION {
        let mut r = rd.record(len, 24)?;
        r.skip(4)?;
        let table_id = r.u8()?;
        r.skip(1)?;
        let priority = r.u16()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let cookie = r.u64()?;
        let matcher = get_match(&mut r)?;
        let s = get_oxs(&mut r)?;
        let instructions = decode_instructions(r.rest(), version)?;
        let (duration_sec, duration_nsec) = s.duration.unwrap_or((0, 0));
        return Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie,
            packet_count: s.packets.unwrap_or(0),
            byte_count: s.bytes.unwrap_or(0),
            idle_age: s.idle_sec.map(|v| u16::try_from(v).unwrap_or(u16::MAX)),
            hard_age: None,
            matcher,
            instructions,
        });
    }
    let mut r = rd.record(len, 56)?;
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let priority = r.u16()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let flags = r.u16()?;
    r.skip(4)?;
    let cookie = r.u64()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let matcher = get_match(&mut r)?;
    let instructions = decode_instructions(r.rest(), version)?;
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags,
        cookie,
        packet_count,
        byte_count,
        idle_age: None,
        hard_age: None,
        matcher,
        instructions,
    })
}

/// Append one flow statistics entry of `version` (importance 0: xennet
/// does not evict).
pub(crate) fn put_flow_stats(
    out: &mut Vec<u8>,
    f: &FlowStats,
    version: u8,
) -> Result<(), EncodeError> {
    let start = out.len();
    if version >= OFP15_VERSION {
        out.u16(0);
        out.zeros(2);
        out.u8(f.table_id);
        out.u8(0);
        out.u16(f.priority);
        out.u16(f.idle_timeout);
        out.u16(f.hard_timeout);
        out.u16(f.flags);
        out.u16(0);
        out.u64(f.cookie);
        put_match(out, &f.matcher);
        put_oxs(
            out,
            &Oxs {
                duration: Some((f.duration_sec, f.duration_nsec)),
                idle_sec: f.idle_age.map(u32::from),
                packets: Some(f.packet_count),
                bytes: Some(f.byte_count),
                flows: None,
            },
        );
    } else {
        out.u16(0);
        out.u8(f.table_id);
        out.u8(0);
        out.u32(f.duration_sec);
        out.u32(f.duration_nsec);
        out.u16(f.priority);
        out.u16(f.idle_timeout);
        out.u16(f.hard_timeout);
        out.u16(f.flags);
        out.zeros(4);
        out.u64(f.cookie);
        out.u64(f.packet_count);
        out.u64(f.byte_count);
        put_match(out, &f.matcher);
    }
    put_instructions(out, &f.instructions, version)?;
    end_record(out, start, start)
}

/// Decode an aggregate reply body of `version`: `(packets, bytes, flows)`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN`, `BAD_MATCH/BAD_LEN` for a bad `ofp_stats`.
pub(crate) fn get_aggregate(rd: &mut Rd<'_>, version: u8) -> Result<(u64, u64, u32), DecodeError> {
    if version >= OFP15_VERSION {
        let s = get_oxs(rd)?;
        rd.end()?;
        return Ok((
            s.packets.unwrap_or(0),
            s.bytes.unwrap_or(0),
            s.flows.unwrap_or(0),
        ));
    }
    wire::get_aggregate(rd)
}

/// Append an aggregate reply body of `version`.
pub(crate) fn put_aggregate(out: &mut Vec<u8>, packets: u64, bytes: u64, flows: u32, version: u8) {
    if version >= OFP15_VERSION {
        put_oxs(
            out,
            &Oxs {
                packets: Some(packets),
                bytes: Some(bytes),
                flows: Some(flows),
                ..Oxs::default()
            },
        );
    } else {
        wire::put_aggregate(out, packets, bytes, flows);
    }
}

/// Decode a flow-removed body of `version`.
///
/// # Errors
/// `BAD_REQUEST/BAD_LEN`, the match's errors.
pub(crate) fn get_flow_removed(rd: &mut Rd<'_>, version: u8) -> Result<FlowRemoved, DecodeError> {
    if version >= OFP15_VERSION {
        let table_id = rd.u8()?;
        let reason = rd.u8()?;
        let priority = rd.u16()?;
        let idle_timeout = rd.u16()?;
        let hard_timeout = rd.u16()?;
        let cookie = rd.u64()?;
        let matcher = get_match(rd)?;
        let s = get_oxs(rd)?;
        rd.end()?;
        let (duration_sec, duration_nsec) = s.duration.unwrap_or((0, 0));
        return Ok(FlowRemoved {
            cookie,
            priority,
            reason,
            table_id,
            duration_sec,
            duration_nsec,
            idle_timeout,
            hard_timeout,
            packet_count: s.packets.unwrap_or(0),
            byte_count: s.bytes.unwrap_or(0),
            matcher,
        });
    }
    Ok(FlowRemoved {
        cookie: rd.u64()?,
        priority: rd.u16()?,
        reason: rd.u8()?,
        table_id: rd.u8()?,
        duration_sec: rd.u32()?,
        duration_nsec: rd.u32()?,
        idle_timeout: rd.u16()?,
        hard_timeout: rd.u16()?,
        packet_count: rd.u64()?,
        byte_count: rd.u64()?,
        matcher: {
            let m = get_match(rd)?;
            rd.end()?;
            m
        },
    })
}

/// Append a flow-removed body of `version`.
pub(crate) fn put_flow_removed(out: &mut Vec<u8>, f: &FlowRemoved, version: u8) {
    if version >= OFP15_VERSION {
        out.u8(f.table_id);
        out.u8(f.reason);
        out.u16(f.priority);
        out.u16(f.idle_timeout);
        out.u16(f.hard_timeout);
        out.u64(f.cookie);
        put_match(out, &f.matcher);
        put_oxs(
            out,
            &Oxs {
                duration: Some((f.duration_sec, f.duration_nsec)),
                packets: Some(f.packet_count),
                bytes: Some(f.byte_count),
                ..Oxs::default()
            },
        );
        return;
    }
    out.u64(f.cookie);
    out.u16(f.priority);
    out.u8(f.reason);
    out.u8(f.table_id);
    out.u32(f.duration_sec);
    out.u32(f.duration_nsec);
    out.u16(f.idle_timeout);
    out.u16(f.hard_timeout);
    out.u64(f.packet_count);
    out.u64(f.byte_count);
    put_match(out, &f.matcher);
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3 to 1.5 flow statistics requests (1.3 §7.3.5.2).

/// `ofp_flow_stats_request` / `ofp_aggregate_stats_request`.
pub(crate) fn get_flow_stats_request(rd: &mut Rd<'_>) -> Result<FlowStatsRequest, DecodeError> {
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

pub(crate) fn put_flow_stats_request(out: &mut Vec<u8>, r: &FlowStatsRequest) {
    out.u8(r.table_id);
    out.zeros(3);
    out.u32(r.out_port);
    out.u32(r.out_group);
    out.zeros(4);
    out.u64(r.cookie);
    out.u64(r.cookie_mask);
    put_match(out, &r.matcher);
}

// ---------------------------------------------------------------------------
// OpenFlow 1.0 and Nicira: flow-removed (`ofp_flow_removed`,
// `nx_flow_removed`), flow statistics requests (`ofp_flow_stats_request`,
// `nx_flow_stats_request`) and entries (`ofp_flow_stats`,
// `nx_flow_stats`).

/// `ofp_flow_removed` body: `hard_timeout` is not in 1.0 (decodes as 0),
/// nor `table_id` (decodes as 0xff, unknown, as OVS).
pub(crate) fn decode_flow_removed(r: &mut Rd) -> Result<FlowRemoved, DecodeError> {
    let (matcher, _) = match_from_ofp10(r.take(MATCH_LEN)?, false);
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    r.skip(2)?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    Ok(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id: OFPTT_ALL,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout: 0,
        packet_count,
        byte_count,
        matcher,
    })
}

/// `OFPRR_METER_DELETE` (4) is sent as `OFPRR_DELETE` before OpenFlow 1.4,
/// as OVS does.
pub(crate) fn removed_reason(r: u8) -> u8 {
    if r == 4 {
        2
    } else {
        r
    }
}

/// Append an `ofp_flow_removed` body.
///
/// # Errors
/// `Unsupported` for a match with no 1.0 form.
pub(crate) fn encode_flow_removed(fr: &FlowRemoved, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_match(&fr.matcher, out)?;
    out.u64(fr.cookie);
    out.u16(fr.priority);
    out.u8(removed_reason(fr.reason));
    out.u8(0);
    out.u32(fr.duration_sec);
    out.u32(fr.duration_nsec);
    out.u16(fr.idle_timeout);
    out.u16(0);
    out.u64(fr.packet_count);
    out.u64(fr.byte_count);
    Ok(())
}

/// `nx_flow_removed` body: `table_id` is sent plus one (0 = unknown, which
/// decodes as 0xff, as OVS); no hard timeout.
pub(crate) fn decode_nx_flow_removed(r: &mut Rd) -> Result<FlowRemoved, DecodeError> {
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    let table_id = r.u8()?.checked_sub(1).unwrap_or(OFPTT_ALL);
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    let match_len = usize::from(r.u16()?);
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let matcher = oxm::decode_tlvs(take_nx_match(r, match_len)?)?;
    r.end()?;
    Ok(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout: 0,
        packet_count,
        byte_count,
        matcher,
    })
}

/// Append an `nx_flow_removed` body (after the `nicira_header`).
///
/// # Errors
/// `Unsupported` for an NXM match too long for its length field.
pub(crate) fn encode_nx_flow_removed(
    fr: &FlowRemoved,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.u64(fr.cookie);
    out.u16(fr.priority);
    out.u8(removed_reason(fr.reason));
    out.u8(fr.table_id.wrapping_add(1));
    out.u32(fr.duration_sec);
    out.u32(fr.duration_nsec);
    out.u16(fr.idle_timeout);
    let len_at = out.len();
    out.u16(0);
    out.u64(fr.packet_count);
    out.u64(fr.byte_count);
    let ml = encode_nx_match_cookie(&fr.matcher, 0, 0, out)?;
    out.patch16(len_at, ml);
    Ok(())
}

/// `ofp_flow_stats_request` (1.0): match, table_id, pad, out_port.
pub(crate) fn decode_flow_stats_request(r: &mut Rd) -> Result<FlowStatsRequest, DecodeError> {
    let (matcher, _) = match_from_ofp10(r.take(MATCH_LEN)?, false);
    let table_id = r.u8()?;
    r.skip(1)?;
    let out_port = port_from_ofp10(r.u16()?);
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group: OFPG_ANY,
        cookie: 0,
        cookie_mask: 0,
        matcher,
    })
}

pub(crate) fn encode_flow_stats_request(
    q: &FlowStatsRequest,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if q.cookie_mask != 0 || q.out_group != OFPG_ANY {
        return Err(unsupported(
            "cookie or group filter in an OpenFlow 1.0 flow stats request",
        ));
    }
    encode_match(&q.matcher, out)?;
    out.u8(q.table_id);
    out.u8(0);
    out.u16(port10(q.out_port)?);
    Ok(())
}

/// `nx_flow_stats_request` / `nx_aggregate_stats_request`.
pub(crate) fn decode_nx_flow_stats_request(r: &mut Rd) -> Result<FlowStatsRequest, DecodeError> {
    let out_port = port_from_ofp10(r.u16()?);
    let match_len = usize::from(r.u16()?);
    let table_id = r.u8()?;
    r.skip(3)?;
    let (matcher, cookie, cookie_mask) = decode_nx_match_cookie(take_nx_match(r, match_len)?)?;
    r.end()?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group: OFPG_ANY,
        cookie,
        cookie_mask,
        matcher,
    })
}

pub(crate) fn encode_nx_flow_stats_request(
    q: &FlowStatsRequest,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if q.out_group != OFPG_ANY {
        return Err(unsupported("group filter in an NXST flow stats request"));
    }
    out.u16(port10(q.out_port)?);
    let len_at = out.len();
    out.u16(0);
    out.u8(q.table_id);
    out.zeros(3);
    let ml = encode_nx_match_cookie(&q.matcher, q.cookie, q.cookie_mask, out)?;
    out.patch16(len_at, ml);
    Ok(())
}

/// One `ofp_flow_stats` (1.0): no flags, ages or cookie mask.
pub(crate) fn decode_flow_stats(b: &[u8]) -> Result<FlowStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(1)?;
    let (matcher, _) = match_from_ofp10(r.take(MATCH_LEN)?, false);
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let priority = r.u16()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    r.skip(6)?;
    let cookie = r.u64()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let instructions = decode_instructions_ofp10(r.rest(), &matcher)?;
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags: 0,
        cookie,
        packet_count,
        byte_count,
        idle_age: None,
        hard_age: None,
        matcher,
        instructions,
    })
}

pub(crate) fn encode_flow_stats(out: &mut Vec<u8>, f: &FlowStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(f.table_id);
    out.u8(0);
    encode_match(&f.matcher, out)?;
    out.u32(f.duration_sec);
    out.u32(f.duration_nsec);
    out.u16(f.priority);
    out.u16(f.idle_timeout);
    out.u16(f.hard_timeout);
    out.zeros(6);
    out.u64(f.cookie);
    out.u64(f.packet_count);
    out.u64(f.byte_count);
    encode_instructions_as_actions(&f.instructions, out)?;
    end_record(out, start, start)
}

/// One `nx_flow_stats`: `idle_age`/`hard_age` are sent plus one (0 =
/// unknown); no flags.
pub(crate) fn decode_nx_flow_stats(b: &[u8]) -> Result<FlowStats, DecodeError> {
    let mut r = Rd::new(b, OfError::BAD_LEN);
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let priority = r.u16()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let match_len = usize::from(r.u16()?);
    let age = |a: u16| a.checked_sub(1);
    let idle_age = age(r.u16()?);
    let hard_age = age(r.u16()?);
    let cookie = r.u64()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let matcher = oxm::decode_tlvs(take_nx_match(&mut r, match_len)?)?;
    let instructions = decode_instructions_ofp10(r.rest(), &matcher)?;
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags: 0,
        cookie,
        packet_count,
        byte_count,
        idle_age,
        hard_age,
        matcher,
        instructions,
    })
}

pub(crate) fn encode_nx_flow_stats(out: &mut Vec<u8>, f: &FlowStats) -> Result<(), EncodeError> {
    let start = out.len();
    out.u16(0);
    out.u8(f.table_id);
    out.u8(0);
    out.u32(f.duration_sec);
    out.u32(f.duration_nsec);
    out.u16(f.priority);
    out.u16(f.idle_timeout);
    out.u16(f.hard_timeout);
    out.u16(0);
    let age = |a: Option<u16>| a.map_or(0, |a| a.saturating_add(1));
    out.u16(age(f.idle_age));
    out.u16(age(f.hard_age));
    out.u64(f.cookie);
    out.u64(f.packet_count);
    out.u64(f.byte_count);
    let ml = encode_nx_match_cookie(&f.matcher, 0, 0, out)?;
    out.patch16(start + 18, ml);
    encode_instructions_as_actions(&f.instructions, out)?;
    end_record(out, start, start)
}
