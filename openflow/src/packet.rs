//! The packet family (Open vSwitch `lib/ofp-packet.c`) for OpenFlow 1.0,
//! 1.3, 1.4 and 1.5: packet-in and packet-out bodies (after the header,
//! or after the `nicira_header` for `NXT_PACKET_IN`). `NXT_PACKET_IN2`
//! is [`crate::packet_in2`]'s.
//!
//! - OpenFlow 1.0 `ofp_packet_in` (no table id, cookie or metadata),
//!   Nicira `nx_packet_in` (the pipeline fields in an NXM match) and
//!   `ofp_packet_out` (16-bit `in_port`, 1.0 actions).
//! - OpenFlow 1.3 to 1.5 `ofp_packet_in` (1.3 §7.4.1, the pipeline fields
//!   in an OXM match) and `ofp_packet_out` (1.3 §7.3.7: 32-bit `in_port`;
//!   1.5.1 §7.3.7: an `ofp_match` holding the pipeline fields instead).
//!
//! Of the pipeline fields xennet keeps `in_port` and `metadata`
//! (`pipeline_match`); others are skipped when decoding, as Open
//! vSwitch's loose decoding does.

use xennet_datapath::flow::Field;

use crate::actions::{
    check_exact_ofp10_actions, decode_actions_ofp10, decode_actions_version, encode_actions_ofp10,
    put_actions_version,
};
use crate::error::{DecodeError, OfError};
use crate::header::OFP15_VERSION;
use crate::model::{EncodeError, Match, PacketIn, PacketOut, OFPP_ANY};
use crate::ofp_match::{encode_nx_match_cookie, put_match, take_match, take_nx_match};
use crate::oxm;
use crate::port::{port10, port_from_ofp10};
use crate::wire::{err, unsupported, Put, Rd};

/// The match of a packet-in's (or a 1.5 packet-out's) pipeline fields:
/// `in_port` exact, and `metadata` exact when it is not zero.
pub(crate) fn pipeline_match(in_port: u32, metadata: u64) -> Match {
    let mut m = Match::CATCHALL;
    m.key.set_in_port(in_port);
    m.mask.set_exact(Field::InPort);
    if metadata != 0 {
        m.key.set(Field::Metadata, u128::from(metadata));
        m.mask.set_exact(Field::Metadata);
    }
    m
}

// ---------------------------------------------------------------------------
// OpenFlow 1.0 and Nicira.

/// `ofp_packet_in` (data at offset 18): no table id, cookie (all ones) or
/// metadata in 1.0.
pub(crate) fn decode_packet_in(r: &mut Rd) -> Result<PacketIn, DecodeError> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let in_port = port_from_ofp10(r.u16()?);
    let reason = r.u8()?;
    r.skip(1)?;
    Ok(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id: 0,
        cookie: u64::MAX,
        in_port,
        metadata: 0,
        data: r.rest().to_vec(),
        ..PacketIn::default()
    })
}

/// Append an `ofp_packet_in` body.
///
/// # Errors
/// `Unsupported` for an input port with no 1.0 number.
pub(crate) fn encode_packet_in(pi: &PacketIn, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.u32(pi.buffer_id);
    out.u16(pi.total_len);
    out.u16(port10(pi.in_port)?);
    out.u8(pi.reason);
    out.u8(0);
    out.extend_from_slice(&pi.data);
    Ok(())
}

/// `nx_packet_in`: the match carries the pipeline fields (in_port,
/// metadata); other TLVs are skipped.
pub(crate) fn decode_nx_packet_in(r: &mut Rd) -> Result<PacketIn, DecodeError> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let reason = r.u8()?;
    let table_id = r.u8()?;
    let cookie = r.u64()?;
    let match_len = usize::from(r.u16()?);
    r.skip(6)?;
    // Loose, as OVS: only in_port and metadata are kept.
    let (in_port, metadata) = oxm::decode_pipeline_fields(take_nx_match(r, match_len)?)?;
    r.skip(2)?;
    Ok(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        in_port: in_port.unwrap_or(0),
        metadata,
        data: r.rest().to_vec(),
        ..PacketIn::default()
    })
}

/// Append an `nx_packet_in` body (after the `nicira_header`).
///
/// # Errors
/// `Unsupported` when the NXM match does not fit its length field.
pub(crate) fn encode_nx_packet_in(pi: &PacketIn, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.u32(pi.buffer_id);
    out.u16(pi.total_len);
    out.u8(pi.reason);
    out.u8(pi.table_id);
    out.u64(pi.cookie);
    let len_at = out.len();
    out.u16(0);
    out.zeros(6);
    let m = pipeline_match(pi.in_port, pi.metadata);
    let ml = encode_nx_match_cookie(&m, 0, 0, out)?;
    out.patch16(len_at, ml);
    out.zeros(2);
    out.extend_from_slice(&pi.data);
    Ok(())
}

/// `ofp_packet_out` body. The input port must be a port number below
/// `OFPP_MAX`, `LOCAL`, `CONTROLLER` or `NONE` (OVS).
pub(crate) fn decode_packet_out(r: &mut Rd) -> Result<PacketOut, DecodeError> {
    let buffer_id = r.u32()?;
    let in_port = r.u16()?;
    if in_port >= 0xff00 && !matches!(in_port, 0xfffd..=0xffff) {
        return Err(err(OfError::BAD_PORT, "bad packet-out input port"));
    }
    let in_port = port_from_ofp10(in_port);
    let actions_len = usize::from(r.u16()?);
    if actions_len % 8 != 0 {
        return Err(err(OfError::BAD_LEN, "actions_len not a multiple of 8"));
    }
    let acts = r.take(actions_len)?;
    let actions = decode_actions_ofp10(acts, None)?;
    Ok(PacketOut {
        buffer_id,
        in_port,
        actions,
        data: r.rest().to_vec(),
    })
}

/// Append an `ofp_packet_out` body.
///
/// # Errors
/// `Unsupported` for an input port or actions with no 1.0 form.
pub(crate) fn encode_packet_out(po: &PacketOut, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.u32(po.buffer_id);
    out.u16(port10(po.in_port)?);
    let len_at = out.len();
    out.u16(0);
    let a0 = out.len();
    check_exact_ofp10_actions(&po.actions)?;
    encode_actions_ofp10(&po.actions, out)?;
    let alen = u16::try_from(out.len() - a0).map_err(|_| unsupported("actions too long"))?;
    out.patch16(len_at, alen);
    out.extend_from_slice(&po.data);
    Ok(())
}

// ---------------------------------------------------------------------------
// OpenFlow 1.3 to 1.5.

pub(crate) fn get_packet_in(rd: &mut Rd<'_>) -> Result<PacketIn, DecodeError> {
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

pub(crate) fn put_packet_in(out: &mut Vec<u8>, p: &PacketIn) {
    out.u32(p.buffer_id);
    out.u16(p.total_len);
    out.u8(p.reason);
    out.u8(p.table_id);
    out.u64(p.cookie);
    put_match(out, &pipeline_match(p.in_port, p.metadata));
    out.zeros(2);
    out.extend_from_slice(&p.data);
}

/// `ofp_packet_out` after the header: 1.3/1.4 `buffer_id`, `in_port`,
/// `actions_len`, 6 pad bytes; 1.5 (1.5.1 §7.3.6) `buffer_id`,
/// `actions_len`, 2 pad bytes, an `ofp_match` holding the pipeline
/// fields (xennet uses `in_port`, `OFPP_ANY` when absent). Then actions
/// and the packet.
pub(crate) fn get_packet_out(rd: &mut Rd<'_>, version: u8) -> Result<PacketOut, DecodeError> {
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

pub(crate) fn put_packet_out(
    out: &mut Vec<u8>,
    p: &PacketOut,
    version: u8,
) -> Result<(), EncodeError> {
    out.u32(p.buffer_id);
    let at;
    if version >= OFP15_VERSION {
        at = out.len();
        out.u16(0);
        out.zeros(2);
        put_match(out, &pipeline_match(p.in_port, 0));
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
