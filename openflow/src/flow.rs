//! The flow family for OpenFlow 1.3, 1.4 and 1.5: flow statistics,
//! aggregate statistics and flow-removed, with the version as a parameter.
//!
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
use crate::model::{EncodeError, FlowRemoved, FlowStats};
use crate::ofp_match::{get_match, put_match};
use crate::wire::{self, end_record, Put, Rd};

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

fn err(e: OfError, what: &'static str) -> DecodeError {
    DecodeError::new(e, what)
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
